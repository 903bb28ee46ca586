/*
 * test_squirectl.c: squirectl's admin commands against a real redis-server
 * holding data written by Debian's Sidekiq 6.4.1 (client and API), by the
 * squire daemon and client, and by hand in Sidekiq's exact formats; results
 * are read back through Sidekiq's own API.
 */
#include <stdarg.h>
#include <time.h>

#include "itest.h"

#define CTL_USAGE_EXIT 64

/* Run squirectl with args (shell syntax); stdout into *out (malloc'd). */
static int ctl(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int ctl(char **out, const char *fmt, ...)
{
    char args[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    return sqt_sh(R.url, out, "%s %s", SQ_TEST_SQUIRECTL, args);
}

static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &e);
    ck_assert_msg(j != NULL, "not JSON (%s): %s", e.text, text);
    return j;
}

/* squirectl ... --json, exit 0, parsed (new reference). */
static json_t *ctl_json(const char *args)
{
    char *out = NULL;
    int st = ctl(&out, "%s --json", args);
    ck_assert_msg(st == 0, "squirectl %s exited %d: %s", args, st, out);
    json_t *j = parse(out);
    free(out);
    return j;
}

static json_t *ruby(const char *args)
{
    char *out = NULL;
    int st = sqt_ruby(R.url, &out, "sidekiq.rb", args);
    ck_assert_msg(st == 0, "ruby sidekiq.rb %s exited %d: %s", args, st, out);
    json_t *j = parse(out);
    free(out);
    return j;
}

static const char *str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    ck_assert_msg(s != NULL, "no string %s", key);
    return s;
}

static long long num(const json_t *o, const char *key)
{
    return (long long)json_integer_value(json_object_get(o, key));
}

/* A process hash exactly as Sidekiq 6.4.1/7.x's heartbeat writes it. */
static void write_process(const char *id, const char *tag, int busy)
{
    char info[600];
    snprintf(info, sizeof info,
             "{\"hostname\":\"box\",\"started_at\":%.6f,\"pid\":4242,\"tag\":\"%s\","
             "\"concurrency\":10,\"queues\":[\"critical\",\"default\"],\"labels\":[],"
             "\"identity\":\"%s\"}",
             sqt_wall() - 100, tag, id);
    char beat[32];
    snprintf(beat, sizeof beat, "%.6f", sqt_wall());
    freeReplyObject(sqt_cmd(C, "SADD processes %s", id));
    freeReplyObject(sqt_cmd(C, "HSET %s info %s busy %d beat %s quiet false rss 1234 rtt_us 100",
                            id, info, busy, beat));
    freeReplyObject(sqt_cmd(C, "EXPIRE %s 60", id));
}

/* A job that FailJob puts in the retry set through the squire daemon. */
static json_t *squire_retry_entry(void)
{
    sqt_proc p;
    itest_squire(&p, R.url, "2", NULL);
    json_t *a = ruby("fail");
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "ZCARD retry"), 1);
    itest_stop(&p);
    return a;
}

/* The parsed member of queue:<q> with this jid (new reference), or NULL. */
static json_t *queued(const char *q, const char *jid)
{
    redisReply *r = sqt_cmd(C, "LRANGE queue:%s 0 -1", q);
    json_t *found = NULL;
    for (size_t i = 0; i < r->elements && !found; i++) {
        json_t *j = parse(r->element[i]->str);
        if (strcmp(str(j, "jid"), jid) == 0)
            found = j;
        else
            json_decref(j);
    }
    freeReplyObject(r);
    return found;
}

