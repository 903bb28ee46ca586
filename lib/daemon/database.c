/*
 * database.c: the handlers' PostgreSQL for the daemon (sq_job_db): the pool
 * made at start, and the connection budget of every process sharing the
 * server (dbbudget.c): the server's limits asked on a thread of their own
 * (dbask.c), the budget weighed when they come and at every beat, logged
 * when its verdict changes.
 */
#include "database.h"

#include "common.h"
#include "dbask.h"
#include "log.h"

/* The connection budget of every process sharing the database server
 * (dbbudget.c), at every turn of the main loop (beat: a heartbeat just
 * went through). The server's limits come from the thread of dbask.c, never
 * asked here: when they come, the verdict is logged with the server's count
 * of connections in use; then at every beat it is weighed again, logged when
 * it changes, as processes come and go. The first failure to ask is logged. */
void sq_database_budget(sq_runtime *rt, bool beat)
{
    sq_dbbudget *b = &rt->dbbudget;
    if (rt->pgpool == NULL)
        return;
    sq_error err = {0};
    int news = b->ask ? sq_dbask_news(b->ask, &b->lim, &err) : 0;
    if (news < 0 && !b->warned) {
        sq_log(SQ_LOG_WARN,
               "database: %s; starting anyway, jobs that need it will fail "
               "and retry",
               err.message);
        b->warned = true;
    }
    if (news > 0)
        b->known = b->fresh = true;
    if (!b->known || !(beat || news > 0))
        return;
    int pools = 0, procs = 0;
    if (sq_dbbudget_peers(rt->redis, rt->identity, sq_pgpool_server(rt->pgpool), &pools, &procs,
                          &err) != 0) {
        sq_log(SQ_LOG_DEBUG, "database budget: %s", err.message);
        return;
    }
    char msg[700];
    bool over =
        sq_dbbudget_verdict(b, pools, procs, b->fresh ? b->lim.in_use : -1, msg, sizeof msg);
    if (b->fresh || over != b->over)
        sq_log(over ? SQ_LOG_WARN : SQ_LOG_INFO, "%s", msg);
    b->over = over;
    b->fresh = false;
}

/* The budget thread stopped (within a second: its waits on the server end
 * at once), then the pool freed. A thread still inside libpq after that
 * (a host name that takes long to resolve) keeps both: the process is
 * exiting, and freeing them under it would be worse. */
void sq_database_close(sq_runtime *rt)
{
    if (!sq_dbask_stop(rt->dbbudget.ask, 1.0)) {
        sq_log(SQ_LOG_DEBUG, "database budget thread still in libpq at exit: left running");
        return;
    }
    rt->dbbudget.ask = NULL;
    sq_pgpool_free(rt->pgpool);
    rt->pgpool = NULL;
}

/* The pool is made now; its connections when jobs ask. PostgreSQL being
 * down, slow or hanging does not stop or hold the start: the budget
 * thread asks the server's limits (dbask.c). */
int sq_database_open(sq_runtime *rt)
{
    const sq_config *cfg = rt->cfg;
    if (cfg->db_url == NULL)
        return 0;
    int size = cfg->db_pool > 0 ? cfg->db_pool : cfg->concurrency;
    if (cfg->isolated && size != cfg->concurrency) { /* isolate.c: one per worker process */
        sq_log(SQ_LOG_WARN,
               "database.pool (%d) does not apply in isolated mode: each of the %d worker "
               "processes keeps one connection",
               size, cfg->concurrency);
        size = cfg->concurrency;
    }
    rt->pgpool = sq_pgpool_new(
        cfg->db_url, cfg->db_application_name ? cfg->db_application_name : rt->identity, size,
        cfg->db_checkout_timeout, cfg->db_connect_timeout, cfg->db_statement_timeout);
    if (rt->pgpool == NULL || sq_dbbudget_init(&rt->dbbudget, rt->pgpool) != 0)
        return -1;
    sq_pgpool_set_reporter(rt->pgpool, sq_log_report, NULL);
    sq_error err = {0};
    if ((rt->dbbudget.ask = sq_dbask_start(rt->pgpool, &err)) == NULL)
        sq_log(SQ_LOG_WARN, "database: %s; the connection budget is not checked", err.message);
    return 0;
}
