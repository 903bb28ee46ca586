/*
 * scripts.c: the Lua scripts that move a member out of a sorted set (retry,
 * schedule, dead), shared by the poller and squirectl's retry/kill.
 *
 * Scripts are not rolled back when a command fails midway, so each checks
 * the types of the keys it will write before it removes anything: a
 * wrong-typed key leaves the member where it was instead of losing it.
 */
#include "redis.h"
#include "sidekiq.h"

/* KEYS: zset, queue:<q>, queues. ARGV: member, payload to push, queue name.
 * Returns 1 moved, 0 the member was gone, -1 queue key, -2 `queues` has the
 * wrong type. */
sq_script sq_script_zset_to_queue = SQ_SCRIPT("local t = redis.call('TYPE', KEYS[2]).ok\n"
                                              "if t ~= 'list' and t ~= 'none' then return -1 end\n"
                                              "t = redis.call('TYPE', KEYS[3]).ok\n"
                                              "if t ~= 'set' and t ~= 'none' then return -2 end\n"
                                              "if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then\n"
                                              "  redis.call('LPUSH', KEYS[2], ARGV[2])\n"
                                              "  redis.call('SADD', KEYS[3], ARGV[3])\n"
                                              "  return 1\n"
                                              "end\n"
                                              "return 0\n");

/* KEYS: zset, dead. ARGV: member, then sq_dead_args (score, cutoff, max),
 * and optionally the payload to add (the member itself when absent). Adds
 * to the dead set with Sidekiq's trim (SQ_LUA_DEAD_ADD). Returns 1 moved,
 * 0 gone, -1 `dead` has the wrong type. */
sq_script sq_script_zset_to_dead =
    SQ_SCRIPT(SQ_LUA_DEAD_ADD "local t = redis.call('TYPE', KEYS[2]).ok\n"
                              "if t ~= 'zset' and t ~= 'none' then return -1 end\n"
                              "if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then\n"
                              "  dead_add(KEYS[2], ARGV[2], ARGV[5] or ARGV[1], ARGV[3], ARGV[4])\n"
                              "  return 1\n"
                              "end\n"
                              "return 0\n");
