/* ctl.h — the control socket between aldrec (client) and aldrecd.
 *
 * A Unix stream socket; one request per connection: the client writes one
 * line ("START 42\n", "STOP\n", "STATUS\n", "PING\n", "STEP 3 ALD cycles\n",
 * "EVENT ...\n" (store/ctlrec.h), "QUARANTINE LIST\n"; every request and
 * answer is in docs/protocol.md), the daemon answers "OK[ text]\n" or
 * "ERR text\n", optionally followed by more lines, and closes (after a
 * "SESSION" request it keeps the connection and ends each answer with a
 * line "." instead: contrib/python/aldrec.py uses that). The socket
 * is created mode 0660: only root and the socket's group may drive the
 * recorder. */
#ifndef ALDREC_CTL_H
#define ALDREC_CTL_H

#include <stddef.h>

/* Creates, binds and listens on path (non-blocking, close-on-exec). A stale
 * socket left by a dead daemon is replaced; a live one is an error
 * ("another aldrecd is running"). Returns the fd, or -1 with err. */
int ctl_listen(const char *path, char *err, size_t errlen);

/* Gives the socket at path to group (by name) and mode 0660, so that the
 * group's members (operators, recipe steps) may drive the recorder and
 * nobody else: connecting needs write permission on the socket. The
 * daemon must be root or a member of group. Returns 0, or -1 with err
 * (unknown group, EPERM). */
int ctl_set_group(const char *path, const char *group, char *err, size_t errlen);

/* Sends one request line (without "\n") and reads the whole answer into
 * reply (NUL-terminated, truncated to cap). Waits at most timeout_ms in all.
 * Returns 0 when the daemon answered "OK…", 1 when it answered "ERR…",
 * -1 when it could not be reached or did not answer (err says why). */
int ctl_request(const char *path, const char *line, char *reply, size_t cap,
                int timeout_ms, char *err, size_t errlen);

#endif
