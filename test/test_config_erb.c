/*
 * test_config_erb.c: ERB in sidekiq.yml (config_erb.c): environment
 * lookups, line numbers kept, errors, and values that cannot smuggle
 * settings. Scaffolding in configtest.h.
 */
#include "configtest.h"

/* ---- ERB ------------------------------------------------------------------- */

START_TEST(test_erb_env_lookups)
{
    env_set("THREADS", "11");
    env_set("TAG", "from-env");
    env_set("EMPTY", "");
    env_set("MIXED", "12abc");
    env_set("RACK_ENV", "staging");
    static const struct {
        const char *text;
        int concurrency;
    } cases[] = {
        {"concurrency: <%= ENV['THREADS'] %>\n", 11},
        {"concurrency: <%=ENV[\"THREADS\"]%>\n", 11},
        {"concurrency: <%=   ENV[ 'THREADS' ]   %>\n", 11},
        {"concurrency: <%= ENV.fetch('THREADS') %>\n", 11},
        {"concurrency: <%= ENV.fetch('NOPE', 7) %>\n", 7},
        {"concurrency: <%= ENV.fetch(\"NOPE\", \"8\") %>\n", 8},
        {"concurrency: <%= ENV.fetch('THREADS', 7) %>\n", 11},
        {"concurrency: <%= ENV.fetch('NOPE') { 9 } %>\n", 9},
        {"concurrency: <%= ENV.fetch('NOPE') { '10' } %>\n", 10},
        {"concurrency: <%= ENV['NOPE'] || 4 %>\n", 4},
        {"concurrency: <%= ENV['NOPE'] || '6' %>\n", 6},
        {"concurrency: <%= ENV['THREADS'] || 4 %>\n", 11},
        {"concurrency: <%= ENV['THREADS'].to_i %>\n", 11},
        {"concurrency: <%= ENV['MIXED'].to_i %>\n", 12},
        {"concurrency: <%= ENV.fetch('NOPE', 3).to_i %>\n", 3},
        {"concurrency: <%= (ENV['NOPE'] || 5).to_i %>\n", 5},
        {"concurrency: <%= (ENV['MIXED'] || 5).to_i %>\n", 12},
        {"concurrency: <%= ENV.fetch('NOPE') { 2 }.to_i %>\n", 2},
        {"concurrency: <%= ENV['THREADS'] -%>\n", 11},
        {"<%# a comment %>concurrency: 13\n", 13},
        {"concurrency: <%= ENV['THREADS'] ? ENV['THREADS'].to_i : 1 %>\n", 11},
        {"concurrency: <%= ENV['NOPE'] ? ENV['NOPE'].to_i : 1 %>\n", 1},
        {"concurrency: <%= ENV['EMPTY'] ? 3 : 1 %>\n", 3}, /* "" is truthy in Ruby */
        {"concurrency: <%= ENV.fetch(\"NOPE\") { 10 } %>\n", 10},
        {"concurrency: <%= ENV.fetch('NOPE', ENV['THREADS']) %>\n", 11},
        {"concurrency: <%= ENV.fetch('NOPE', 1) { 2 } %>\n", 2}, /* the block wins */
        {"concurrency: <%= ENV[\"THREAD#{'S'}\"] %>\n", 11},
        {"concurrency: <%= ['production', 'staging'].include?(ENV['RACK_ENV']) ? 20 : 5 %>\n", 20},
        {"concurrency: <%= ENV['RAILS_ENV'] == 'production' ? 25 : 4 %>\n", 4},
        {"concurrency: <%= ENV['RAILS_ENV'] != 'production' && 6 || 7 %>\n", 6},
        {"concurrency: <%= !ENV['NOPE'] ? 8 : 9 %>\n", 8},
        {"concurrency: <%= Integer(ENV.fetch('THREADS', 5)) %>\n", 11},
        {"concurrency: <%= Integer(ENV.fetch('NOPE', '1_2')) %>\n", 12},
        {"concurrency: <%= ENV.fetch('NOPE', 10).to_s.to_i %>\n", 10},
        {"concurrency: <%= Random.rand(3..3) %>\n", 3},
        {"concurrency: <%= rand(1...2) %>\n", 1},
        {"concurrency: 14 <%# trailing comment %>\n", 14},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        cfg.concurrency = 0;
        ck_assert_msg(yml(cases[i].text) == 0, "%s: %s", cases[i].text, err.message);
        ck_assert_msg(cfg.concurrency == cases[i].concurrency, "%s gave %d", cases[i].text,
                      cfg.concurrency);
    }
    ASSERT_OK(yml("tag: <%= ENV['TAG'] %>\n"));
    ck_assert_str_eq(cfg.tag, "from-env");
    ASSERT_OK(yml("tag: \"<%= ENV['NOPE'] %>\"\n")); /* unset ENV['X'] is nil, printed as "" */
    ck_assert_str_eq(cfg.tag, "");
    ASSERT_OK(yml("tag: \"<%= ENV['EMPTY'] || 'dflt' %>\"\n")); /* "" is not nil in Ruby */
    ck_assert_str_eq(cfg.tag, "");
    ASSERT_OK(yml("tag: \"<%= ENV['NOPE'] || nil %>x\"\n"));
    ck_assert_str_eq(cfg.tag, "x");
    ASSERT_OK(yml("tag: \"a<%%b\"\n"));
    ck_assert_str_eq(cfg.tag, "a<%b");
}
END_TEST