START_TEST(stats_and_queues_match_sidekiq_stats)
{
    json_t *f = squire_retry_entry();         /* processed 1, failed 1, retry 1 */
    json_decref(ruby("push_bulk 3"));         /* Ruby: 3 in default */
    json_decref(ruby("perform_in 600"));      /* Ruby: scheduled */
    json_decref(ruby("kill_job Gone '[1]'")); /* Ruby API: dead */
    sq_push_opts o = {.queue = "critical"};
    char jid[25];
    itest_push("HardJob", "[1]", &o, jid); /* squire client: critical */
    itest_push("HardJob", "[2]", &o, jid);
    write_process("box:4242:aaaaaaaaaaaa", "app", 3);
    write_process("box:4243:bbbbbbbbbbbb", "app", 2);
    sqt_sleep(1.1); /* latencies above 1 s */

    json_t *want = ruby("stats_full");
    json_t *got = ctl_json("stats");
    ck_assert_int_eq(num(got, "processed"), num(want, "processed"));
    ck_assert_int_eq(num(got, "processed"), 1);
    ck_assert_int_eq(num(got, "failed"), num(want, "failed"));
    ck_assert_int_eq(num(got, "failed"), 1);
    ck_assert_int_eq(num(got, "retries"), num(want, "retry_size"));
    ck_assert_int_eq(num(got, "scheduled"), num(want, "scheduled_size"));
    ck_assert_int_eq(num(got, "dead"), num(want, "dead_size"));
    ck_assert_int_eq(num(got, "enqueued"), num(want, "enqueued"));
    ck_assert_int_eq(num(got, "enqueued"), 5);
    ck_assert_int_eq(num(got, "busy"), num(want, "workers_size"));
    ck_assert_int_eq(num(got, "busy"), 5);
    ck_assert_int_eq(num(got, "processes"), num(want, "processes_size"));
    json_t *queues = json_object_get(got, "queues");
    ck_assert_int_eq(json_array_size(queues), json_object_size(json_object_get(want, "queues")));
    size_t i;
    json_t *q;
    json_array_foreach(queues, i, q)
    {
        const char *name = str(q, "name");
        ck_assert_int_eq(num(q, "size"), json_integer_value(json_object_get(
                                             json_object_get(want, "queues"), name)));
        double lat = json_number_value(json_object_get(q, "latency"));
        double rl = json_number_value(json_object_get(json_object_get(want, "latency"), name));
        ck_assert_msg(lat > 1.0 && lat - rl < 3 && rl - lat < 3, "%s latency %f vs %f", name, lat,
                      rl);
    }
    json_t *qs = ctl_json("queues");
    ck_assert(json_equal(json_object_get(json_array_get(qs, 0), "name"),
                         json_object_get(json_array_get(queues, 0), "name")));
    ck_assert_int_eq(json_array_size(qs), 2);
    char *out = NULL;
    ck_assert_int_eq(ctl(&out, "stats"), 0);
    ck_assert_ptr_nonnull(strstr(out, "Enqueued:  5"));
    ck_assert_ptr_nonnull(strstr(out, "critical"));
    free(out);
    json_decref(qs), json_decref(got), json_decref(want), json_decref(f);
}
END_TEST

START_TEST(jobs_lists_and_filters)
{
    json_t *f = squire_retry_entry(); /* first: the daemon would run the rest */
    json_t *a = ruby("push HardJob '[1]'");
    json_decref(ruby("push OtherJob '[2]'"));
    json_decref(ruby("push_bulk 2"));
    char jid[25];
    itest_push("HardJob", "[\"from C\"]", NULL, jid);
    json_t *all = ctl_json("jobs default");
    ck_assert_int_eq(json_array_size(all), 5);
    /* newest first, like the Web UI: the C push is at the left */
    ck_assert_str_eq(str(json_array_get(all, 0), "jid"), jid);
    json_t *hard = ctl_json("jobs default --class HardJob");
    ck_assert_int_eq(json_array_size(hard), 4);
    json_t *one = ctl_json("jobs default --limit 1");
    ck_assert_int_eq(json_array_size(one), 1);
    char args[100];
    snprintf(args, sizeof args, "jobs default --jid %s", str(a, "jid"));
    json_t *byjid = ctl_json(args);
    ck_assert_int_eq(json_array_size(byjid), 1);
    json_t *e = json_array_get(byjid, 0);
    ck_assert_str_eq(str(e, "class"), "HardJob");
    ck_assert_str_eq(str(e, "queue"), "default");
    ck_assert_int_eq(json_integer_value(json_array_get(json_object_get(e, "args"), 0)), 1);
    ck_assert(json_number_value(json_object_get(e, "enqueued_at")) > sqt_wall() - 60);

    /* beside squire's retry entry, one with hostile text in its error message */
    freeReplyObject(
        sqt_cmd(C, "ZADD retry 1 %s",
                "{\"class\":\"EvilJob\",\"args\":[],\"jid\":\"eeeeeeeeeeeeeeeeeeeeeeee\","
                "\"queue\":\"default\",\"retry_count\":4,\"error_class\":\"E\","
                "\"error_message\":\"a\\u001b[2J\\u001b]0;pwned\\u0007\\nb\"}"));
    freeReplyObject(sqt_cmd(C, "ZADD retry 2 %s", "not json at all"));
    json_t *r = ctl_json("jobs retry");
    ck_assert_int_eq(json_array_size(r), 3);
    ck_assert_str_eq(str(json_array_get(r, 0), "jid"), "eeeeeeeeeeeeeeeeeeeeeeee"); /* by score */
    ck_assert(json_is_null(json_object_get(json_array_get(r, 1), "jid")));
    json_t *fe = json_array_get(r, 2);
    ck_assert_str_eq(str(fe, "jid"), str(f, "jid"));
    ck_assert_str_eq(str(fe, "class"), "FailJob");
    ck_assert_str_eq(str(fe, "error_class"), "RuntimeError");
    ck_assert_str_eq(str(fe, "error_message"), "it broke");
    ck_assert_int_eq(num(fe, "retry_count"), 0);
    json_t *rf = ctl_json("jobs retry --class FailJob");
    ck_assert_int_eq(json_array_size(rf), 1);
    char *out = NULL;
    ck_assert_int_eq(ctl(&out, "jobs retry"), 0);
    ck_assert_ptr_null(strchr(out, '\033'));
    ck_assert_ptr_null(strchr(out, '\007'));
    ck_assert_ptr_nonnull(strstr(out, "a\\x1b[2J\\x1b]0;pwned\\x07\\nb"));
    ck_assert_ptr_nonnull(strstr(out, "RuntimeError: it broke"));
    ck_assert_ptr_nonnull(strstr(out, "not json at all"));
    free(out);
    ck_assert_int_eq(ctl(&out, "jobs scheduled"), 0); /* empty set: just the head */
    ck_assert_ptr_nonnull(strstr(out, "RUN AT"));
    free(out);
    json_decref(rf), json_decref(r), json_decref(f), json_decref(byjid), json_decref(one);
    json_decref(hard), json_decref(all), json_decref(a);
}
END_TEST

