# compare-work.gp: work against completion time, one labelled point per variant - the chart of
# the AWS "Exponential Backoff And Jitter" study: total Redis commands the lock core sent (work)
# against the time the whole run took to finish (elapsed_ms). Lower left is better.
#
#   gnuplot -e "dir='SCENARIO_DIR'; out='FILE'; fmt='png'; title='...'" plot/compare-work.gp
#
#   dir         the scenario's result folder; reads DIR/comparison.csv        (required)
#   comparison  another comparison.csv to read instead
#   out         output file, '-' for stdout          (default DIR/compare-work.png|svg)
#   fmt         png | svg | dumb                                            (default png)
#   title       scenario and key settings                                   (default dir)
#   subtitle    optional second title line
#
# comparison.csv columns: see compare-bars.gp. Both axes start at 0 so distances compare honestly.

chart = 'compare-work'
here = ARG0; i = strlen(here); while (i > 0 && here[i:i] ne '/') { i = i - 1 }; here = here[1:i]
load here.'common.gp'
load here.'variants.gp'

set title chart_title('Work and completion time by variant')
set xlabel 'completion time (s)'
set grid xtics ytics
@no_dumb_grid

if (n_cmp == 0) {
    set ylabel 'Redis commands (work)'
    set label 1 'comparison.csv has no rows' at graph 0.5, 0.5 center font ',16' textcolor rgb c_text
    set xrange [0:1]; set yrange [0:1]
    plot NaN notitle
    exit
}

x_max = 0; y_max = 0
do for [i=1:n_cmp] {
    x_max = cmp_elapsed[i] / 1000.0 > x_max ? cmp_elapsed[i] / 1000.0 : x_max
    y_max = cmp_commands[i] > y_max ? cmp_commands[i] : y_max
}
# Commands in plain numbers, thousands or millions, whichever keeps the tic labels short.
y_div = y_max >= 1e7 ? 1e6 : y_max >= 1e4 ? 1e3 : 1
set ylabel 'Redis commands (work)'.(y_div == 1e6 ? ', millions' : y_div == 1e3 ? ', thousands' : '')
set format y '%g'
xr = x_max > 0 ? x_max * 1.2 : 1
yr = y_max > 0 ? y_max / y_div * 1.2 : 1
set xrange [0:xr]
set yrange [0:yr]
px(i) = cmp_elapsed[i] / 1000.0
py(i) = cmp_commands[i] / y_div

# Name labels beside the points, placed greedily so that they overlap neither each other nor
# the points: each label tries right/left of its point, a little above or below, then further
# away with a thin leader line.
# Sizes in graph fractions for the 1200x700 canvas and a size-11 font.
cw = is_dumb ? 0.012 : 0.0090  # the key outside narrows the graph: a character is wider in it
ch = is_dumb ? 0.045 : 0.032
pr = is_dumb ? 0.012 : 0.012
array lab_x0[n_cmp]
array lab_y0[n_cmp]
array lab_x1[n_cmp]
array lab_y1[n_cmp]
array cand_dx[16] = [1, 1, -1, -1, 1, 1, -1, -1, 1, 1, -1, -1, 1, -1, 1, -1]
array cand_dy[16] = [0.6, -0.6, 0.6, -0.6, 1.6, -1.6, 1.6, -1.6, 2.6, -2.6, 2.6, -2.6, 3.6, 3.6, 4.6, 4.6]
boxes_meet(ax0, ay0, ax1, ay1, bx0, by0, bx1, by1) = ax0 < bx1 && bx0 < ax1 && ay0 < by1 && by0 < ay1
do for [i=1:n_cmp] {
    gx = px(i) / xr; gy = py(i) / yr
    w = strlen(cmp_variant[i]) * cw
    chosen = 0
    do for [k=1:16] {
        if (!chosen) {
            x0 = cand_dx[k] > 0 ? gx + 1.2 * cw : gx - 1.2 * cw - w
            yc = gy + cand_dy[k] * ch
            ok = x0 >= 0 && x0 + w <= 1 && yc - ch / 2 >= 0 && yc + ch / 2 <= 1
            do for [j=1:n_cmp] {
                if (ok && j != i && boxes_meet(x0, yc - ch / 2, x0 + w, yc + ch / 2, \
                        px(j) / xr - pr, py(j) / yr - pr * 1.7, px(j) / xr + pr, py(j) / yr + pr * 1.7)) { ok = 0 }
                if (ok && j < i && boxes_meet(x0, yc - ch / 2, x0 + w, yc + ch / 2, \
                        lab_x0[j], lab_y0[j], lab_x1[j], lab_y1[j])) { ok = 0 }
            }
            if (ok) { chosen = k }
        }
    }
    chosen = chosen ? chosen : 1
    x0 = cand_dx[chosen] > 0 ? gx + 1.2 * cw : gx - 1.2 * cw - w
    yc = gy + cand_dy[chosen] * ch
    lab_x0[i] = x0; lab_x1[i] = x0 + w; lab_y0[i] = yc - ch / 2; lab_y1[i] = yc + ch / 2
    set label 100 + i cmp_variant[i] at graph x0, graph yc left front textcolor lt i font ',11'
    if (chosen > 4) {
        set arrow 100 + i from graph gx, graph gy to graph (cand_dx[chosen] > 0 ? x0 : x0 + w), graph yc \
            nohead back lc rgb '#AAAAAA' lw 1
    }
}

# The key sits outside the plot, where it can cover neither a point nor a label.
set key outside right top reverse Left samplen 1 spacing 1.2
plot for [i=1:n_cmp] '+' using (px(i)):(py(i)) every ::0::0 with points lt i ps 2.2 title cmp_variant[i]
