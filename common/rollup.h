/* rollup.h — the bucket of process_data_rollup (0013_rollup.sql), shared
 * by its writer (store/rollup.h) and its readers (web/webapi.c): 10 s,
 * aligned to the Unix epoch. */
#ifndef ALDREC_COMMON_ROLLUP_H
#define ALDREC_COMMON_ROLLUP_H

#define ROLLUP_BUCKET_US 10000000LL

#endif
