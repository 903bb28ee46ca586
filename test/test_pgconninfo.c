/*
 * test_pgconninfo.c: the secrets of PostgreSQL connection strings and the
 * messages scrubbed of them, and application_name fitted to 63 bytes
 * (lib/pgconninfo.c). Pure: no server. Each case gives a connection string,
 * a message libpq (or a handler) might write about it, and words that must
 * not survive the scrub. test_pg.c covers the same end to end.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgconninfo.h"

typedef struct scrub_case {
    const char *conninfo;
    const char *message;
    const char *hidden[3]; /* must not appear in the scrubbed message */
    const char *kept;      /* must still appear (the message stays useful) */
} scrub_case;

static const scrub_case CASES[] = {
    /* libpq's own parse errors, quoting the URI or the token */
    {"postgresql://app:PW1@[127.0.0.1:5432/db",
     "end of string reached when looking for matching \"]\" in IPv6 host address in URI: "
     "\"postgresql://app:PW1@[127.0.0.1:5432/db\"",
     {"PW1"},
     "127.0.0.1:5432/db"},
    {"postgresql://app:PW%zz@h/db", "invalid percent-encoded token: \"PW%zz\"", {"PW"}, "token"},
    /* decoded and as written */
    {"postgresql://app:p%40ss@h/db", "got \"p%40ss\", meant p@ss", {"p%40ss", "p@ss"}, "meant"},
    /* libpq ends the userinfo at the first '@'; a human at the last */
    {"postgresql://u:pw@ss@h/db", "host \"ss@h\" with pw, or pw@ss", {"pw"}, "host"},
    /* query parameters, password and sslpassword */
    {"postgresql://u@h/db?password=QPW&sslpassword=SSLPW&x=1",
     "invalid URI query parameter: \"x\" (QPW, SSLPW)",
     {"QPW", "SSLPW"},
     "invalid URI query parameter"},
    /* keyword/value, quoted with escapes and spaces, or bare */
    {"host=h password = 'a b\\'c' dbname=x",
     "missing value near a b'c and a b\\'c",
     {"a b'c", "a b\\'c"},
     "missing value"},
    {"password=KVPW host=h bad", "missing \"=\" after \"bad\" (KVPW)", {"KVPW"}, "after"},
    /* nothing known: whatever looks like a password still goes */
    {NULL, "could not connect with \"postgres://x:YYPW@host/db\"", {"YYPW"}, "@host/db"},
    {NULL, "PASSWORD=\"Q Q\" and password=w9&x and password = 'V V'", {"Q Q", "w9", "V V"}, "&x"},
    /* libpq decodes a query parameter's name too: passw%6Frd= is password= */
    {"postgresql://u@h/db?passw%6Frd=ENCKEY%zz",
     "invalid percent-encoded token: \"ENCKEY%zz\"",
     {"ENCKEY"},
     "token"},
    {"postgresql://u@[h/db?%73slpassword=SSLENC",
     "end of string reached ... in URI: \"postgresql://u@[h/db?%73slpassword=SSLENC\"",
     {"SSLENC"},
     "in URI"},
    /* an unencoded '/' in the password: libpq reads user:pass as host:port
     * and the rest as the database name */
    {"postgresql://app:SLA/SHPW@h/db",
     "invalid integer value \"SLA\" for connection option \"port\"; database \"SHPW@h/db\"",
     {"SLA", "SHPW"},
     "connection option"},
    /* unquoted, a backslash escapes a space: the value is "ab Sq7" */
    {"password=ab\\ BSPW\\ x host=h",
     "could not connect with \"password=ab\\ BSPW\\ x host=h\" (ab BSPW x)",
     {"BSPW"},
     "host=h"},
    /* a space left unquoted, or a quote doubled as in SQL: libpq ends the
     * value there and quotes the rest of the password as a keyword */
    {"host=h password=ab TAILPW port=1",
     "missing \"=\" after \"TAILPW\" in connection info string",
     {"TAILPW"},
     "missing"},
    {"host=h password='ab''DBLPW' port=1",
     "missing \"=\" after \"'DBLPW'\" in connection info string",
     {"DBLPW"},
     "missing"},
    /* more password= than there is room for: libpq uses the last */
    {"postgresql://u@h/db?password=a1&password=a2&password=a3&password=a4&password=a5&"
     "password=a6&password=a7&password=LASTPW%zz",
     "invalid percent-encoded token: \"LASTPW%zz\"",
     {"LASTPW"},
     "token"},
    /* a password that is also an ordinary word: hidden, message garbled */
    {"postgresql://u:connect@h/db", "could not connect to server", {"connect"}, "to server"},
};

