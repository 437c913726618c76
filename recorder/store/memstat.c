/* memstat.c — malloc's and SQLite's own count of aldrecd's memory. */
#include "store/memstat.h"

#include <malloc.h>
#include <sqlite3.h>

void memstat_get(memstat_t *m)
{
    struct mallinfo2 mi = mallinfo2();
    m->heap_in_use = mi.uordblks + mi.hblkhd;
    m->heap_free = mi.fordblks;
    m->heap_mmap = mi.hblkhd;
    m->sqlite_in_use = (uint64_t)sqlite3_memory_used();
    m->sqlite_highwater = (uint64_t)sqlite3_memory_highwater(0);
}
