# fairness.gp: acquisitions, timeouts and errors per client of one variant, Jain's index in the
# title.
#
#   gnuplot -e "dir='VARIANT_DIR'; out='FILE'; fmt='png'; title='...'" plot/fairness.gp
#
#   dir       the variant folder; reads DIR/acquisitions.csv                 (required)
#   out       output file, '-' for stdout                (default DIR/fairness.png|svg)
#   fmt       png | svg | dumb                                          (default png)
#   title     scenario, variant and key settings                         (default dir)
#   subtitle  optional second title line
#   jain      Jain's index to show (summary.json fairness.jain); computed from the
#             per-client acquisitions when not set
#
# Counts rows per client: result ok (acquisitions), timeout, error (drawn only when there are
# errors). A client with a crashed hold or a canceled wait is marked as crashed; with more than
# one client group the groups are named under the axis.

chart = 'fairness'
here = ARG0; i = strlen(here); while (i > 0 && here[i:i] ne '/') { i = i - 1 }; here = here[1:i]
load here.'common.gp'

acq = dir.'/acquisitions.csv'
set datafile separator comma

stats acq using 0 nooutput
n_calls = STATS_records - 1
n_clients = 0
if (n_calls > 0) {
    stats acq skip 1 using 1 nooutput
    n_clients = int(STATS_max) + 1
}

if (n_clients == 0) {
    set title chart_title('Acquisitions per client')
    set label 1 'no acquire calls' at graph 0.5, 0.5 center font ',16' textcolor rgb c_text
    set xrange [0:1]; set yrange [0:1]
    plot NaN notitle
    exit
}

array ok[n_clients]
array to[n_clients]
array er[n_clients]
array crashed[n_clients]
array grp[n_clients]
do for [c=1:n_clients] { ok[c] = 0; to[c] = 0; er[c] = 0; crashed[c] = 0; grp[c] = '' }
group_changes = 0
stats acq skip 1 using (c = int($1) + 1, r = strcol(7), \
        ok[c] = ok[c] + (r eq 'ok'), to[c] = to[c] + (r eq 'timeout'), er[c] = er[c] + (r eq 'error'), \
        crashed[c] = crashed[c] || r eq 'canceled' || strcol(13) eq 'crashed', \
        group_changes = group_changes + (grp[c] ne '' && grp[c] ne strcol(2)), \
        grp[c] = strcol(2), 0) nooutput

sum_ok = 0; sumsq_ok = 0; max_count = 0; total_to = 0; total_er = 0; n_groups = 1
do for [c=1:n_clients] {
    sum_ok = sum_ok + ok[c]; sumsq_ok = sumsq_ok + ok[c]**2
    total_to = total_to + to[c]; total_er = total_er + er[c]
    max_count = ok[c] > max_count ? ok[c] : max_count
    max_count = to[c] > max_count ? to[c] : max_count
    max_count = er[c] > max_count ? er[c] : max_count
    if (c > 1 && grp[c] ne grp[1]) { n_groups = 2 }
}
if (!exists("jain")) { jain = sumsq_ok > 0 ? 1.0 * sum_ok**2 / (n_clients * sumsq_ok) : 0 }

set title chart_title(sprintf("Acquisitions per client - Jain's index %.3f", jain))
set xlabel 'client'
set ylabel 'acquire calls'
set yrange [0:(max_count > 0 ? max_count * 1.15 : 1)]
set xrange [-0.6:n_clients - 0.4]
set grid noxtics ytics
@no_dumb_grid
set key top right horizontal reverse Left samplen 1.5 width 2

# Bars per client: acquisitions, then timeouts, then errors when there are any.
n_series = total_er > 0 ? 3 : 2
gap = 0.2
bw = (1.0 - gap) / n_series
off(k) = -0.5 + gap / 2 + bw * (k + 0.5)
set boxwidth bw absolute

# Tic labels: the client number (every n-th when there are many), the group's name under the
# first client of each group when there are several groups, and "crashed" under a client that
# crashed while there are few clients; with more, a cross on the axis marks a crashed client.
tic_step = n_clients <= 40 ? 1 : int(ceil(n_clients / 40.0))
crash_text = n_clients <= 12
group_starts(c) = n_groups > 1 && (c == 0 || grp[c + 1] ne grp[c])
tic(c) = (c % tic_step != 0 && !group_starts(c)) ? '' : sprintf('%d', c). \
         (group_starts(c) ? "\n".grp[c + 1] : (n_groups > 1 ? "\n" : '')). \
         (crash_text && crashed[c + 1] ? "\ncrashed" : '')
set xtics () scale 0
do for [c=0:n_clients-1] { set xtics add (tic(c) c) }
n_crashed = 0
do for [c=1:n_clients] { n_crashed = n_crashed + (crashed[c] ? 1 : 0) }

set datafile separator whitespace
plot ok using ($1 - 1 + off(0)):2 with boxes lc rgb c_ok title 'acquisitions', \
     to using ($1 - 1 + off(1)):2 with boxes lc rgb c_timeout title 'timeouts', \
     for [k=3:n_series] er using ($1 - 1 + off(2)):2 with boxes lc rgb c_error title 'errors', \
     ok using ($1 - 1 + off(0)):2:(n_clients <= 16 ? sprintf('%d', $2) : '') with labels \
         offset 0, 0.7 textcolor rgb c_text font ',10', \
     to using ($1 - 1 + off(1)):2:(n_clients <= 16 ? sprintf('%d', $2) : '') with labels \
         offset 0, 0.7 textcolor rgb c_text font ',10', \
     for [k=1:(!crash_text && n_crashed > 0)] crashed using ($1 - 1):($2 > 0 ? 0 : NaN) with points \
         pt 2 ps 1.5 lw 2 lc rgb c_crash title 'crashed client'
