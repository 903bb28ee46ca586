/*
 * sidekiq.c: Sidekiq's keys, the queue-name rule and the dead set (sidekiq.h).
 */
#include "sidekiq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "json_text.h"

bool sq_queue_name_usable(const char *name, size_t len)
{
    if (name == NULL || len == 0 || len > SQ_MAX_QUEUE_NAME)
        return false;
    for (size_t i = 0; i < len;) {
        size_t bad = 0, n = sq_utf8_seq((const unsigned char *)name + i, len - i, &bad);
        if (n == 0 || (unsigned char)name[i] < 0x21 || name[i] == 0x7f)
            return false;
        i += n;
    }
    return true;
}

bool sq_queue_name_portable(const char *name, size_t len)
{
    static const char ok[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                             "0123456789_:.-";
    if (!sq_queue_name_usable(name, len))
        return false;
    for (size_t i = 0; i < len; i++)
        if (strchr(ok, name[i]) == NULL)
            return false;
    return true;
}

size_t sq_queue_key(char *buf, size_t size, const char *name)
{
    size_t n = strlen(name);
    if (size == 0)
        return 0;
    if (n + SQ_QUEUE_KEY_PREFIX_LEN + 1 > size) {
        buf[0] = '\0';
        return 0;
    }
    memcpy(buf, SQ_QUEUE_KEY_PREFIX, SQ_QUEUE_KEY_PREFIX_LEN);
    memcpy(buf + SQ_QUEUE_KEY_PREFIX_LEN, name, n + 1);
    return n + SQ_QUEUE_KEY_PREFIX_LEN;
}

char *sq_queue_key_dup(const char *name)
{
    size_t size = strlen(name) + SQ_QUEUE_KEY_PREFIX_LEN + 1;
    char *key = malloc(size);
    if (key != NULL)
        sq_queue_key(key, size, name);
    return key;
}

const char *sq_queue_key_name(const char *key, size_t len, size_t *qlen)
{
    if (len < SQ_QUEUE_KEY_PREFIX_LEN ||
        memcmp(key, SQ_QUEUE_KEY_PREFIX, SQ_QUEUE_KEY_PREFIX_LEN) != 0)
        return NULL;
    *qlen = len - SQ_QUEUE_KEY_PREFIX_LEN;
    return key + SQ_QUEUE_KEY_PREFIX_LEN;
}

void sq_dead_args_make(double now, const sq_dead_limits *lim, sq_dead_args *a)
{
    sq_format_time(now, a->score);
    sq_format_time(now - (double)lim->timeout_seconds, a->cutoff);
    snprintf(a->max, sizeof a->max, "%ld", lim->max_jobs);
}

/* KEYS: dead. ARGV: score, payload, cutoff, max. */
static sq_script dead_add_script =
    SQ_SCRIPT(SQ_LUA_DEAD_ADD "local t = redis.call('TYPE', KEYS[1]).ok\n"
                              "if t ~= 'zset' and t ~= 'none' then\n"
                              "  return redis.error_reply('WRONGTYPE ' .. KEYS[1] ..\n"
                              "    ' is not a sorted set')\n"
                              "end\n"
                              "dead_add(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4])\n"
                              "return 1\n");

int sq_dead_add(sq_redis *r, const sq_dead_limits *lim, const char *payload, size_t len, double now,
                sq_error *err)
{
    sq_dead_args a;
    sq_dead_args_make(now, lim, &a);
    const char *argv[] = {SQ_KEY_DEAD, a.score, payload, a.cutoff, a.max};
    size_t lens[] = {strlen(SQ_KEY_DEAD), strlen(a.score), len, strlen(a.cutoff), strlen(a.max)};
    redisReply *rep = sq_redis_eval(r, &dead_add_script, 1, 5, argv, lens, err);
    if (rep == NULL)
        return -1;
    freeReplyObject(rep);
    return 0;
}
