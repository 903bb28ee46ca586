/*
 * beat.h: the main thread's periodic duties (beat.c).
 */
#ifndef SQ_BEAT_H
#define SQ_BEAT_H

#include "runtime.h"

/* How often the main loop looks at the workers for the Busy page (issue 16:
 * a job is listed about a second after it starts). */
#define SQ_BEAT_BUSY_TICK 0.25

/* One heartbeat, with the stats and metrics flushes that go with it (as
 * Sidekiq: counts reach Redis each beat and at exit, and stay in memory when
 * a flush fails), the systemd status and the title. Returns the remote
 * signal the beat brought (0: none). */
int sq_beat(sq_runtime *rt);

/* Between beats: the work hash when a job passed a second or a shown one
 * left, and the title with it. */
void sq_beat_refresh(sq_runtime *rt);

/* The process title, as Sidekiq's: each beat, on quiet and stop. */
void sq_beat_title(sq_runtime *rt);

/* Ping systemd's watchdog when due (*next), only while progress is seen. */
void sq_beat_watchdog(sq_runtime *rt, double *next);

#endif
