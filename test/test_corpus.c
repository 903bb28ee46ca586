/*
 * test_corpus.c: sidekiq.yml files in the shapes real applications use
 * (test/fixtures/corpus/, see its README), each resolved by squire and by
 * Sidekiq 7.3.10's own loader (Sidekiq::CLI#parse, test/ruby/config.rb) in
 * the same environment, and compared: concurrency, timeout, queues in order,
 * weights and mode. Where Sidekiq fails on a file, squire must refuse it
 * with "<file>:<line>:" and what is wrong.
 */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "harness.h"
#include "queues.h"

#define CORPUS_DIR SQ_TEST_SOURCE_DIR "/test/fixtures/corpus"
#define MAX_FILES 200
#define MAX_VARS 16

static char *files[MAX_FILES];
static int nfiles;

/* The header of one corpus file. */
typedef struct corpus {
    char path[PATH_MAX];
    bool refused;
    char warns[4][100];
    int nwarns;
    char *names[MAX_VARS], *values[MAX_VARS];
    int nvars;
    char shell_env[1024]; /* NAME='value' ... for env(1) */
} corpus;

static corpus *current;

static const char *corpus_getenv(const char *name)
{
    for (int i = 0; i < current->nvars; i++)
        if (strcmp(current->names[i], name) == 0)
            return current->values[i];
    return NULL;
}

static void read_header(corpus *c, const char *file)
{
    memset(c, 0, sizeof *c);
    snprintf(c->path, sizeof c->path, "%s/%s", CORPUS_DIR, file);
    char *text = sqt_file_read(c->path);
    ck_assert_msg(text[0] != '\0', "%s is empty or unreadable", c->path);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "# corpus: ", 10) != 0)
            continue;
        char *what = line + 10;
        if (strcmp(what, "refused") == 0) {
            c->refused = true;
        } else if (strncmp(what, "warns ", 6) == 0) {
            ck_assert_msg(c->nwarns < 4 && strstr(what, "<%") == NULL, "%s: bad warns line", file);
            snprintf(c->warns[c->nwarns++], sizeof c->warns[0], "%s", what + 6);
        } else if (strncmp(what, "env", 3) == 0) {
            char *save = NULL;
            for (char *w = strtok_r(what + 3, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
                char *eq = strchr(w, '=');
                ck_assert_msg(eq != NULL && c->nvars < MAX_VARS, "%s: bad env word %s", file, w);
                c->names[c->nvars] = strndup(w, (size_t)(eq - w));
                c->values[c->nvars] = strdup(eq + 1);
                size_t n = strlen(c->shell_env);
                snprintf(c->shell_env + n, sizeof c->shell_env - n, "%s='%s' ", c->names[c->nvars],
                         c->values[c->nvars]);
                c->nvars++;
            }
        } else {
            ck_abort_msg("%s: unknown header line \"%s\"", file, line);
        }
    }
    free(text);
}

/* Sidekiq 7.3.10's resolution of the file (new reference). */
static json_t *sidekiq_view(const corpus *c)
{
    char *out = NULL, args[PATH_MAX + 8];
    snprintf(args, sizeof args, "'%s'", c->path);
    int st = sqt_ruby_env(&out, c->shell_env, "config.rb", args);
    ck_assert_msg(st == 0, "ruby config.rb %s exited %d: %s", c->path, st, out);
    char *last = out + strlen(out);
    while (last > out && (last[-1] == '\n'))
        *--last = '\0';
    char *line = strrchr(out, '\n');
    json_t *j = json_loads(line ? line + 1 : out, 0, NULL);
    ck_assert_msg(json_is_object(j), "config.rb output is not JSON: %s", out);
    ck_assert_str_eq(json_string_value(json_object_get(j, "version")), "7.3.10");
    free(out);
    return j;
}

static const char *mode_name(sq_queue_mode m)
{
    return m == SQ_QUEUES_STRICT ? "strict" : m == SQ_QUEUES_WEIGHTED ? "weighted" : "random";
}

