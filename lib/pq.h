#ifndef SQ_PQ_H
#define SQ_PQ_H

/*
 * pq.h: libpq, loaded when a database is configured (pq.c).
 *
 * libsquire does not link libpq: most deployments configure no database,
 * and libpq brings libssl, libcrypto, Kerberos, LDAP and GnuTLS into every
 * process (about 5 MB of resident pages in an idle daemon). The pool loads
 * libpq.so.5 when it is created and calls it through this table; the types
 * still come from <libpq-fe.h>.
 */
#include <libpq-fe.h>

#include "squire.h"

/* The functions squire calls, each member with its prototype in
 * <libpq-fe.h> and its name: pq->PQexec(conn, sql). */
#define SQ_PQ_FUNCTIONS(X)  \
    X(PQcancel)             \
    X(PQclear)              \
    X(PQconninfoFree)       \
    X(PQconninfo)           \
    X(PQconninfoParse)      \
    X(PQconnectPoll)        \
    X(PQconnectStartParams) \
    X(PQconnectdbParams)    \
    X(PQhost)               \
    X(PQconsumeInput)       \
    X(PQerrorMessage)       \
    X(PQfinish)             \
    X(PQfreeCancel)         \
    X(PQfreemem)            \
    X(PQgetCancel)          \
    X(PQgetResult)          \
    X(PQgetvalue)           \
    X(PQisBusy)             \
    X(PQnotifies)           \
    X(PQntuples)            \
    X(PQexitPipelineMode)   \
    X(PQpipelineStatus)     \
    X(PQpipelineSync)       \
    X(PQresultErrorField)   \
    X(PQresultErrorMessage) \
    X(PQresultStatus)       \
    X(PQsendQuery)          \
    X(PQsetNoticeReceiver)  \
    X(PQsetnonblocking)     \
    X(PQsocket)             \
    X(PQstatus)             \
    X(PQtransactionStatus)

typedef struct sq_pq {
#define SQ_PQ_MEMBER(f) __typeof__(f) *f;
    SQ_PQ_FUNCTIONS(SQ_PQ_MEMBER)
#undef SQ_PQ_MEMBER
} sq_pq;

/* libpq's functions, loaded the first time (thread-safe; never unloaded),
 * or NULL with err when libpq.so.5 or one of them is missing (every call
 * then fails the same way). Borrowed: valid for the life of the process.
 * A handler that links libpq itself gets the same library. */
const sq_pq *sq_pq_load(sq_error *err);

#endif