START_TEST(test_erb_keeps_line_numbers)
{
    env_set("T", "1");
    ASSERT_ERR(yml("<%#\n  a comment\n  over three lines %>\nconcurrency: <%= ENV['T'] %>\n"
                   "timeout: zero\n"),
               SQ_ECONFIG, "test.yml:5: timeout: expected an integer");
}
END_TEST

START_TEST(test_erb_errors)
{
    env_set("NL", "a\nb");
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"a: 1\nconcurrency: <%= 5 * 5 %>\n",
         "test.yml:2: concurrency: ERB <%= 5 * 5 %> is a form squire does not evaluate, and "
         "squire needs this value"},
        {"<% require 'socket' %>\n",
         "test.yml:1: ERB: \"<% require 'socket' %>\": a statement tag"},
        {"tag: <%= `id` %>\n", "tag: ERB <%= `id` %> is a form squire does not evaluate"},
        {"tag: <%= ENV['A'].upcase %>\n", "ERB <%= ENV['A'].upcase %> is a form"},
        {"tag: <%= ENV['A'] ; ENV['B'] %>\n", "is a form squire does not evaluate"},
        {"tag: <%= ENV['A B'] %>\n", "is a form squire does not evaluate"},
        {"concurrency: <%= ENV.fetch('A') { 1 } + 1 %>\n", "is a form squire does not evaluate"},
        {"concurrency: <%= File.read('/etc/passwd').size %>\n", "is a form squire does not"},
        {"concurrency: <%= system('touch /tmp/x') ? 1 : 2 %>\n", "is a form squire does not"},
        {"x: <%- ENV['A'] %>\n", "a statement tag"},
        {"tag: <%= ENV['A']\n %>\n", "test.yml:1: tag: ERB <%= ENV['A'] %> is a form"},
        {"\n\nx: <%= ENV.fetch('MISSING_VAR') %>\n",
         "test.yml:3: ERB: ENV.fetch('MISSING_VAR'): the variable is not set and has no default"},
        {":scheduler:\n  x: <%= ENV.fetch('MISSING_VAR') %>\n",
         "test.yml:2: ERB: ENV.fetch('MISSING_VAR'): the variable is not set"},
        {"x: <%= Integer(ENV.fetch('MIXED', 'ten')) %>\n",
         "Integer(\"ten\"): invalid value for Integer()"},
        {"x: <%= Integer(ENV['NOPE']) %>\n", "Integer(nil): can't convert"},
        {"concurrency: <%= Random.rand(1) + 1 %>\n", "ERB <%= Random.rand(1) + 1 %> is a form"},
        {"x: <%= true.to_i %>\n", "true.to_i: undefined method"},
        {"x: <%= ENV['NL'] %>\n", "test.yml:1: ERB: the value of an ERB tag contains a newline"},
        {"tag: <%= !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!nil %>\n",
         "is a form squire does not evaluate"},
        {"tag: <%= ((((((((((((((((((((((((((((((((((((((1)))))))))))))))))))))))))))))))))))) "
         "%>\n",
         "is a form squire does not evaluate"},
        {"x: 1\ny: <%= ENV['A']\n", "test.yml:2: ERB: unterminated tag"},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        memset(&err, 0, sizeof err);
        ASSERT_ERR(yml(cases[i].text), SQ_ECONFIG, cases[i].want);
    }
}
END_TEST

