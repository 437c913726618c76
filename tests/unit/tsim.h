/* tsim.h — for the unit tests that talk to a real aldsim (test_poller,
 * test_devqueue): starts one, found next to the test program, on a free
 * port, and reads the port from its first line of output. */
#ifndef ALDREC_TSIM_H
#define ALDREC_TSIM_H

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

/* Returns aldsim's port (*pid its process), or -1. */
static inline int tsim_start(const char *self, pid_t *pid)
{
    char path[4096], dir[4096];
    int fd[2];
    snprintf(dir, sizeof dir, "%s", self);
    snprintf(path, sizeof path, "%s/aldsim", dirname(dir));
    if (pipe(fd) < 0)
        return -1;
    *pid = fork();
    if (*pid == 0) {
        dup2(fd[1], STDOUT_FILENO);
        close(fd[0]);
        execl(path, "aldsim", "--port", "0", (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    char line[256] = "";
    FILE *f = fdopen(fd[0], "r");
    if (!f || !fgets(line, sizeof line, f)) {
        if (f)
            fclose(f);
        return -1;
    }
    fclose(f);
    char *colon = strrchr(line, ':');
    int port = colon ? atoi(colon + 1) : -1;
    return port > 0 ? port : -1;
}

#endif
