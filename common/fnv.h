/* fnv.h — 64-bit FNV-1a (Fowler, Noll, Vo): a fast, non-cryptographic hash
 * for noticing that stored bytes changed (the spool's batch crc, the
 * parameter map blob's checksum) and for in-memory hash indexes. Not for
 * anything an attacker chooses.
 *
 * The values are stored (spool files, Redis, snapshots): the algorithm and
 * its constants never change. */
#ifndef ALDREC_FNV_H
#define ALDREC_FNV_H

#include <stddef.h>
#include <stdint.h>

/* The offset basis: the hash of no bytes, where a hash starts. */
#define FNV1A64_INIT UINT64_C(0xcbf29ce484222325)

/* Continues hash h over data[0..len): fnv1a64(FNV1A64_INIT, p, n) hashes
 * p; feeding a message in pieces gives the hash of the whole. */
uint64_t fnv1a64(uint64_t h, const void *data, size_t len);

#endif
