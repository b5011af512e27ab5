/* scripted.c -- helpers for the step-function tests. */
#include <stdlib.h>

#include "scripted.h"

dlock *scripted_lock(const dlock_options *o, int nservers)
{
    static const unsigned char token[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    dlock *l = dlock__lock_new(NULL, "res", o, nservers, token);
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
    int skip = script ? 3 : 0;  /* EVALSHA sha nkeys */
    if (script) {
        assert_string_equal(c->argv[0], "EVALSHA");
        assert_string_equal(c->argv[1], script->sha);
        assert_int_equal(atoi(c->argv[2]), c->nkeys);
    }
    const char *const *args = dlock__cmd_args(c);
    va_start(ap, script);
    for (const char *want = va_arg(ap, const char *); want; want = va_arg(ap, const char *)) {
        assert_in_range(argc, 0, c->argc - skip - 1);
        assert_string_equal(args[argc], want);
        argc++;
    }
    va_end(ap);
    assert_int_equal(argc, c->argc - skip);
}