START_TEST(retry_round_trip_from_the_retry_set)
{
    json_t *a = squire_retry_entry();
    const char *jid = str(a, "jid");
    freeReplyObject(sqt_cmd(C, "DEL queue:default"));
    freeReplyObject(sqt_cmd(C, "SREM queues default"));
    char *out = NULL;
    double before = sqt_wall();
    ck_assert_int_eq(ctl(&out, "retry %s", jid), 0);
    ck_assert_str_eq(out, "retried 1\n");
    free(out);
    ck_assert_int_eq(sqt_int(C, "ZCARD retry"), 0);
    ck_assert_int_eq(sqt_int(C, "SISMEMBER queues default"), 1);
    json_t *j = queued("default", jid);
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(num(j, "retry_count"), -1); /* 0 decremented, as the Web UI */
    ck_assert(json_is_real(json_object_get(j, "enqueued_at")));
    ck_assert(json_real_value(json_object_get(j, "enqueued_at")) >= before - 1);
    ck_assert_str_eq(str(j, "error_message"), "it broke"); /* everything else kept */
    json_t *q = ruby("queue default");
    ck_assert_int_eq(json_array_size(q), 1);
    ck_assert_str_eq(str(json_array_get(q, 0), "jid"), jid);
    ck_assert_str_eq(str(json_array_get(q, 0), "klass"), "FailJob");
    ck_assert_str_eq(str(json_array_get(q, 0), "enqueued_at_class"), "Float");
    /* it is gone from the retry set: a second retry finds nothing */
    ck_assert_int_eq(ctl(NULL, "retry %s 2>/dev/null", jid), 1);
    json_decref(q), json_decref(j), json_decref(a);
}
END_TEST

/* A retry entry holding numbers beyond int64 and double (valid JSON) is
 * listed, found by jid and retried like any other, its text byte for byte. */