/* ERB squire cannot evaluate is only fatal where squire needs the value:
 * a scheduler's cron lines, another gem's section, another environment's
 * settings are skipped with a warning naming file:line and the form. */
START_TEST(test_erb_skipped_where_unused)
{
    const char *text = ":concurrency: 3\n"
                       ":scheduler:\n"
                       "  :schedule:\n"
                       "    cleanup:\n"
                       "      cron: \"<%= Random.rand(0..59) %> 3 * * *\"\n"
                       "      every: <%= 1.day %>\n"
                       ":limits:\n"
                       "  big: <%= Foo.limit %>\n"
                       "pidfile: <%= Rails.root.join('tmp/pids/sidekiq.pid') %>\n"
                       "production:\n"
                       "  :concurrency: <%= Etc.nprocessors %>\n";
    ASSERT_OK(yml(text));
    ck_assert_int_eq(cfg.concurrency, 3);
    static const char *const want[] = {
        "test.yml:6: ERB <%= 1.day %> not evaluated (squire does not use this part of the file); "
        "skipped",
        "test.yml:8: ERB <%= Foo.limit %> not evaluated",
        "test.yml:9: ERB <%= Rails.root.join('tmp/pids/sidekiq.pid') %> not evaluated",
        "test.yml:11: ERB <%= Etc.nprocessors %> not evaluated",
    };
    for (size_t i = 0; i < N_ELEMS(want); i++) {
        bool found = false;
        for (size_t j = 0; j < cfg.nwarnings && !found; j++)
            found = strstr(cfg.warnings[j], want[i]) != NULL;
        ck_assert_msg(found, "no warning \"%s\"", want[i]);
    }
    /* in production the same file needs the value: refused, naming the form */
    ASSERT_ERR(yml_env(text, "production"), SQ_ECONFIG,
               "test.yml:11: concurrency: ERB <%= Etc.nprocessors %> is a form squire does not "
               "evaluate, and squire needs this value");
    /* a queue name or weight is needed too */
    memset(&err, 0, sizeof err);
    ASSERT_ERR(yml(":queues:\n  - [default, <%= Weights.default %>]\n"), SQ_ECONFIG,
               "test.yml:2: queues: ERB <%= Weights.default %> is a form");
    /* and so is a key: it may be any setting (Sidekiq: timeout 4 here) or
     * this environment's section; ERB keys in unused parts are skipped */
    static const char *const keys[] = {":<%= 'time' + 'out' %>: 4\n",
                                       "<%= Rails.env %>:\n  :concurrency: 9\n",
                                       "production:\n  <%= 'concur' * 1 %>rency: 9\n"};
    for (size_t i = 0; i < N_ELEMS(keys); i++) {
        memset(&err, 0, sizeof err);
        ASSERT_ERR(yml_env(keys[i], "production"), SQ_ECONFIG,
                   "in a key is a form squire does not evaluate");
    }
    ASSERT_OK(yml(":scheduler:\n  :schedule:\n    <%= 'job' + 'x' %>:\n      cron: '* * * * *'\n"));
}
END_TEST

static unsigned long long lcg(unsigned long long *st)
{
    *st = *st * 6364136223846793005ULL + 1442695040888963407ULL;
    return *st >> 33;
}

/* Adversarial: tags stitched from fragments of the grammar, valid or not,
 * in a used and an unused key. Each gives a value, a refusal naming the
 * file, or a skipped-tag warning; nothing crashes or leaks (the ASan run). */