START_TEST(corpus_file_resolves_as_sidekiq_does)
{
    corpus c;
    read_header(&c, files[_i]);
    current = &c;
    json_t *sk = sidekiq_view(&c);
    bool sk_ok = json_is_true(json_object_get(sk, "ok"));
    ck_assert_msg(sk_ok == !c.refused, "%s: Sidekiq %s it, the header says %s", files[_i],
                  sk_ok ? "loads" : "fails on", c.refused ? "refused" : "loads");

    sq_config cfg;
    sq_config_init(&cfg);
    sq_error err = {0};
    sq_action action = SQ_ACTION_RUN;
    char *argv[] = {"squire", "-C", c.path, NULL};
    int rc = sq_config_load(&cfg, 3, argv, corpus_getenv, &action, &err);

    if (!sk_ok) {
        /* Sidekiq fails: squire refuses, naming the file and line. */
        ck_assert_msg(rc != 0, "%s: Sidekiq fails (%s) but squire loaded it", files[_i],
                      json_string_value(json_object_get(sk, "error")));
        ck_assert_int_eq(err.code, SQ_ECONFIG);
        size_t n = strlen(c.path);
        ck_assert_msg(strncmp(err.message, c.path, n) == 0 && err.message[n] == ':' &&
                          err.message[n + 1] >= '1' && err.message[n + 1] <= '9',
                      "%s: squire's message does not start with <file>:<line>: %s", files[_i],
                      err.message);
        printf("%s: refused as Sidekiq fails (%s): %s\n", files[_i],
               json_string_value(json_object_get(sk, "error")), err.message);
    } else {
        ck_assert_msg(rc == 0, "%s: Sidekiq loads it but squire refused: %s", files[_i],
                      err.message);
        ck_assert_int_eq(cfg.concurrency, json_integer_value(json_object_get(sk, "concurrency")));
        ck_assert_int_eq(cfg.timeout, json_integer_value(json_object_get(sk, "timeout")));
        json_t *queues = json_object_get(sk, "queues"), *weights = json_object_get(sk, "weights");
        ck_assert_msg(json_array_size(queues) == cfg.nqueues,
                      "%s: Sidekiq has %zu queues, squire %zu", files[_i], json_array_size(queues),
                      cfg.nqueues);
        for (size_t i = 0; i < cfg.nqueues; i++) {
            const char *name = json_string_value(json_array_get(queues, i));
            ck_assert_str_eq(cfg.queues[i].name, name);
            ck_assert_msg(json_integer_value(json_object_get(weights, name)) ==
                              cfg.queues[i].weight,
                          "%s: queue %s: Sidekiq weight %lld, squire %d", files[_i], name,
                          (long long)json_integer_value(json_object_get(weights, name)),
                          cfg.queues[i].weight);
        }
        sq_queue_order order;
        ck_assert_int_eq(sq_queue_order_init(&order, cfg.queues, cfg.nqueues), 0);
        ck_assert_str_eq(mode_name(order.mode), json_string_value(json_object_get(sk, "mode")));
        sq_queue_order_destroy(&order);
        for (int w = 0; w < c.nwarns; w++) {
            bool found = false;
            for (size_t i = 0; i < cfg.nwarnings && !found; i++)
                found = strstr(cfg.warnings[i], c.warns[w]) != NULL;
            ck_assert_msg(found, "%s: no warning containing \"%s\"", files[_i], c.warns[w]);
        }
        printf("%s: %s, concurrency %d, timeout %d, %zu queues (%s), %zu warnings\n", files[_i],
               json_string_value(json_object_get(sk, "environment")), cfg.concurrency, cfg.timeout,
               cfg.nqueues, json_string_value(json_object_get(sk, "mode")), cfg.nwarnings);
    }
    sq_config_destroy(&cfg);
    json_decref(sk);
    for (int i = 0; i < c.nvars; i++)
        free(c.names[i]), free(c.values[i]);
}
END_TEST

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void)
{
    if (sqt_third_party() == NULL) {
        printf("SKIP corpus: %s/../shared/third_party/sidekiq-7.3.10 is absent; the corpus is "
               "compared with Sidekiq 7.3.10's loader\n",
               SQ_TEST_SOURCE_DIR);
        return 0;
    }
    sqt_sidekiq_use("7.3.10");
    DIR *d = opendir(CORPUS_DIR);
    if (d == NULL) {
        fprintf(stderr, "cannot open %s\n", CORPUS_DIR);
        return 1;
    }
    for (struct dirent *e; (e = readdir(d)) != NULL && nfiles < MAX_FILES;) {
        size_t n = strlen(e->d_name);
        if (n > 4 && strcmp(e->d_name + n - 4, ".yml") == 0)
            files[nfiles++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(files, (size_t)nfiles, sizeof *files, by_name);
    if (nfiles < 20) {
        fprintf(stderr, "only %d corpus files in %s\n", nfiles, CORPUS_DIR);
        return 1;
    }
    Suite *s = suite_create("corpus");
    TCase *tc = tcase_create("sidekiq_7_3_10_loader");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, corpus_file_resolves_as_sidekiq_does, 0, nfiles);
    suite_add_tcase(s, tc);
    return sqt_run(s);
}
