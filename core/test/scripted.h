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

#define R_STATUS(s) ((redisReply){.type = REDIS_REPLY_STATUS, .str = (char *)(s), .len = sizeof(s) - 1})
#define R_STRING(s) ((redisReply){.type = REDIS_REPLY_STRING, .str = (char *)(s), .len = sizeof(s) - 1})
#define R_ERROR(s)  ((redisReply){.type = REDIS_REPLY_ERROR, .str = (char *)(s), .len = sizeof(s) - 1})
#define R_INT(v)    ((redisReply){.type = REDIS_REPLY_INTEGER, .integer = (v)})
#define R_NIL       ((redisReply){.type = REDIS_REPLY_NIL})
#define R_ARRAY0    ((redisReply){.type = REDIS_REPLY_ARRAY})

/* A lock with no client, as the driver would create it. */
dlock *scripted_lock(const dlock_options *o, int nservers);

/* Asserts that command i of b goes to server, runs script (NULL for a plain command) and has
 * exactly the NULL-terminated argv (a script's keys, then its arguments). */
void assert_cmd(const dlock__batch *b, int i, int server, const dlock__script *script, ...);

#endif
