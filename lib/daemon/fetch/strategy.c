/*
 * fetch/strategy.c: the strategy the config names; the only place that
 * knows both.
 */
#include "fetch.h"

extern const sq_fetch_ops sq_fetch_basic;
extern const sq_fetch_ops sq_fetch_reliable;

const sq_fetch_ops *sq_fetch_for(sq_fetch_mode mode)
{
    return mode == SQ_FETCH_RELIABLE ? &sq_fetch_reliable : &sq_fetch_basic;
}