START_TEST(retry_keeps_numbers_beyond_64_bits)
{
    static const char entry[] =
        "{\"class\":\"FailJob\",\"args\":[18446744073709551616,1e400],\"queue\":\"default\","
        "\"jid\":\"9a9a9a9a9a9a9a9a9a9a9a9a\",\"retry\":true,\"retry_count\":0,"
        "\"error_class\":\"E\",\"error_message\":\"m\",\"failed_at\":1700000000.5}";
    freeReplyObject(sqt_cmd(C, "ZADD retry 4070908800 %s", entry));
    json_t *list = ctl_json("jobs retry");
    ck_assert_int_eq(json_array_size(list), 1);
    json_decref(list);
    char *out = NULL;
    ck_assert_int_eq(ctl(&out, "retry 9a9a9a9a9a9a9a9a9a9a9a9a"), 0);
    ck_assert_str_eq(out, "retried 1\n");
    free(out);
    ck_assert_int_eq(sqt_int(C, "ZCARD retry"), 0);
    redisReply *r = sqt_cmd(C, "LINDEX queue:default 0");
    ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
    ck_assert_msg(strstr(r->str, "\"args\":[18446744073709551616,1e400],") != NULL, "%s", r->str);
    ck_assert_msg(strstr(r->str, "\"retry_count\":-1") != NULL, "%s", r->str);
    freeReplyObject(r);
}
END_TEST

START_TEST(dead_round_trip_and_retry_all)
{
    sqt_proc p;
    itest_squire(&p, R.url, "2", NULL);
    json_t *a = ruby("dead_job"); /* squire buries it (retry: 0) */
    ck_assert_int_eq(sqt_wait_int(C, 1, 10, "ZCARD dead"), 1);
    itest_stop(&p);
    json_t *b = ruby("kill_job Gone '[7]' low"); /* DeadSet#kill from Ruby */
    ck_assert_int_eq(sqt_int(C, "ZCARD dead"), 2);
    /* not in retry: found in dead */
    ck_assert_int_eq(ctl(NULL, "retry %s", str(a, "jid")), 0);
    json_t *j = queued("default", str(a, "jid"));
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(num(j, "retry_count"), -1);
    ck_assert_str_eq(str(j, "class"), "DeadJob");
    json_decref(j);
    /* --from retry does not look in dead */
    ck_assert_int_eq(ctl(NULL, "retry %s --from retry 2>/dev/null", str(b, "jid")), 1);
    json_t *r = ctl_json("retry --all --from dead");
    ck_assert_int_eq(num(r, "retried"), 1);
    ck_assert_int_eq(sqt_int(C, "ZCARD dead"), 0);
    j = queued("low", str(b, "jid"));
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(num(j, "retry_count"), 2);
    json_t *q = ruby("queue low");
    ck_assert_str_eq(str(json_array_get(q, 0), "jid"), str(b, "jid"));
    ck_assert_str_eq(str(json_array_get(q, 0), "klass"), "Gone");
    json_t *s = ruby("stats_full");
    ck_assert_int_eq(num(s, "enqueued"), 2);
    json_decref(s), json_decref(q), json_decref(j), json_decref(r), json_decref(b), json_decref(a);
}
END_TEST

START_TEST(kill_delete_and_clear)
{
    json_t *later = ruby("perform_in 600");
    ck_assert_int_eq(ctl(NULL, "kill %s", str(later, "jid")), 0);
    ck_assert_int_eq(sqt_int(C, "ZCARD schedule"), 0);
    json_t *dead = ruby("dead");
    ck_assert_int_eq(json_array_size(dead), 1);
    ck_assert_str_eq(str(json_array_get(dead, 0), "jid"), str(later, "jid"));
    double at = json_number_value(json_object_get(json_array_get(dead, 0), "score"));
    ck_assert_msg(at > sqt_wall() - 30 && at <= sqt_wall() + 1, "died at %f, now %f", at,
                  sqt_wall()); /* score = time of death */
    json_t *f = squire_retry_entry();
    ck_assert_int_eq(ctl(NULL, "kill %s --from retry", str(f, "jid")), 0);
    ck_assert_int_eq(sqt_int(C, "ZCARD retry"), 0);
    ck_assert_int_eq(sqt_int(C, "ZCARD dead"), 2);
    ck_assert_int_eq(ctl(NULL, "kill %s 2>/dev/null", str(f, "jid")), 1); /* not in retry now */

    /* delete: exact members only */
    json_t *a = ruby("push HardJob '[1]'");
    json_t *b = ruby("push HardJob '[2]'");
    ck_assert_int_eq(ctl(NULL, "delete %s --from default", str(a, "jid")), 0);
    ck_assert_int_eq(sqt_int(C, "LLEN queue:default"), 1);
    json_t *left = queued("default", str(b, "jid"));
    ck_assert_ptr_nonnull(left);
    ck_assert_int_eq(ctl(NULL, "delete %s --from dead", str(f, "jid")), 0);
    ck_assert_int_eq(sqt_int(C, "ZCARD dead"), 1);
    ck_assert_int_eq(ctl(NULL, "delete %s --from dead 2>/dev/null", str(f, "jid")), 1);

    /* clear: refused without --yes, then a queue (and its `queues` entry), then a set */
    ck_assert_int_eq(ctl(NULL, "clear default 2>/dev/null"), CTL_USAGE_EXIT);
    ck_assert_int_eq(sqt_int(C, "LLEN queue:default"), 1);
    ck_assert_int_eq(ctl(NULL, "clear default --yes"), 0);
    ck_assert_int_eq(sqt_int(C, "EXISTS queue:default"), 0);
    ck_assert_int_eq(sqt_int(C, "SISMEMBER queues default"), 0);
    ck_assert_int_eq(ctl(NULL, "clear dead --yes"), 0);
    ck_assert_int_eq(sqt_int(C, "EXISTS dead"), 0);
    json_t *st = ruby("stats_full");
    ck_assert_int_eq(num(st, "dead_size"), 0);
    ck_assert_int_eq(num(st, "enqueued"), 0);
    json_decref(st), json_decref(left), json_decref(b), json_decref(a), json_decref(f);
    json_decref(dead), json_decref(later);
}
END_TEST

