/* scripted.c -- helpers for the step-function tests. */
#include "scripted.h"

dlock *scripted_lock(const dlock_options *o, int nservers)
{
    dlock *l = dlock__lock_new(NULL, "res", o, nservers);
    assert_non_null(l);
    return l;
}

void assert_cmd(const dlock__batch *b, int i, int server, const dlock__script *script, ...)
{
    va_list ap;
    int argc = 0;
    assert_in_range(i, 0, b->n - 1);
    const dlock__cmd *c = &b->cmd[i];
    assert_int_equal(c->server, server);
    assert_ptr_equal(c->script, script);
    va_start(ap, script);
    for (const char *want = va_arg(ap, const char *); want; want = va_arg(ap, const char *)) {
        assert_in_range(argc, 0, c->argc - 1);
        assert_string_equal(c->argv[argc], want);
        argc++;
    }
    va_end(ap);
    assert_int_equal(argc, c->argc);
}
