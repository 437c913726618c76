/* backoff.c — capped exponential backoff with jitter; see backoff.h. */
#include "common/backoff.h"

#include <stdlib.h>

void backoff_init(backoff_t *b, int min_ms, int max_ms, enum backoff_jitter jitter,
                  unsigned seed)
{
    *b = (backoff_t){ .min_ms = min_ms, .max_ms = max_ms, .step_ms = min_ms,
                      .jitter = jitter, .seed = seed };
}

int backoff_next(backoff_t *b)
{
    int s = b->step_ms, wait = s;
    switch (b->jitter) {
    case BACKOFF_JITTER_NONE:
        break;
    case BACKOFF_JITTER_EQUAL:
        wait = s / 2 + (int)((unsigned)rand_r(&b->seed) % (unsigned)(s / 2 + 1));
        break;
    case BACKOFF_JITTER_QUARTER:
        wait = s - s / 4 + (int)((unsigned)rand_r(&b->seed) % (unsigned)(2 * (s / 4) + 1));
        break;
    }
    /* s >= max/2 rather than 2s > max: no overflow near INT_MAX */
    b->step_ms = s >= b->max_ms / 2 ? b->max_ms : s * 2;
    return wait;
}

void backoff_reset(backoff_t *b)
{
    b->step_ms = b->min_ms;
}
