# holders.gp: holder timeline of one variant: one row per client, a bar for each hold.
#
#   gnuplot -e "dir='VARIANT_DIR'; out='FILE'; fmt='png'; title='...'" plot/holders.gp
#
#   dir       the variant folder; reads DIR/acquisitions.csv and DIR/events.csv  (required)
#   out       output file, '-' for stdout                 (default DIR/holders.png|svg)
#   fmt       png | svg | dumb                                           (default png)
#   title     scenario, variant and key settings                          (default dir)
#   subtitle  optional second title line
#
# For each acquire call: a thin line from call_ms to end_ms (grey while waiting, orange when the
# call timed out); for each ok row a bar from end_ms (acquired) to released_ms: blue for a normal
# hold, red when overlap=1 (entered while another live client was inside), purple when the
# release found the lock lost (end=notowner), black with a cross when the client crashed holding.
# Bars keep their true length, so holds much shorter than a pixel draw faint (their shade shows
# how much of the time a client held the lock); overlaps and crashes also get a marker, so they
# show however short they are.
# Applied events from events.csv are shaded and labelled as on the timeline chart.

chart = 'holders'
here = ARG0; i = strlen(here); while (i > 0 && here[i:i] ne '/') { i = i - 1 }; here = here[1:i]
load here.'common.gp'
load here.'faults.gp'

acq = dir.'/acquisitions.csv'
set datafile separator comma
stats acq using 0 nooutput
n_calls = STATS_records - 1
n_clients = 0; t_end = 0.1
n_ok = 0; n_timeout = 0; n_overlap = 0; n_lost = 0; n_crashed = 0
if (n_calls > 0) {
    stats acq skip 1 using (n_clients = $1 + 1 > n_clients ? $1 + 1 : n_clients, \
            t_end = $5 / 1000.0 > t_end ? $5 / 1000.0 : t_end, \
            t_end = (valid(12) && $12 / 1000.0 > t_end) ? $12 / 1000.0 : t_end, \
            n_ok = n_ok + (strcol(7) eq 'ok'), n_timeout = n_timeout + (strcol(7) eq 'timeout'), \
            n_overlap = n_overlap + (strcol(7) eq 'ok' && $14 == 1), \
            n_lost = n_lost + (strcol(13) eq 'notowner'), n_crashed = n_crashed + (strcol(13) eq 'crashed'), \
            0) nooutput
}
n_clients = int(n_clients)
do for [i=1:n_faults] { t_end = f_end[i] > t_end ? f_end[i] : t_end }

set title chart_title('Lock holders by client')
set xlabel 'time since start (s)'
set ylabel 'client'
set xrange [0:t_end * 1.01]
set yrange [(n_clients > 0 ? n_clients - 0.5 : 0.5):-0.5]
set ytics 0, (n_clients <= 30 ? 1 : ceil(n_clients / 30.0)) scale 0
set grid xtics noytics
@no_dumb_grid
set lmargin at screen 0.07
set rmargin at screen side_margin
set key at screen side_key, graph 1 left top vertical samplen 1.5 reverse Left
@set_faults

if (n_calls == 0) {
    set label 1 'no acquire calls' at graph 0.5, 0.5 center font ',16' textcolor rgb c_text
    plot NaN notitle
    exit
}

# Bar half-height in client rows: thinner when there are many clients.
bh = n_clients <= 20 ? 0.32 : 0.4
wait_lw = n_clients <= 20 ? 1.5 : 0.8
ms(col) = column(col) / 1000.0
is_ok = "strcol(7) eq 'ok' && valid(12)"
hold(kind) = (@is_ok) && (kind eq 'overlap' ? $14 == 1 : \
              kind eq 'crashed' ? strcol(13) eq 'crashed' && $14 != 1 : \
              kind eq 'lost' ? strcol(13) eq 'notowner' && $14 != 1 : \
              strcol(13) ne 'crashed' && strcol(13) ne 'notowner' && $14 != 1)
bar(kind) = hold(kind) ? (ms(5) + ms(12)) / 2 : NaN

plot acq skip 1 using (ms(4)):1:(ms(5) - ms(4)):(0) with vectors nohead lw wait_lw lc rgb c_wait \
         title 'waiting', \
     '' skip 1 using (ms(4)):(strcol(7) eq 'timeout' ? $1 : NaN):(ms(5) - ms(4)):(0) \
         with vectors nohead lw wait_lw + 0.5 lc rgb c_timeout title (n_timeout > 0 ? 'wait timed out' : ''), \
     '' skip 1 using (bar('normal')):1:((ms(12) - ms(5)) / 2):(bh) with boxxyerror \
         fc rgb c_ok title 'holding', \
     '' skip 1 using (bar('overlap')):1:((ms(12) - ms(5)) / 2):(bh) with boxxyerror \
         fc rgb c_overlap title (n_overlap > 0 ? 'overlapping hold' : ''), \
     '' skip 1 using (bar('lost')):1:((ms(12) - ms(5)) / 2):(bh) with boxxyerror \
         fc rgb c_lost title (n_lost > 0 ? 'lock lost' : ''), \
     '' skip 1 using (bar('crashed')):1:((ms(12) - ms(5)) / 2):(bh) with boxxyerror \
         fc rgb c_crash title (n_crashed > 0 ? 'crashed holding' : ''), \
     '' skip 1 using (strcol(13) eq 'crashed' ? ms(12) : NaN):1 with points pt 2 ps 2.5 lw 2.5 \
         lc rgb c_crash notitle, \
     '' skip 1 using ((@is_ok) && $14 == 1 ? ms(5) : NaN):($1 - bh - 0.08) with points pt 11 ps 2 \
         lc rgb c_overlap notitle