START_TEST(scrub)
{
    const scrub_case *c = &CASES[_i];
    sq_pg_secrets s;
    sq_pg_secrets_init(&s, c->conninfo);
    char out[512];
    sq_pg_scrub(&s, c->message, out, sizeof out);
    for (int k = 0; k < 3 && c->hidden[k]; k++)
        ck_assert_msg(strstr(out, c->hidden[k]) == NULL, "case %d: \"%s\" survives in: %s", _i,
                      c->hidden[k], out);
    ck_assert_msg(strstr(out, c->kept) != NULL, "case %d: \"%s\" lost: %s", _i, c->kept, out);
    ck_assert_msg(strstr(out, SQ_PG_REDACTED) != NULL, "case %d: nothing marked: %s", _i, out);
    sq_pg_secrets_destroy(&s);
    ck_assert_int_eq(s.n, 0);
}
END_TEST

START_TEST(scrub_truncates_safely)
{
    sq_pg_secrets s;
    sq_pg_secrets_init(&s, "postgresql://u:LONGSECRET@h/db");
    char out[12];
    sq_pg_scrub(&s, "xx LONGSECRET yy", out, sizeof out);
    ck_assert_str_eq(out, "xx REDACTED");
    sq_pg_scrub(&s, NULL, out, sizeof out);
    ck_assert_str_eq(out, "");
    sq_pg_secrets_destroy(&s);
    /* no secrets at all: the message is unchanged */
    sq_pg_secrets_init(&s, "host=h dbname=d");
    ck_assert_int_eq(s.n, 0);
    char all[64];
    sq_pg_scrub(&s, "connection refused", all, sizeof all);
    ck_assert_str_eq(all, "connection refused");
    sq_pg_secrets_destroy(&s);
}
END_TEST

START_TEST(app_name_fits_and_keeps_the_pid)
{
    char out[SQ_PG_APP_NAME_MAX + 1];
    /* short: as is */
    sq_pg_app_name(NULL, "web-1:4242:0123456789ab", out);
    ck_assert_str_eq(out, "web-1:4242:0123456789ab");
    sq_pg_app_name("", "web-1:4242:0123456789ab", out);
    ck_assert_str_eq(out, "web-1:4242:0123456789ab");
    /* the URL's own name first */
    sq_pg_app_name("shop", "web-1:4242:0123456789ab", out);
    ck_assert_str_eq(out, "shop web-1:4242:0123456789ab");
    /* a long host loses bytes, not the pid or nonce */
    char host[200];
    memset(host, 'h', 120);
    snprintf(host + 120, sizeof host - 120, ":4242:0123456789ab");
    sq_pg_app_name(NULL, host, out);
    ck_assert_int_eq(strlen(out), SQ_PG_APP_NAME_MAX);
    ck_assert_ptr_nonnull(strstr(out, ":4242:0123456789ab"));
    ck_assert_int_eq(out[0], 'h');
    /* a long URL name leaves squire 32 bytes at least, the pid kept */
    char url_name[100];
    memset(url_name, 'u', 80);
    url_name[80] = '\0';
    sq_pg_app_name(url_name, host, out);
    ck_assert_int_eq(strlen(out), SQ_PG_APP_NAME_MAX);
    ck_assert_ptr_nonnull(strstr(out, ":4242:"));
    ck_assert_int_eq(out[0], 'u');
    /* not an identity: cut, and never inside a UTF-8 sequence */
    char name[100] = "";
    for (int i = 0; i < 40; i++)
        strcat(name, "\xc3\xa9"); /* é: 80 bytes */
    sq_pg_app_name(NULL, name, out);
    ck_assert_int_eq(strlen(out), 62);
}
END_TEST

static Suite *pgconninfo_suite(void)
{
    Suite *s = suite_create("pgconninfo");
    TCase *tc = tcase_create("pure");
    tcase_add_loop_test(tc, scrub, 0, (int)(sizeof CASES / sizeof CASES[0]));
    tcase_add_test(tc, scrub_truncates_safely);
    tcase_add_test(tc, app_name_fits_and_keeps_the_pid);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(pgconninfo_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
