/* reactor.h — the simulated ALD reactor: physics model and register image.
 *
 * No networking here: aldsim.c serves the register image over Modbus TCP,
 * the unit test drives the model directly. The register map is the table in
 * reactor.c, which follows firmware/REGISTERS.md line for line.
 *
 * Model time is in seconds since reactor_new(), taken from a monotonic clock
 * by the caller; system.uptime reports it. The noise of the measurements
 * comes from a PRNG seeded by reactor_new(), so a seed gives the same noise
 * sequence for the same sequence of reactor_step() times.
 *
 * Typical request cycle in a server:
 *   reactor_step(r, now);                         model up to date
 *   reactor_count_read(r);                        if it is a read request
 *   modbus_reply(ctx, req, len, reactor_mapping(r));
 *   reactor_apply_writes(r);                      if it was a write request
 */
#ifndef ALDSIM_REACTOR_H
#define ALDSIM_REACTOR_H

#include <stdint.h>

#include <modbus.h>

typedef struct reactor reactor_t;

/* Number of entries in each of the four Modbus tables (addresses 0..99). */
#define REACTOR_TABLE_SIZE 100

/* A reactor at model time 0: heaters at 25 degC room temperature, flows 0,
 * set points at their defaults, ALD sequencer running (its first TMA pulse
 * starts at time 0). seed selects the noise sequence; any value is valid.
 * Returns NULL with errno set (ENOMEM) on failure. Free with reactor_free(). */
reactor_t *reactor_new(uint64_t seed);

/* Frees r and its register image. NULL is fine. */
void reactor_free(reactor_t *r);

/* Advances the model to t_s seconds since reactor_new() and refreshes the
 * measured registers (with fresh noise). Any step size is stable (first-order
 * lags use exp(-dt/tau); the sequencer skips whole cycles arithmetically on
 * very long steps). t_s not later than the current model time (including NaN)
 * changes nothing, so two reads at the same instant see the same values. */
void reactor_step(reactor_t *r, double t_s);

/* The register image to serve: REACTOR_TABLE_SIZE entries in each table.
 * Borrowed: valid until reactor_free(). A server may let clients write its
 * coils and holding registers, and must call reactor_apply_writes() after. */
modbus_mapping_t *reactor_mapping(reactor_t *r);

/* Takes set points from the holding registers and coils after a client
 * wrote them. A set point outside its range (or NaN) is refused: its
 * registers revert to the set point in force. Switching ald.enable on starts
 * a cycle at the current model time, switching it off closes both valves;
 * while it is on, the sequencer overrides writes to the valve coils. */
void reactor_apply_writes(reactor_t *r);

/* Counts one answered read request: system.read_counter (input registers
 * 20-21) goes up by one, so a response built after this call includes
 * itself. The register wraps at 2^32. */
void reactor_count_read(reactor_t *r);

/* Engineering value (raw * scale + offset) of the parameter called name
 * ("heater1.temperature", "ald.cycles", ...) as currently in the register
 * image. Returns 0, or -1 with errno ENOENT for an unknown name. */
int reactor_get(const reactor_t *r, const char *name, double *value);

#endif
