/*
 * queues.h: the order in which a worker asks for its queues, as Sidekiq does.
 *
 * Strict (no weights, or all 0): the configured order every time, so earlier
 * queues always win. Weighted: each queue appears max(weight,1) times in a
 * list that is shuffled for every fetch; the first occurrence of each name is
 * kept, so a queue comes first with probability weight / total. All weights
 * 1: a uniform shuffle. (Sidekiq 7's capsule rules; a queue without a weight
 * in a weighted list counts once.) Pure: the random source is an argument.
 */
#ifndef SQ_QUEUES_H
#define SQ_QUEUES_H

#include "config.h"
#include "job.h"

typedef enum sq_queue_mode { SQ_QUEUES_STRICT, SQ_QUEUES_WEIGHTED, SQ_QUEUES_RANDOM } sq_queue_mode;

typedef struct sq_queue_order {
    sq_queue_mode mode;
    size_t nqueues;      /* distinct queues */
    char **names;        /* owned, distinct, configured order */
    size_t *expanded;    /* owned: indexes into names, each repeated by weight */
    size_t nexpanded;
} sq_queue_order;

int sq_queue_order_init(sq_queue_order *o, const sq_queue_conf *queues, size_t n);
void sq_queue_order_destroy(sq_queue_order *o);

/* Fill out[0..nqueues) with indexes into o->names in fetch order for one fetch,
 * in time linear in the expanded list. scratch must hold
 * sq_queue_order_scratch_len(o) entries. Returns nqueues. */
size_t sq_queue_order_next(const sq_queue_order *o, size_t *out, size_t *scratch, sq_rand_fn rnd,
                           void *rnd_state);
size_t sq_queue_order_scratch_len(const sq_queue_order *o);

#endif
