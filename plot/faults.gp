# faults.gp: fault windows from a variant's events.csv, for the charts that draw time on x.
# Loaded after common.gp. Reads DIR/events.csv (or the file named by `events`) and keeps the rows
# whose status is `applied`:
#   n_faults, f_start[i], f_end[i] (seconds since the start barrier; f_end = f_start when the
#   event has no end), f_action[i]
# `@set_faults` then shades each window behind the plot (a dashed vertical line for an instant)
# and, while fault_labels is 1, writes the action at the top; labels are staggered over three
# heights so neighbouring events stay readable. Objects, arrows and labels 1001.. are used.

f_events_file = exists("events") ? events : dir.'/events.csv'
n_faults = 0
set datafile separator comma
stats f_events_file using 0 nooutput
n_fault_rows = STATS_records - 1
if (n_fault_rows > 0) {
    array f_start[n_fault_rows]
    array f_end[n_fault_rows]
    array f_action[n_fault_rows]
    stats f_events_file skip 1 using \
        ((strcol(7) eq 'applied' && valid(2)) ? \
            (n_faults = n_faults + 1, f_start[n_faults] = $2 / 1000.0, \
             f_end[n_faults] = (valid(3) && $3 > $2) ? $3 / 1000.0 : $2 / 1000.0, \
             f_action[n_faults] = strcol(4), 0) : 0) nooutput
}
set datafile separator whitespace

fault_labels = 1
fault_obj0 = 1000
fault_lbl0 = 1000
set_faults = "\
    do for [i=1:n_faults] { \
        if (f_end[i] > f_start[i]) { \
            set object fault_obj0+i rectangle from first f_start[i], graph 0 to first f_end[i], graph 1 \
                behind fillcolor rgb c_fault fillstyle solid 1.0 noborder; \
        } else { \
            set arrow fault_obj0+i from first f_start[i], graph 0 to first f_start[i], graph 1 \
                nohead back lc rgb c_crash lw 1.5 dt 2; \
        }; \
        if (fault_labels) { \
            set label fault_lbl0+i f_action[i] at first f_start[i], graph 1 - 0.045*((i-1)%3) - 0.02 \
                left offset character 0.4,0 front textcolor rgb c_text font ',10'; \
        } else { unset label fault_lbl0+i }; \
    }"
