# compare-bars.gp: throughput, p99 acquire latency and Redis commands per acquisition per
# variant, three panels side by side, each with its own scale.
#
#   gnuplot -e "dir='SCENARIO_DIR'; out='FILE'; fmt='png'; title='...'" plot/compare-bars.gp
#
#   dir         the scenario's result folder; reads DIR/comparison.csv        (required)
#   comparison  another comparison.csv to read instead
#   out         output file, '-' for stdout          (default DIR/compare-bars.png|svg)
#   fmt         png | svg | dumb                                            (default png)
#   title       scenario and key settings                                   (default dir)
#   subtitle    optional second title line
#
# comparison.csv, one row per variant in run order, header line first:
#   variant,throughput_per_s,p50_ms,p99_ms,commands_per_acquisition,elapsed_ms,total_commands
# Each variant keeps its colour (line type 1, 2, ... in file order) across the panels.

chart = 'compare-bars'
here = ARG0; i = strlen(here); while (i > 0 && here[i:i] ne '/') { i = i - 1 }; here = here[1:i]
load here.'common.gp'
load here.'variants.gp'

if (n_cmp == 0) {
    set title chart_title('Variants compared')
    set label 1 'comparison.csv has no rows' at graph 0.5, 0.5 center font ',16' textcolor rgb c_text
    set xrange [0:1]; set yrange [0:1]
    plot NaN notitle
    exit
}

# Variant names under the bars: rotated when they would run into each other (leaving room below);
# the dumb terminal cannot rotate text, so there every second name goes on a second line.
name_len = 0
do for [i=1:n_cmp] { name_len = strlen(cmp_variant[i]) > name_len ? strlen(cmp_variant[i]) : name_len }
rotate = !is_dumb && n_cmp * (name_len + 1) > 36
stagger = is_dumb && n_cmp > 1
bottom = rotate ? 0.22 : 0.1
set multiplot layout 1, 3 title chart_title('Variants compared') font ',14' \
    margins 0.07, 0.98, bottom, 0.86 spacing 0.07, 0

set style fill solid 0.9 noborder
set boxwidth 0.7 relative
set xrange [0.4:n_cmp + 0.6]
set grid noxtics ytics
@no_dumb_grid
set xtics () scale 0
if (rotate) { set xtics rotate by 30 right }
do for [i=1:n_cmp] { set xtics add ((stagger && i % 2 == 0 ? "\n" : '').cmp_variant[i] i) }
if (is_dumb) { set style fill empty border }
bar_colour = is_dumb ? 'lc 1' : 'lc variable'
value_font = n_cmp > 6 ? ',9' : ',11'

# One panel per metric, each on its own scale, the value written above each bar.
array vals[n_cmp]
fmt_value(x) = x >= 100 ? sprintf('%.0f', x) : x >= 10 ? sprintf('%.1f', x) : sprintf('%.2f', x)

do for [p=1:3] {
    do for [i=1:n_cmp] { vals[i] = p == 1 ? cmp_throughput[i] : p == 2 ? cmp_p99[i] : cmp_cpa[i] }
    panel_max = 0
    do for [i=1:n_cmp] { panel_max = vals[i] > panel_max ? vals[i] : panel_max }
    set title (p == 1 ? 'throughput (acquisitions/s)' : p == 2 ? 'p99 acquire latency (ms)' : \
               'Redis commands per acquisition') font ',12'
    set yrange [0:(panel_max > 0 ? panel_max * 1.15 : 1)]
    plot vals using 1:2:($1) with boxes @bar_colour notitle, \
         vals using 1:2:(fmt_value($2)) with labels offset 0, 0.8 font value_font textcolor rgb c_text notitle
}
unset multiplot
