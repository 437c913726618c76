/* tcapture.h — capturing what a test's code writes on stderr (the log). */
#ifndef ALDREC_TCAPTURE_H
#define ALDREC_TCAPTURE_H

#include <fcntl.h>
#include <unistd.h>

#include "t.h"

static int tcap_pipe[2];
static int tcap_saved_stderr;

/* From now on stderr goes into a pipe (up to its 64 KiB buffer). */
static inline void capture_begin(void)
{
    T_CHECK(pipe(tcap_pipe) == 0);
    fcntl(tcap_pipe[0], F_SETFL, O_NONBLOCK);
    tcap_saved_stderr = dup(STDERR_FILENO);
    dup2(tcap_pipe[1], STDERR_FILENO);
}

/* Restores stderr; returns what was written since capture_begin (static
 * buffer, NUL-terminated, at most 16 KiB). */
static inline const char *capture_end(void)
{
    static char buf[16384];
    dup2(tcap_saved_stderr, STDERR_FILENO);
    close(tcap_saved_stderr);
    close(tcap_pipe[1]);
    ssize_t n = read(tcap_pipe[0], buf, sizeof buf - 1);
    close(tcap_pipe[0]);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

#endif
