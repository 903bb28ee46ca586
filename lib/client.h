#ifndef SQ_CLIENT_H
#define SQ_CLIENT_H

#include "redis.h"

/* A client that uses r without owning it (for handlers, via sq_job_client). */
sq_client *sq__client_borrow(sq_redis *r);

/* Build one Sidekiq payload (new reference) the way Sidekiq's client does:
 * retry, queue, args, class, jid, created_at, enqueued_at (omitted when
 * scheduled), then opts->extra merged over the defaults. */
json_t *sq__client_payload(const char *class_name, json_t *args, const sq_push_opts *opts,
                           double now, bool scheduled, sq_error *err);

#endif
