/* fuzz_scenario.c -- libFuzzer target for the scenario loader.
 *
 * Loads the input as a scenario, with and without external servers, walks every resolved
 * variant and dumps it, then frees everything; the sanitizers report what goes wrong. When the
 * input loads, its dump must load again (the resolved form is itself a valid scenario).
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -std=gnu11 -D_GNU_SOURCE -Iharness \
 *       harness/fuzz_scenario.c harness/scenario.c -ljansson -o build/fuzz_scenario
 *   build/fuzz_scenario -max_total_time=60 CORPUS_DIR scenarios scenarios/invalid
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scenario.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(const lb_scenario *s)
{
    for (size_t i = 0; i < lb_scenario_variant_count(s); i++) {
        const lb_scenario *v = lb_scenario_variant(s, i);
        if (!v || !lb_scenario_variant_name(s, i))
            abort();
        for (size_t e = 0; e < v->nevents; e++)
            for (size_t k = 0; k < v->events[e].nclients; k++)
                if (v->events[e].clients[k] < 0 || (size_t)v->events[e].clients[k] >= v->nclients)
                    abort();
        free(lb_scenario_dump(v));
    }
}

static bool same_dump(const lb_scenario *a, const lb_scenario *b)
{
    char *x = lb_scenario_dump(a), *y = lb_scenario_dump(b);
    bool same = x && y && strcmp(x, y) == 0;
    free(x);
    free(y);
    return same;
}

/* The dump of a loaded scenario loads again, to the same base and the same variants. */
static void reload(const lb_scenario *s)
{
    char err[512];
    char *dump = lb_scenario_dump(s);
    lb_scenario *again = NULL;
    if (!dump)
        return;
    if (lb_scenario_load_buffer("dump.json", dump, strlen(dump), NULL, &again, err,
                                sizeof err) != 0)
        abort();
    if (!same_dump(s, again) ||
        lb_scenario_variant_count(s) != lb_scenario_variant_count(again))
        abort();
    for (size_t i = 0; i < lb_scenario_variant_count(s); i++)
        if (!same_dump(lb_scenario_variant(s, i), lb_scenario_variant(again, i)))
            abort();
    lb_scenario_free(again);
    free(dump);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const lb_override sets[] = {{"lock.backoff.policy", "full-jitter"},
                                       {"clients.0.count", "2"}};
    char err[512];
    lb_scenario *s = NULL;
    if (lb_scenario_load_buffer("fuzz.json", (const char *)data, size, NULL, &s, err,
                                sizeof err) == 0) {
        walk(s);
        reload(s);
    }
    lb_scenario_free(s);

    lb_load_options opt = {.overrides = sets, .noverrides = 2, .external_servers = true};
    if (lb_scenario_load_buffer("fuzz.json", (const char *)data, size, &opt, &s, err,
                                sizeof err) == 0)
        walk(s);
    lb_scenario_free(s);
    return 0;
}