/* kill trims the dead set to squire's configured dead_max_jobs and
 * dead_timeout_in_seconds (-C FILE, or ./config/sidekiq.yml as squire finds
 * it), not to Sidekiq's defaults. */
START_TEST(kill_trims_to_the_configured_limits)
{
    const char *cfg = itest_config(":dead_max_jobs: 3\n:dead_timeout_in_seconds: 3600\n");
    double now = sqt_wall();
    freeReplyObject(sqt_cmd(C, "ZADD dead %f old", now - 7200)); /* past the 1 h timeout */
    for (int i = 0; i < 4; i++)
        freeReplyObject(sqt_cmd(C, "ZADD dead %f recent%d", now - 100 + i, i));
    const char *job = "{\"class\":\"HardJob\",\"args\":[],\"queue\":\"default\","
                      "\"jid\":\"0123456789abcdef01234567\"}";
    freeReplyObject(sqt_cmd(C, "ZADD retry %f %s", now + 600, job));
    ck_assert_int_eq(ctl(NULL, "-C %s kill 0123456789abcdef01234567 --from retry", cfg), 0);
    /* rank trim 0 -3 keeps 2: the killed job and the newest other; "old" went by age */
    ck_assert_int_eq(sqt_int(C, "ZCARD dead"), 2);
    ck_assert_int_eq(sqt_int(C, "ZCARD retry"), 0);
    redisReply *r = sqt_cmd(C, "ZRANGE dead 0 -1");
    ck_assert_str_eq(r->element[0]->str, "recent3");
    ck_assert_str_eq(r->element[1]->str, job);
    freeReplyObject(r);

    /* the same file found as squire finds it: <cwd>/config/sidekiq.yml */
    char dir[256], *out = NULL;
    sqt_tempdir(dir, "app");
    ck_assert_int_eq(
        sqt_sh(NULL, NULL, "mkdir -p %s/config && cp %s %s/config/sidekiq.yml", dir, cfg, dir), 0);
    for (int i = 0; i < 3; i++)
        freeReplyObject(sqt_cmd(C, "ZADD dead %f more%d", now - 50 + i, i));
    freeReplyObject(sqt_cmd(C, "ZADD schedule %f %s", now + 600, job));
    ck_assert_int_eq(
        sqt_sh(R.url, &out, "cd %s && %s kill 0123456789abcdef01234567", dir, SQ_TEST_SQUIRECTL),
        0);
    free(out);
    ck_assert_int_eq(sqt_int(C, "ZCARD dead"), 2);

    /* a configuration that does not load: exit 78 with file, line and key,
     * and nothing moved */
    const char *bad = itest_config(":dead_max_jobs: 0\n");
    freeReplyObject(sqt_cmd(C, "ZADD retry %f %s", now + 600, job));
    ck_assert_int_eq(
        sqt_sh(R.url, &out, "%s -C %s kill 0123456789abcdef01234567 2>&1", SQ_TEST_SQUIRECTL, bad),
        78);
    ck_assert_msg(strstr(out, "sidekiq.yml:1: dead_max_jobs") != NULL, "%s", out);
    free(out);
    ck_assert_int_eq(sqt_int(C, "ZCARD retry"), 1);
}
END_TEST

