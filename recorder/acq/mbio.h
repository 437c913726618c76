/* mbio.h — one-off Modbus access to a single parameter, for `aldrec get`
 * and `aldrec set` (the poller does its own planned, batched reads).
 *
 * Reads use FC1/FC2/FC3/FC4 by the parameter's table; writes use FC5 for a
 * coil, FC6 for a value in one holding register and FC16 for a value in
 * several. Words travel exactly as regcodec_encode/regcodec_decode lay
 * them out (type and word order). Every request waits at most the
 * response timeout. */
#ifndef ALDREC_MBIO_H
#define ALDREC_MBIO_H

#include <stddef.h>
#include <stdint.h>

#include "acq/devconn.h"
#include "acq/pmap.h"

typedef struct mbio mbio_t;

/* Connects to p's device (TCP host:port or RTU serial line) and addresses
 * its unit id; settings the component leaves NULL come from def, as for
 * aldrecd's device threads (devconn.h). Returns the handle, or NULL with
 * err. */
mbio_t *mbio_open(const param_meta_t *p, const devconn_defaults_t *def, char *err,
                  size_t errlen);

/* Closes and frees m; NULL is fine. */
void mbio_close(mbio_t *m);

/* Reads p's registers (or bit) into words[0..regcodec_words(p->type)) —
 * a bit reads as 0 or 1 in words[0]. Returns Q_GOOD (sample.h), or the
 * quality of the failure (quality_of_errno: timeout, communication error,
 * 100+exception) with err. */
int16_t mbio_read(mbio_t *m, const param_meta_t *p, uint16_t words[4], char *err,
                  size_t errlen);

/* Writes words to p (FC5, FC6 or FC16 as above). Returns Q_GOOD, or the
 * quality of the failure with err. The caller checks that p is writable. */
int16_t mbio_write(mbio_t *m, const param_meta_t *p, const uint16_t words[4], char *err,
                   size_t errlen);

/* Engineering value of words read for p: raw × scale + offset. */
double mbio_value(const param_meta_t *p, const uint16_t words[4]);

#endif
