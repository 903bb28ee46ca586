#include "queues.h"

#include <stdlib.h>
#include <string.h>

#include "common.h"

int sq_queue_order_init(sq_queue_order *o, const sq_queue_conf *queues, size_t n)
{
    memset(o, 0, sizeof *o);
    o->names = calloc(n ? n : 1, sizeof *o->names);
    if (o->names == NULL)
        return -1;
    size_t total = 0;
    bool any_weight = false, all_one = n > 0;
    for (size_t i = 0; i < n; i++) {
        if (queues[i].weight > 0)
            any_weight = true;
        if (queues[i].weight != 1)
            all_one = false;
    }
    int *weights = calloc(n ? n : 1, sizeof *weights);
    if (weights == NULL)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        size_t j;
        for (j = 0; j < o->nqueues; j++)
            if (strcmp(o->names[j], queues[i].name) == 0)
                break;
        if (j == o->nqueues) {
            o->names[o->nqueues] = strdup(queues[i].name);
            if (o->names[o->nqueues] == NULL) {
                free(weights);
                goto fail;
            }
            o->nqueues++;
        }
        int w = queues[i].weight > 0 ? queues[i].weight : 1;
        weights[j] += w;
        total += (size_t)w;
    }
    o->mode = !any_weight ? SQ_QUEUES_STRICT : all_one ? SQ_QUEUES_RANDOM : SQ_QUEUES_WEIGHTED;
    o->expanded = calloc(total ? total : 1, sizeof *o->expanded);
    if (o->expanded == NULL) {
        free(weights);
        goto fail;
    }
    for (size_t j = 0; j < o->nqueues; j++)
        for (int k = 0; k < weights[j]; k++)
            o->expanded[o->nexpanded++] = j;
    free(weights);
    return 0;
fail:
    sq_queue_order_destroy(o);
    return -1;
}

void sq_queue_order_destroy(sq_queue_order *o)
{
    if (o->names != NULL)
        for (size_t i = 0; i < o->nqueues; i++)
            free(o->names[i]);
    free(o->names);
    free(o->expanded);
    memset(o, 0, sizeof *o);
}

size_t sq_queue_order_next(const sq_queue_order *o, size_t *out, size_t *scratch, sq_rand_fn rnd,
                           void *rnd_state)
{
    if (o->mode == SQ_QUEUES_STRICT) {
        for (size_t i = 0; i < o->nqueues; i++)
            out[i] = i;
        return o->nqueues;
    }
    /* Fisher-Yates over the expanded list, then keep first occurrences
     * (seen[] marks the queues already placed: linear in the list). */
    size_t *seen = scratch + o->nexpanded;
    memset(seen, 0, o->nqueues * sizeof *seen);
    memcpy(scratch, o->expanded, o->nexpanded * sizeof *scratch);
    for (size_t i = o->nexpanded; i > 1; i--) {
        size_t j = rnd((unsigned)i, rnd_state);
        size_t t = scratch[i - 1];
        scratch[i - 1] = scratch[j];
        scratch[j] = t;
    }
    size_t n = 0;
    for (size_t i = 0; i < o->nexpanded && n < o->nqueues; i++) {
        if (!seen[scratch[i]]) {
            seen[scratch[i]] = 1;
            out[n++] = scratch[i];
        }
    }
    return n;
}

size_t sq_queue_order_scratch_len(const sq_queue_order *o)
{
    return o->nexpanded + o->nqueues;
}
