# latency.gp: acquire-latency percentile spectrum of one variant.
#
#   gnuplot -e "dir='VARIANT_DIR'; out='FILE'; fmt='png'; title='...'" plot/latency.gp
#
#   dir       the variant folder; reads DIR/latency.hgrm                  (required)
#   out       output file, '-' for stdout                 (default DIR/latency.png|svg)
#   fmt       png | svg | dumb                                           (default png)
#   title     scenario, variant and key settings                          (default dir)
#   subtitle  optional second title line
#
# x: percentile on the 1/(1-p) log scale (0%, 90%, 99%, 99.9% ...) as HdrHistogram's plotter
# draws it; y: acquire latency in ms, log scale. Reads the rows of latency.hgrm whose
# 1/(1-Percentile) column is present (the final 100% row has none).

chart = 'latency'
here = ARG0; i = strlen(here); while (i > 0 && here[i:i] ne '/') { i = i - 1 }; here = here[1:i]
load here.'common.gp'

hgrm = dir.'/latency.hgrm'

# Percentile tic label for x = 10^k: 0%, 90%, 99%, 99.9%, ... (tic labels are formats: %% is %)
pct_label(k) = k == 0 ? '0%%' : k == 1 ? '90%%' : '99'.(k == 2 ? '' : '.'.nines(k - 2)).'%%'
nines(n) = n <= 0 ? '' : '9'.nines(n - 1)

stats hgrm using 0 nooutput
n_lines = STATS_records
n_rows = 0; x_max = 1; y_min = 1e30; y_max = 0; total = 0
if (n_lines > 1) {
    stats hgrm skip 1 using (valid(4) ? (n_rows = n_rows + 1, x_max = $4 > x_max ? $4 : x_max, \
                                         y_min = ($1 > 0 && $1 < y_min) ? $1 : y_min) : 0, \
                             y_max = $1 > y_max ? $1 : y_max, total = $3 > total ? $3 : total, 0) nooutput
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
set mxtics 10
set grid xtics ytics mytics
@no_dumb_grid

if (n_rows == 0) {
    set yrange [0.1:1000]
    set label 1 'no successful acquisitions' at graph 0.5, 0.5 center font ',16' textcolor rgb c_text
    plot NaN notitle
} else {
    lo = 10**floor(log10(y_min))
    hi = 10**ceil(log10(y_max * 1.01))
    hi = hi / lo < 100 ? lo * 100 : hi
    set yrange [lo:hi]
    set key top left reverse Left samplen 2
    plot hgrm skip 1 using (valid(4) ? $4 : NaN):1 with lines lw 2.5 lc rgb c_ok \
             title sprintf('%d acquisitions, max %g ms', int(total), y_max)
}
