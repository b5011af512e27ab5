# variants.gp: the comparison charts' inputs. Loaded after common.gp.
# Reads DIR/comparison.csv (or the file named by `comparison`) into
#   n_cmp and per row cmp_variant[i], cmp_throughput[i], cmp_p50[i], cmp_p99[i], cmp_cpa[i],
#   cmp_elapsed[i], cmp_commands[i]
# and sets `variants` from its first column when the caller did not.
#
# comparison.csv: variant,throughput_per_s,p50_ms,p99_ms,commands_per_acquisition,elapsed_ms,total_commands

cmp_file = exists("comparison") ? comparison : dir.'/comparison.csv'
set datafile separator comma
stats cmp_file using 0 nooutput
n_cmp = STATS_records - 1
if (n_cmp > 0) {
    array cmp_variant[n_cmp]
    array cmp_throughput[n_cmp]
    array cmp_p50[n_cmp]
    array cmp_p99[n_cmp]
    array cmp_cpa[n_cmp]
    array cmp_elapsed[n_cmp]
    array cmp_commands[n_cmp]
    cmp_i = 0
    stats cmp_file skip 1 using (cmp_i = cmp_i + 1, cmp_variant[cmp_i] = strcol(1), \
            cmp_throughput[cmp_i] = $2, cmp_p50[cmp_i] = $3, cmp_p99[cmp_i] = $4, cmp_cpa[cmp_i] = $5, \
            cmp_elapsed[cmp_i] = $6, cmp_commands[cmp_i] = $7, 0) nooutput
    n_cmp = cmp_i
}
if (!exists("variants")) {
    variants = ''
    do for [i=1:n_cmp] { variants = variants.(i > 1 ? ' ' : '').cmp_variant[i] }
}
set datafile separator whitespace
