/* memstat.h — where aldrecd's own memory goes, as its allocators count it:
 * malloc's arenas (glibc mallinfo2(): every arena, the main thread's and
 * the ones glibc makes for other threads) and SQLite's allocator (the
 * spool's and the parameter snapshot's page caches, statements, schema).
 * SQLite's part lives inside malloc's. For /metrics (aldrec_memory_bytes)
 * and `make soak`, which sets these beside /proc/PID/smaps. */
#ifndef ALDREC_MEMSTAT_H
#define ALDREC_MEMSTAT_H

#include <stdint.h>

typedef struct memstat {
    uint64_t heap_in_use;      /* bytes handed out by malloc and not freed */
    uint64_t heap_free;        /* bytes malloc holds free in its arenas */
    uint64_t heap_mmap;        /* bytes in malloc's own mmap()s (large blocks) */
    uint64_t sqlite_in_use;    /* SQLite's allocations now (part of heap_in_use) */
    uint64_t sqlite_highwater; /* ... at most since start */
} memstat_t;

/* Fills m. Takes each malloc arena's lock briefly (mallinfo2 walks their
 * free lists): call it once a second, not per sample. */
void memstat_get(memstat_t *m);

#endif