START_TEST(quiet_and_stop_write_signals)
{
    write_process("box:4242:aaaaaaaaaaaa", "app", 1);
    write_process("box:4243:bbbbbbbbbbbb", "app", 0);
    freeReplyObject(sqt_cmd(C, "SADD processes box:1:expired"));
    ck_assert_int_eq(ctl(NULL, "quiet box:4242:aaaaaaaaaaaa"), 0);
    ck_assert_int_eq(ctl(NULL, "stop box:4242:aaaaaaaaaaaa"), 0);
    redisReply *r = sqt_cmd(C, "LRANGE box:4242:aaaaaaaaaaaa-signals 0 -1");
    ck_assert_int_eq(r->elements, 2);
    ck_assert_str_eq(r->element[0]->str, "TERM"); /* LPUSH: the beat RPOPs TSTP first */
    ck_assert_str_eq(r->element[1]->str, "TSTP");
    freeReplyObject(r);
    long long ttl = sqt_int(C, "TTL box:4242:aaaaaaaaaaaa-signals");
    ck_assert(ttl > 0 && ttl <= 60);
    /* unknown or expired identities are refused and nothing is written */
    ck_assert_int_eq(ctl(NULL, "quiet box:9:nope 2>/dev/null"), 1);
    ck_assert_int_eq(ctl(NULL, "stop box:1:expired 2>/dev/null"), 1);
    ck_assert_int_eq(sqt_int(C, "EXISTS box:9:nope-signals box:1:expired-signals"), 0);
    json_t *all = ctl_json("quiet --all");
    ck_assert_int_eq(json_array_size(json_object_get(all, "sent")), 2);
    ck_assert_int_eq(sqt_int(C, "LLEN box:4243:bbbbbbbbbbbb-signals"), 1);
    ck_assert_int_eq(sqt_int(C, "LLEN box:4242:aaaaaaaaaaaa-signals"), 3);
    ck_assert_int_eq(sqt_int(C, "EXISTS box:1:expired-signals"), 0);
    json_decref(all);
}
END_TEST

START_TEST(processes_reads_sidekiq_format_and_skips_expired)
{
    write_process("box:4242:aaaaaaaaaaaa", "myapp", 1);
    freeReplyObject(sqt_cmd(C, "SADD processes box:1:expired"));
    json_t *rb = ruby("processes"); /* Sidekiq reads the hand-written hash too */
    ck_assert_int_eq(json_array_size(rb), 1);
    json_t *p = ctl_json("processes");
    ck_assert_int_eq(json_array_size(p), 1);
    json_t *e = json_array_get(p, 0);
    ck_assert_str_eq(str(e, "identity"), str(json_array_get(rb, 0), "identity"));
    ck_assert_int_eq(num(e, "busy"), 1);
    ck_assert_int_eq(num(e, "rss"), 1234);
    ck_assert_int_eq(num(e, "rtt_us"), 100);
    ck_assert(json_is_false(json_object_get(e, "quiet")));
    ck_assert(json_number_value(json_object_get(e, "beat")) > sqt_wall() - 30);
    json_t *info = json_object_get(e, "info");
    ck_assert_int_eq(num(info, "concurrency"), 10);
    ck_assert_str_eq(str(info, "tag"), "myapp");
    char *out = NULL;
    ck_assert_int_eq(ctl(&out, "processes"), 0);
    ck_assert_ptr_nonnull(strstr(out, "box:4242:aaaaaaaaaaaa"));
    ck_assert_ptr_nonnull(strstr(out, "box:4242 "));
    ck_assert_ptr_nonnull(strstr(out, "myapp"));
    ck_assert_ptr_nonnull(strstr(out, "critical, default"));
    ck_assert_ptr_null(strstr(out, "expired"));
    free(out);
    json_decref(p), json_decref(rb);
}
END_TEST

