/* backoff.h — capped exponential backoff for reconnects and retries.
 *
 * A backoff_t is a plain value owned by the caller: each failure asks
 * backoff_next() how long to wait (the current step, with jitter) and
 * doubles the step up to max_ms; a success calls backoff_reset(). Jitter
 * keeps the clients that failed together (every device behind one switch,
 * many recorders after a database failover) from retrying in lockstep.
 *
 * Pure: no clock and no I/O; the jitter comes from rand_r() on the seed
 * kept in the value, so a given seed always gives the same waits. */
#ifndef ALDREC_BACKOFF_H
#define ALDREC_BACKOFF_H

enum backoff_jitter {
    BACKOFF_JITTER_NONE,     /* wait exactly the step */
    BACKOFF_JITTER_EQUAL,    /* uniform in [step/2, step] */
    BACKOFF_JITTER_QUARTER,  /* uniform in [step - step/4, step + step/4] */
};

typedef struct backoff {
    int min_ms, max_ms;          /* the first step and the cap of the step */
    int step_ms;                 /* the wait (before jitter) of the next failure */
    enum backoff_jitter jitter;
    unsigned seed;               /* rand_r() state */
} backoff_t;

/* Starts b at step min_ms (> 0), doubling up to max_ms (>= min_ms). */
void backoff_init(backoff_t *b, int min_ms, int max_ms, enum backoff_jitter jitter,
                  unsigned seed);

/* The wait in ms after one more failure: the current step with jitter;
 * then the step doubles (max_ms once it reaches half of it). */
int backoff_next(backoff_t *b);

/* After a success: the next failure waits min_ms again. */
void backoff_reset(backoff_t *b);

#endif
