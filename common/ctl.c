/* ctl.c — control socket: listening side and a deadline-bounded client. */
#include "common/ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/clock.h"

static int fill_addr(struct sockaddr_un *sa, const char *path, char *err, size_t errlen)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa->sun_path) {
        snprintf(err, errlen, "socket path \"%s\" is longer than %zu characters", path,
                 sizeof sa->sun_path - 1);
        return -1;
    }
    memcpy(sa->sun_path, path, strlen(path) + 1);
    return 0;
}

int ctl_listen(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sa;
    int fd = -1;

    if (fill_addr(&sa, path, err, errlen) < 0)
        return -1;
    /* Is somebody answering on it already? */
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail_errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
        snprintf(err, errlen, "%s: another aldrecd is running (it answers on this socket)", path);
        close(fd);
        return -1;
    }
    close(fd);
    fd = -1;
    if (unlink(path) < 0 && errno != ENOENT)
        goto fail_errno;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        goto fail_errno;
    mode_t old = umask(0117);
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    if (rc < 0 || listen(fd, 16) < 0)
        goto fail_errno;
    return fd;
fail_errno:
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

int ctl_set_group(const char *path, const char *group, char *err, size_t errlen)
{
    struct group gr, *found = NULL;
    char buf[4096];
    int rc = getgrnam_r(group, &gr, buf, sizeof buf, &found);
    if (rc != 0 || !found) {
        snprintf(err, errlen, "socket_group: no group \"%s\"%s%s", group, rc ? ": " : "",
                 rc ? strerror(rc) : "");
        return -1;
    }
    if (chown(path, (uid_t)-1, found->gr_gid) < 0) {
        snprintf(err, errlen, "%s: cannot give it to group %s: %s%s", path, group,
                 strerror(errno), errno == EPERM ? " (aldrecd must be a member of the group)"
                                                 : "");
        return -1;
    }
    if (chmod(path, 0660) < 0) {
        snprintf(err, errlen, "%s: chmod 0660: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int ctl_request(const char *path, const char *line, char *reply, size_t cap,
                int timeout_ms, char *err, size_t errlen)
{
    struct sockaddr_un sa;
    int fd = -1;
    size_t len = 0;
    int64_t deadline = clock_mono_ms() + timeout_ms;

    if (cap == 0 || fill_addr(&sa, path, err, errlen) < 0)
        return -1;
    reply[0] = '\0';
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = errno;
        snprintf(err, errlen, "aldrecd is not running (%s: %s)", path, strerror(e));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    char msg[1024];
    int n = snprintf(msg, sizeof msg, "%s\n", line);
    if (n < 0 || (size_t)n >= sizeof msg || write(fd, msg, (size_t)n) != n) {
        snprintf(err, errlen, "sending to aldrecd: %s", n >= (int)sizeof msg ? "request too long" : strerror(errno));
        close(fd);
        return -1;
    }
    shutdown(fd, SHUT_WR);
    for (;;) {
        int64_t left = deadline - clock_mono_ms();
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        if (left <= 0) {
            snprintf(err, errlen, "aldrecd did not answer within %d ms", timeout_ms);
            close(fd);
            return -1;
        }
        int rc = poll(&pfd, 1, (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            continue;
        char buf[4096];
        ssize_t got = read(fd, buf, sizeof buf);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            snprintf(err, errlen, "reading from aldrecd: %s", strerror(errno));
            close(fd);
            return -1;
        }
        if (got == 0)
            break;
        size_t take = (size_t)got < cap - 1 - len ? (size_t)got : cap - 1 - len;
        memcpy(reply + len, buf, take);
        len += take;
        reply[len] = '\0';
    }
    close(fd);
    if (strncmp(reply, "OK", 2) == 0)
        return 0;
    if (strncmp(reply, "ERR", 3) == 0)
        return 1;
    snprintf(err, errlen, "aldrecd closed the connection without an answer");
    return -1;
}
