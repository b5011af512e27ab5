/* scripted.h -- scripted replies for driving step functions without a server. */
#ifndef DLOCK_TEST_SCRIPTED_H
#define DLOCK_TEST_SCRIPTED_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "internal.h"

#define R_STATUS(s) ((dlock_reply){.type = DLOCK_REPLY_STATUS, .str = (s), .len = sizeof(s) - 1})
#define R_STRING(s) ((dlock_reply){.type = DLOCK_REPLY_STRING, .str = (s), .len = sizeof(s) - 1})
#define R_ERROR(s)  ((dlock_reply){.type = DLOCK_REPLY_ERROR, .str = (s), .len = sizeof(s) - 1})
#define R_INT(v)    ((dlock_reply){.type = DLOCK_REPLY_INTEGER, .integer = (v)})
#define R_NIL       ((dlock_reply){.type = DLOCK_REPLY_NIL})
#define R_ARRAY0    ((dlock_reply){.type = DLOCK_REPLY_ARRAY})
#define R_ARRAY(n, els) ((dlock_reply){.type = DLOCK_REPLY_ARRAY, .elements = (n), .element = (els)})

/* A batch with room for any step's commands, named b. */
#define SCRIPTED_BATCH(b)                                         \
    dlock__cmd b##_cmds[DLOCK__MAX_BATCH];                        \
    const char *b##_args[DLOCK__MAX_BATCH * DLOCK__CMD_MAX_ARGC]; \
    dlock__batch b = {.cap = DLOCK__MAX_BATCH, .cmd = b##_cmds,   \
                      .acap = DLOCK__MAX_BATCH * DLOCK__CMD_MAX_ARGC, .args = b##_args}

/* A lock with no client, as the driver would create it (its token: 00 01 02 ... 0f). */
dlock *scripted_lock(const dlock_options *o, int nservers);

/* Asserts that command i of b goes to server, runs script (NULL for a plain command) and has
 * exactly the NULL-terminated argv (a script's keys, then its arguments). */
void assert_cmd(const dlock__batch *b, int i, int server, const dlock__script *script, ...);

#endif
