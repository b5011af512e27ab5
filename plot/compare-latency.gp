# compare-latency.gp: acquire-latency percentile spectra of all variants, one line each.
#
#   gnuplot -e "dir='SCENARIO_DIR'; variants='a b c'; out='FILE'; fmt='png'; title='...'" \
#           plot/compare-latency.gp
#
#   dir       the scenario's result folder; reads DIR/VARIANT/latency.hgrm      (required)
#   variants  space-separated variant names, in the order to draw them
#             (default: the variant column of DIR/comparison.csv)
#   out       output file, '-' for stdout         (default DIR/compare-latency.png|svg)
#   fmt       png | svg | dumb                                             (default png)
#   title     scenario and key settings                                    (default dir)
#   subtitle  optional second title line
#
# Axes as in latency.gp: percentile on the 1/(1-p) log scale, acquire latency in ms (log).

chart = 'compare-latency'
here = ARG0; i = strlen(here); while (i > 0 && here[i:i] ne '/') { i = i - 1 }; here = here[1:i]
load here.'common.gp'
if (!exists("variants")) { load here.'variants.gp' }

pct_label(k) = k == 0 ? '0%%' : k == 1 ? '90%%' : '99'.(k == 2 ? '' : '.'.nines(k - 2)).'%%'
nines(n) = n <= 0 ? '' : '9'.nines(n - 1)

n_var = words(variants)
x_max = 1; y_min = 1e30; y_max = 0; n_rows = 0
do for [v=1:n_var] {
    h = dir.'/'.word(variants, v).'/latency.hgrm'
    stats h using 0 nooutput
    if (STATS_records > 1) {
        stats h skip 1 using (valid(4) ? (n_rows = n_rows + 1, x_max = $4 > x_max ? $4 : x_max, \
                                        y_min = ($1 > 0 && $1 < y_min) ? $1 : y_min) : 0, \
                              y_max = $1 > y_max ? $1 : y_max, 0) nooutput
    }
}

set title chart_title('Acquire latency by percentile')
set xlabel 'percentile'
set ylabel 'acquire latency (ms)'
set logscale x 10
set logscale y 10
set format y '%g'
set mytics 10
decades = n_rows > 0 ? ceil(log10(x_max) - 1e-9) : 2
decades = decades < 2 ? 2 : decades
set xrange [1:10**decades]
set xtics ()
do for [k=0:decades] { set xtics add (pct_label(k) 10**k) }
set grid xtics ytics mytics
@no_dumb_grid
set key top left reverse Left samplen 2.5 spacing 1.2

if (n_rows == 0) {
    set yrange [0.1:1000]
    set label 1 'no successful acquisitions' at graph 0.5, 0.5 center font ',16' textcolor rgb c_text
    plot NaN notitle
} else {
    lo = 10**floor(log10(y_min))
    hi = 10**ceil(log10(y_max * 1.01))
    hi = hi / lo < 100 ? lo * 100 : hi
    set yrange [lo:hi]
    plot for [v=1:n_var] dir.'/'.word(variants, v).'/latency.hgrm' skip 1 \
         using (valid(4) ? $4 : NaN):1 with lines lt v lw 2.5 title word(variants, v)
}
