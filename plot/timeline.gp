# timeline.gp: throughput, timeouts and holders over time for one variant, fault windows shaded.
#
#   gnuplot -e "dir='VARIANT_DIR'; out='FILE'; fmt='png'; title='...'" plot/timeline.gp
#
#   dir       the variant folder; reads DIR/timeline.csv and DIR/events.csv  (required)
#   out       output file, '-' for stdout                (default DIR/timeline.png|svg)
#   fmt       png | svg | dumb                                          (default png)
#   title     scenario, variant and key settings                         (default dir)
#   subtitle  optional second title line
#   keys      the number of lock keys (default: the highest key in DIR/acquisitions.csv + 1)
#
# Three panels over the same time axis: acquisitions per second (each 100 ms bin x 10),
# timeouts and errors per second, and the most clients inside a critical section at once
# (more than one per key is a safety violation: that part is drawn in red). Applied events from
# events.csv are shaded (a window) or drawn as a dashed line (an instant) and labelled with
# their action.

chart = 'timeline'
here = ARG0; i = strlen(here); while (i > 0 && here[i:i] ne '/') { i = i - 1 }; here = here[1:i]
load here.'common.gp'
load here.'faults.gp'

tl = dir.'/timeline.csv'
set datafile separator comma
stats tl using 0 nooutput
n_bins = STATS_records - 1
t_end = 0.1; max_rate = 0; max_bad = 0; max_err = 0; max_holders = 0
if (n_bins > 0) {
    stats tl skip 1 using (t_end = ($1 + 100) / 1000.0 > t_end ? ($1 + 100) / 1000.0 : t_end, \
                           max_rate = $2 * 10 > max_rate ? $2 * 10 : max_rate, \
                           max_bad = $3 * 10 > max_bad ? $3 * 10 : max_bad, \
                           max_err = $4 * 10 > max_err ? $4 * 10 : max_err, \
                           max_holders = $5 > max_holders ? $5 : max_holders, 0) nooutput
}
do for [i=1:n_faults] { t_end = f_end[i] > t_end ? f_end[i] : t_end }
if (!exists("keys")) {
    keys = 1
    acq = dir.'/acquisitions.csv'
    stats acq using 0 nooutput
    if (STATS_records > 1) {
        stats acq skip 1 using 3 nooutput
        keys = int(STATS_max) + 1
    }
}
max_bad = max_err > max_bad ? max_err : max_bad

# A tic step giving about three tics up to `top`: 1, 2 or 5 times a power of ten.
nice_step(top) = top <= 0 ? 1 : nice_pick(top / 3.0, 10**floor(log10(top / 3.0)))
nice_pick(raw, p) = raw <= p ? p : raw <= 2 * p ? 2 * p : raw <= 5 * p ? 5 * p : 10 * p

# A bin's row is its start: each value is drawn over its 100 ms, at the bin's middle with
# `histeps` (outline) and 0.1 s wide `boxes` (fill).
rate(col) = column(col) * 10
mid = '($1 / 1000.0 + 0.05)'
set boxwidth 0.1 absolute

set multiplot title chart_title('Throughput and faults over time') font ',14'
set lmargin at screen 0.09
set rmargin at screen side_margin
set xrange [0:t_end]
set key at screen side_key, graph 1 left top vertical samplen 1.5 reverse Left
set grid xtics ytics
@no_dumb_grid

if (n_bins == 0) {
    set origin 0, 0; set size 1, 0.92
    set xlabel 'time since start (s)'
    set yrange [0:1]
    set label 1 'timeline.csv has no rows' at graph 0.5, 0.5 center font ',16' textcolor rgb c_text
    @set_faults
    plot NaN notitle
    unset multiplot
    exit
}

# ---- throughput ---------------------------------------------------------------------------
set origin 0, 0.42
set size 1, 0.50
set tmargin 1
set bmargin 0.5
set format x ''
set xlabel ''
set ylabel 'acquisitions/s'
set yrange [0:(max_rate > 0 ? max_rate * 1.25 : 10)]
set ytics 0, nice_step(max_rate * 1.25)
@set_faults
plot tl skip 1 using @mid:(rate(2)) with boxes fc rgb c_ok_fill fs solid 1.0 noborder notitle, \
     '' skip 1 using @mid:(rate(2)) with histeps lw 1.5 lc rgb c_ok title 'acquisitions/s'

# ---- timeouts and errors --------------------------------------------------------------------
fault_labels = 0
@set_faults
set origin 0, 0.24
set size 1, 0.18
set tmargin 0.5
set ylabel 'failed/s'
top = max_bad > 0 ? max_bad * 1.3 : 10
set yrange [0:top]
set ytics 0, nice_step(top)
plot tl skip 1 using @mid:(rate(3)) with histeps lw 2 lc rgb c_timeout title 'timeouts/s', \
     for [k=1:(max_err > 0)] '' skip 1 using @mid:(rate(4)) with histeps lw 2 lc rgb c_error title 'errors/s'

# ---- holders ------------------------------------------------------------------------------
set origin 0, 0.0
set size 1, 0.24
set bmargin 3.5
set format x '%g'
set xlabel 'time since start (s)'
set ylabel 'holders'
set yrange [0:(max_holders > keys ? max_holders : keys + 1) + 0.5]
set ytics 0, (max_holders > 6 || keys > 6 ? nice_step(max_holders > keys ? max_holders : keys + 1) : 1)
plot tl skip 1 using @mid:($5 > keys ? $5 : 0) with boxes fc rgb c_overlap fs solid 0.8 noborder \
         title (keys == 1 ? 'more than one' : 'more than one per key'), \
     '' skip 1 using @mid:5 with histeps lw 2 lc rgb c_ok title 'clients inside'
unset multiplot
