# common.gp: terminal, output, title and colours shared by the chart scripts.
# Each chart script sets `chart` (its base name) and loads this file from its own folder.
#
# Variables read (set them with gnuplot -e "..." before the script name):
#   dir       results folder the chart reads (required)
#   out       output file; '-' writes to stdout; default DIR/CHART.png|svg (stdout for dumb)
#   fmt       png (default, 1200x700, pngcairo; libgd png if pngcairo is missing) | svg | dumb
#   title     first title line: scenario, variant and key settings (default: dir)
#   subtitle  optional second title line
#
# Strings are gnuplot strings: in a single-quoted value write a quote as ''.

if (!exists("dir")) exit error "set dir='RESULTS_FOLDER' (gnuplot -e \"dir='...'\" plot/".chart.".gp)"
if (!exists("fmt")) fmt = 'png'
if (!exists("title")) title = dir
if (!exists("subtitle")) subtitle = ''

if (fmt eq 'png') {
    if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {
        set terminal pngcairo size 1200,700 noenhanced font 'DejaVu Sans,12' linewidth 1.2 background '#ffffff'
    } else {
        set terminal png size 1200,700 noenhanced font 'DejaVuSans' 11 background '#ffffff'
    }
} else {
    if (fmt eq 'svg') {
        set terminal svg size 1200,700 dynamic noenhanced font 'DejaVu Sans,12' linewidth 1.2 background '#ffffff'
    } else {
        if (fmt eq 'dumb') {
            set terminal dumb size 100,30 noenhanced
        } else {
            exit error "fmt must be png, svg or dumb, not '".fmt."'"
        }
    }
}
is_dumb = (fmt eq 'dumb')

if (!exists("out")) out = is_dumb ? '-' : dir.'/'.chart.'.'.fmt
if (out eq '-') { set output } else { set output out }

# The chart's own name on the first line, the caller's title (and subtitle) below it.
chart_title(name) = name.' - '.title.(subtitle eq '' ? '' : "\n".subtitle)

# Colours (Okabe-Ito based, readable for colour-blind readers). Fills are solid pale colours,
# not transparency, so libgd png and SVG viewers show the same picture.
c_ok      = '#0072B2'
c_timeout = '#E69F00'
c_error   = '#CC79A7'
c_overlap = '#E41A1C'
c_crash   = '#000000'
c_lost    = '#9467BD'
c_wait    = '#B8B8B8'
c_fault   = '#F8EFB4'
c_text    = '#404040'
c_ok_fill = '#C9DEEF'

# Line types 1..8 for variants.
set linetype 1 lc rgb '#0072B2' lw 2 pt 7 ps 1.5
set linetype 2 lc rgb '#D55E00' lw 2 pt 5 ps 1.5
set linetype 3 lc rgb '#009E73' lw 2 pt 9 ps 1.7
set linetype 4 lc rgb '#CC79A7' lw 2 pt 11 ps 1.7
set linetype 5 lc rgb '#E69F00' lw 2 pt 13 ps 1.7
set linetype 6 lc rgb '#56B4E9' lw 2 pt 7 ps 1.5
set linetype 7 lc rgb '#000000' lw 2 pt 5 ps 1.5
set linetype 8 lc rgb '#999999' lw 2 pt 9 ps 1.7
set linetype cycle 8

set border 3 lc rgb c_text
set tics nomirror textcolor rgb c_text
set grid back lt 1 lc rgb '#DDDDDD' lw 1, lt 1 lc rgb '#EEEEEE' lw 1
set title font ',14'
set key noautotitle
set style fill solid 1.0 noborder

# Charts with their key right of the plot: the plot ends at side_margin (screen fraction) and the
# key starts at side_key.
side_margin = is_dumb ? 0.74 : 0.82
side_key = side_margin + 0.015

# Grid lines drawn in characters bury a dumb-terminal chart: scripts run @no_dumb_grid after
# their `set grid`.
no_dumb_grid = "if (is_dumb) { unset grid }"
