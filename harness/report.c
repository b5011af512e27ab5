/* report.c -- index.html for a results folder. A static page with relative links only, so it
 * works from disk, from a CI artifact or behind any web server; no scripts, no network. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomic.h"
#include "report.h"
#include "results.h"

static const char *const variant_charts[][2] = {
    {"latency", "Acquire latency by percentile"},
    {"fairness", "Acquisitions and timeouts per client"},
    {"timeline", "Throughput, timeouts and holders over time"},
    {"holders", "Who holds each key"},
};
static const char *const compare_charts[][2] = {
    {"compare-latency", "Latency spectra"},
    {"compare-bars", "Throughput, p99 and commands per acquisition"},
    {"compare-work", "Work against completion time"},
};

static void put_escaped(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

static void put_row(FILE *f, const lb_summary *s)
{
    fputs("<tr><td>", f);
    put_escaped(f, s->name);
    fprintf(f, "</td><td>%s</td><td>%s</td><td>%s</td>", s->algorithm, s->wait, s->backoff);
    fprintf(f, "<td>%lld</td><td>%.1f</td><td>%.3f</td><td>%.3f</td><td>%lld</td><td>%lld</td>"
               "<td>%lld</td><td>%lld</td><td>%.2f</td><td>%.3f</td><td class=\"%s\">%s</td></tr>\n",
            (long long)s->acquisitions, s->throughput_per_s, s->acquire_ms.p50, s->acquire_ms.p99,
            (long long)s->timeouts, (long long)s->errors, (long long)s->overlaps,
            (long long)s->counter.lost_updates, s->redis.commands_per_acquisition,
            s->fairness.jain, s->expect.passed ? "pass" : "fail",
            s->expect.passed ? "pass" : "FAIL");
}

static void put_table(FILE *f, const lb_summary *v, size_t n)
{
    fputs("<table>\n<tr><th>variant</th><th>algorithm</th><th>wait</th><th>back-off</th>"
          "<th>acquisitions</th><th>per s</th><th>p50 ms</th><th>p99 ms</th><th>timeouts</th>"
          "<th>errors</th><th>overlaps</th><th>lost updates</th><th>commands/acq</th>"
          "<th>Jain</th><th>expect</th></tr>\n", f);
    for (size_t i = 0; i < n; i++)
        put_row(f, &v[i]);
    fputs("</table>\n", f);
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < v[i].expect.nfailures; k++) {
            const lb_expect_failure *x = &v[i].expect.failures[k];
            fputs("<p class=\"fail\">", f);
            put_escaped(f, v[i].name);
            fprintf(f, ": %s = %g, expected %s</p>\n", x->path, x->value, x->bound);
        }
    }
}

static void put_figure(FILE *f, const char *prefix, const char *chart, const char *caption,
                       const char *format)
{
    fprintf(f, "<figure><a href=\"%s%s.%s\"><img src=\"%s%s.%s\" alt=\"%s\"></a>"
               "<figcaption>%s</figcaption></figure>\n",
            prefix, chart, format, prefix, chart, format, caption, caption);
}

static void put_page(FILE *f, const lb_scenario *s, const lb_summary *v, size_t n, int repeats,
                     const char *format)
{
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>", f);
    put_escaped(f, s->name);
    fputs(" - lockbench</title>\n<style>body{font-family:sans-serif;max-width:1250px;margin:2em "
          "auto;padding:0 1em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
          "padding:.25em .5em;text-align:right}td:first-child,th:first-child{text-align:left}"
          ".fail{color:#b00;font-weight:bold}.pass{color:#070}img{max-width:100%;border:1px "
          "solid #eee}pre{background:#f6f6f6;padding:1em;overflow:auto}</style>\n</head><body>\n",
          f);
    fputs("<h1>", f);
    put_escaped(f, s->name);
    fputs("</h1>\n<p>", f);
    put_escaped(f, s->description);
    fputs("</p>\n<h2>Summary</h2>\n", f);
    put_table(f, v, n);
    if (n > 1 && repeats <= 1) {
        fputs("<h2>Comparison</h2>\n", f);
        for (size_t c = 0; c < sizeof compare_charts / sizeof *compare_charts; c++)
            put_figure(f, "", compare_charts[c][0], compare_charts[c][1], format);
    }
    for (size_t i = 0; i < n; i++) {
        char prefix[512];
        snprintf(prefix, sizeof prefix, "%s/%s", v[i].name, repeats > 1 ? "repeat-1/" : "");
        fputs("<h2>", f);
        put_escaped(f, v[i].name);
        fprintf(f, "</h2>\n<p><a href=\"%ssummary.json\">summary.json</a> &middot; "
                   "<a href=\"%sacquisitions.csv\">acquisitions.csv</a> &middot; "
                   "<a href=\"%stimeline.csv\">timeline.csv</a> &middot; "
                   "<a href=\"%sevents.csv\">events.csv</a> &middot; "
                   "<a href=\"%slatency.hgrm\">latency.hgrm</a></p>\n",
                prefix, prefix, prefix, prefix, prefix);
        for (size_t c = 0; c < sizeof variant_charts / sizeof *variant_charts; c++)
            put_figure(f, prefix, variant_charts[c][0], variant_charts[c][1], format);
    }
    char *json = lb_scenario_dump(s);
    fputs("<h2>Scenario</h2>\n<pre>", f);
    put_escaped(f, json);
    fputs("</pre>\n</body></html>\n", f);
    free(json);
}

int lb_report_write(const char *dir, const lb_scenario *s, const lb_summary *variants, size_t n,
                    int repeats, const char *format, char *err, size_t errlen)
{
    char *text = NULL, path[4096];
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) {
        snprintf(err, errlen, "index.html: out of memory");
        return -1;
    }
    put_page(f, s, variants, n, repeats, format ? format : "png");
    /* a page cut short by a failed allocation must not be renamed over index.html as whole */
    bool failed = ferror(f) != 0;
    if (fclose(f) != 0 || failed) {
        free(text);
        snprintf(err, errlen, "index.html: out of memory");
        return -1;
    }
    snprintf(path, sizeof path, "%s/index.html", dir);
    int rc = lb_atomic_write(path, text, len);
    if (rc < 0)
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
    free(text);
    return rc;
}
