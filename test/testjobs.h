/* testjobs.h: shared by the test plugin's files (testjobs.c, isojobs.c). */
#ifndef SQ_TESTJOBS_H
#define SQ_TESTJOBS_H

#include <squire.h>

/* Record what the handler saw in the test's Redis: a test:log entry
 * (jid, class, what, args), test:runs[jid] += 1 unless what is "start", and
 * test:done gets the jid when what is "ok". */
void testjobs_record(sq_job *job, const char *what);

/* The handlers of test_isolated.c (isojobs.c), registered by the isojobs
 * plugin (testjobs.c built with SQ_TESTJOBS_ISOLATED). */
int testjobs_register_isolated(sq_registry *reg);

#endif
