/*
 * database.c: the handlers' PostgreSQL for the daemon (sq_job_db): the pool
 * made at start, and the connection budget of every process sharing the
 * server (dbbudget.c) asked at start and at every beat, logged when its
 * verdict changes.
 */
#include "database.h"

#include "common.h"
#include "log.h"

/* The connection budget of every process sharing the database server
 * (dbbudget.c): at start (first: the server's limits asked, its count of
 * connections in use counted, the verdict logged), then at every beat,
 * logged when the verdict changes, as processes come and go. */
void sq_database_budget(sq_runtime *rt, bool first)
{
    sq_dbbudget *b = &rt->dbbudget;
    if (rt->pgpool == NULL || (!b->known && !first && sq__monotonic() < b->next_ask))
        return;
    sq_error err = {0};
    if (!b->known) {
        if (sq_pgpool_budget(rt->pgpool, &b->lim, &err) != 0) {
            if (first)
                sq_log(SQ_LOG_WARN,
                       "database: %s; starting anyway, jobs that need it will fail "
                       "and retry",
                       err.message);
            b->next_ask = sq__monotonic() + 60;
            return;
        }
        b->known = true;
        first = true; /* the in-use count is fresh */
    }
    int pools = 0, procs = 0;
    if (sq_dbbudget_peers(rt->redis, rt->identity, sq_pgpool_server(rt->pgpool), &pools, &procs,
                          &err) != 0) {
        sq_log(SQ_LOG_DEBUG, "database budget: %s", err.message);
        return;
    }
    char msg[700];
    bool over = sq_dbbudget_verdict(b, pools, procs, first ? b->lim.in_use : -1, msg, sizeof msg);
    if (first || over != b->over)
        sq_log(over ? SQ_LOG_WARN : SQ_LOG_INFO, "%s", msg);
    b->over = over;
}

/* The pool is made now; its connections when jobs ask. PostgreSQL being
 * down does not stop the start. */
int sq_database_open(sq_runtime *rt)
{
    const sq_config *cfg = rt->cfg;
    if (cfg->db_url == NULL)
        return 0;
    int size = cfg->db_pool > 0 ? cfg->db_pool : cfg->concurrency;
    rt->pgpool = sq_pgpool_new(
        cfg->db_url, cfg->db_application_name ? cfg->db_application_name : rt->identity, size,
        cfg->db_checkout_timeout, cfg->db_connect_timeout, cfg->db_statement_timeout);
    if (rt->pgpool == NULL || sq_dbbudget_init(&rt->dbbudget, rt->pgpool) != 0)
        return -1;
    sq_pgpool_set_reporter(rt->pgpool, sq_log_report, NULL);
    sq_database_budget(rt, true);
    return 0;
}