START_TEST(dashboard_once)
{
    write_process("box:4242:aaaaaaaaaaaa", "app", 2);
    json_decref(ruby("push_bulk 2"));
    char *out = NULL;
    ck_assert_int_eq(ctl(&out, "dashboard --once"), 0);
    ck_assert_ptr_nonnull(strstr(out, "Processed:"));
    ck_assert_ptr_nonnull(strstr(out, "Busy:      2"));
    ck_assert_ptr_nonnull(strstr(out, "Processes (1 live)"));
    ck_assert_ptr_nonnull(strstr(out, "box:4242:aaaaaaaaaaaa"));
    ck_assert_ptr_nonnull(strstr(out, "default"));
    ck_assert_ptr_null(strchr(out, '\033'));
    free(out);
    json_t *j = ctl_json("dashboard --once");
    ck_assert_int_eq(num(json_object_get(j, "stats"), "enqueued"), 2);
    ck_assert_int_eq(json_array_size(json_object_get(j, "processes")), 1);
    json_decref(j);
    /* the live view clears the screen each frame and stops on SIGINT */
    ck_assert_int_eq(ctl(&out, "dashboard --interval 0.2 & pid=$!; sleep 1; kill -INT $pid; "
                               "wait $pid"),
                     0);
    ck_assert_ptr_nonnull(strstr(out, "\033[H\033[2J"));
    free(out);
}
END_TEST

START_TEST(usage_errors_and_redacted_urls)
{
    static const char *const bad[] = {
        "",
        "bogus",
        "jobs",
        "jobs default extra",
        "jobs retry --limit x",
        "retry",
        "retry --all abc",
        "retry abc --from schedule",
        "delete abc",
        "clear retry",
        "kill",
        "quiet",
        "stop a b",
        "dashboard --interval 0",
        "stats extra",
        "processes --bogus",
        "queues --class X",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int st = ctl(NULL, "%s >/dev/null 2>&1", bad[i]);
        ck_assert_msg(st == CTL_USAGE_EXIT, "'%s' exited %d", bad[i], st);
    }
    ck_assert_int_eq(ctl(NULL, "stats -h"), 0);
    char *out = NULL;
    int st = sqt_sh(NULL, &out, "%s -u redis://:s3cret@127.0.0.1:%d/0 stats 2>&1",
                    SQ_TEST_SQUIRECTL, sqt_free_port());
    ck_assert_int_eq(st, 1);
    ck_assert_ptr_null(strstr(out, "s3cret"));
    ck_assert_ptr_nonnull(strstr(out, "REDACTED"));
    free(out);
    /* a URL where it does not belong is named in the error, redacted; the
     * GNU forms --url=URL and -uURL are the URL option */
    char url[80];
    snprintf(url, sizeof url, "redis://:s3cret@127.0.0.1:%d/0", sqt_free_port());
    static const struct {
        const char *before, *after;
        int exit;
        bool named; /* the URL is in the message */
    } forms[] = {
        {"", " stats", CTL_USAGE_EXIT, true},
        {"stats --url=", "", CTL_USAGE_EXIT, true},
        {"stats -u ", "", CTL_USAGE_EXIT, false},
        {"push X [] --url=", "", CTL_USAGE_EXIT, true},
        {"--bogus=", " stats", CTL_USAGE_EXIT, true},
        {"--url=", " stats", 1, true},
        {"-u", " stats", 1, true},
    };
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        st = sqt_sh(NULL, &out, "%s %s%s%s 2>&1", SQ_TEST_SQUIRECTL, forms[i].before, url,
                    forms[i].after);
        ck_assert_msg(st == forms[i].exit, "'%s...%s' exited %d: %s", forms[i].before,
                      forms[i].after, st, out);
        ck_assert_msg(strstr(out, "s3cret") == NULL, "leak: %s", out);
        ck_assert_msg(!forms[i].named || strstr(out, "redis://:REDACTED@127.0.0.1") != NULL, "%s",
                      out);
        free(out);
    }
}
END_TEST

static Suite *squirectl_suite(void)
{
    Suite *s = suite_create("squirectl");
    TCase *tc = tcase_create("admin");
    tcase_add_checked_fixture(tc, itest_setup, itest_teardown);
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, stats_and_queues_match_sidekiq_stats);
    tcase_add_test(tc, jobs_lists_and_filters);
    tcase_add_test(tc, retry_round_trip_from_the_retry_set);
    tcase_add_test(tc, retry_keeps_numbers_beyond_64_bits);
    tcase_add_test(tc, dead_round_trip_and_retry_all);
    tcase_add_test(tc, kill_delete_and_clear);
    tcase_add_test(tc, kill_trims_to_the_configured_limits);
    tcase_add_test(tc, quiet_and_stop_write_signals);
    tcase_add_test(tc, processes_reads_sidekiq_format_and_skips_expired);
    tcase_add_test(tc, dashboard_once);
    tcase_add_test(tc, usage_errors_and_redacted_urls);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return sqt_run(squirectl_suite());
}