START_TEST(test_erb_fragments_never_crash)
{
    env_set("A", "12");
    env_set("E", "");
    static const char *const frag[] = {"ENV['A']",
                                       "ENV['E']",
                                       "ENV['NOPE']",
                                       "ENV.fetch('A'",
                                       "ENV.fetch('NOPE'",
                                       ", 3)",
                                       ")",
                                       "(",
                                       "[",
                                       "]",
                                       "||",
                                       "&&",
                                       "!",
                                       " ? ",
                                       " : ",
                                       "'x'",
                                       "\"#{",
                                       "}\"",
                                       "\"a\"",
                                       "1",
                                       "-2",
                                       "..",
                                       "...",
                                       ".to_i",
                                       ".to_s",
                                       ".include?(",
                                       ",",
                                       "nil",
                                       "true",
                                       "Integer(",
                                       "rand(",
                                       "Random.rand(",
                                       "{",
                                       "}",
                                       "==",
                                       "!=",
                                       " ",
                                       "\\",
                                       "'",
                                       "\"",
                                       "#{",
                                       "%",
                                       "<%",
                                       ";"};
    unsigned long long st = 12345;
    for (int round = 0; round < 5000; round++) {
        char body[256] = "";
        int n = 1 + (int)(lcg(&st) % 8);
        for (int k = 0; k < n; k++)
            strcat(body, frag[lcg(&st) % N_ELEMS(frag)]);
        char text[400];
        snprintf(text, sizeof text, "%s: <%%= %s %%>\n", round % 2 ? "tag" : "other", body);
        memset(&err, 0, sizeof err);
        int rc = yml(text);
        ck_assert_msg(rc == 0 ||
                          (err.code == SQ_ECONFIG && strncmp(err.message, "test.yml:", 9) == 0),
                      "%s -> %d %s", text, rc, err.message);
    }
}
END_TEST

/* 400 queues from -q flags, as from the file: no cap on the command line. */
START_TEST(test_many_queue_flags)
{
    enum { NQ = 400 };
    char *argv[2 * NQ + 2];
    static char names[NQ][16];
    int argc = 0;
    argv[argc++] = "squire";
    for (int i = 0; i < NQ; i++) {
        snprintf(names[i], sizeof names[i], "q%d,%d", i, i % 4 + 1);
        argv[argc++] = "-q";
        argv[argc++] = names[i];
    }
    argv[argc] = NULL;
    ASSERT_OK(sq_config_load(&cfg, argc, argv, fake_getenv, &action, &err));
    ck_assert_uint_eq(cfg.nqueues, NQ);
    ck_assert_str_eq(cfg.queues[NQ - 1].name, "q399");
    ck_assert_int_eq(cfg.queues[NQ - 1].weight, 4);
}
END_TEST

/* Log lines name the queues, cut with a count when there are many. */
START_TEST(test_queue_list_for_logs)
{
    ASSERT_OK(yml("queues: [[a, 3], b]\n"));
    char buf[64];
    ck_assert_str_eq(sq_config_queue_list(&cfg, true, buf, sizeof buf), "a,3 b");
    ck_assert_str_eq(sq_config_queue_list(&cfg, false, buf, sizeof buf), "a b");
    char yaml[8192] = "queues:\n";
    for (int i = 0; i < 400; i++)
        snprintf(yaml + strlen(yaml), sizeof yaml - strlen(yaml), "  - [queue_%03d, 2]\n", i);
    ASSERT_OK(yml(yaml));
    char line[300];
    sq_config_queue_list(&cfg, true, line, sizeof line);
    ck_assert_uint_lt(strlen(line), sizeof line);
    ck_assert_ptr_nonnull(strstr(line, "queue_000,2 queue_001,2"));
    const char *more = strstr(line, " ... and ");
    ck_assert_ptr_nonnull(more);
    int shown = 0;
    for (const char *p = line; p < more; p++)
        shown += *p == ',';
    ck_assert_int_eq(shown + atoi(more + 9), 400);
}
END_TEST

START_TEST(test_erb_value_cannot_smuggle_settings)
{
    env_set("INJECT", "5\ntimeout: 1");
    ASSERT_ERR(yml("concurrency: <%= ENV['INJECT'] %>\n"), SQ_ECONFIG, "contains a newline");
    ck_assert_int_eq(cfg.timeout, 25);
}
END_TEST


/* ---- suite ----------------------------------------------------------------------- */

static Suite *config_erb_suite(void)
{
    Suite *s = suite_create("config_erb");
    TCase *tc = tcase_create("config_erb");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_erb_env_lookups);
    tcase_add_test(tc, test_erb_keeps_line_numbers);
    tcase_add_test(tc, test_erb_errors);
    tcase_add_test(tc, test_erb_value_cannot_smuggle_settings);
    tcase_add_test(tc, test_erb_skipped_where_unused);
    tcase_add_test(tc, test_queue_list_for_logs);
    tcase_add_test(tc, test_many_queue_flags);
    tcase_add_test(tc, test_erb_fragments_never_crash);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return config_test_run(config_erb_suite());
}
