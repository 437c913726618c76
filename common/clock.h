/* clock.h — the two clocks every layer reads: CLOCK_MONOTONIC for
 * deadlines, intervals and latencies (never jumps), CLOCK_REALTIME for
 * timestamps that are stored or shown (µs since the Unix epoch, as
 * samples, batches and the spool stamp them).
 *
 * Each call reads the clock once; none can fail on Linux (the clocks
 * always exist). */
#ifndef ALDREC_CLOCK_H
#define ALDREC_CLOCK_H

#include <stdint.h>

/* CLOCK_MONOTONIC in ns, µs and ms (arbitrary origin: compare, subtract). */
int64_t clock_mono_ns(void);
int64_t clock_mono_us(void);
int64_t clock_mono_ms(void);

/* CLOCK_REALTIME in µs since 1970-01-01 00:00:00 UTC. */
int64_t clock_real_us(void);

#endif
