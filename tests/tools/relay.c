/* relay.c — a TCP relay for tests that can turn into a black hole.
 *
 *   relay --target HOST:PORT [--port N] [--hole-after BYTES]
 *
 * Listens on 127.0.0.1 (port N, or one the kernel picks), prints
 * "relay listening on 127.0.0.1:PORT", and copies bytes both ways between
 * each accepted client and a connection of its own to the target.
 *
 *   SIGUSR1  black hole: stop moving bytes in both directions, without
 *            closing anything. The kernel still ACKs what arrives (until
 *            its buffers fill), so to the client the connection looks alive
 *            and the server simply never answers — the case that only an
 *            application deadline catches. New clients are accepted and
 *            held; they get a target connection when the hole closes.
 *   SIGUSR2  pass bytes again (whatever waited in the buffers goes on).
 *   SIGTERM  exit.
 * Every change of mode is printed ("mode hole", "mode pass") so a test can
 * wait for it.
 *
 * --hole-after BYTES: every connection turns into a black hole of its own
 * once BYTES bytes went from the target to the client: nothing moves any
 * more either way, nothing is closed. With BYTES = 1 against PostgreSQL
 * the server's 'S' (yes to the SSLRequest) passes and the TLS handshake
 * that follows never gets an answer. Each such connection is printed
 * ("held after D bytes down, U up") when it stops, and closed when the
 * client closes its end. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_PAIRS 64
#define BUF 65536

struct dir {               /* one direction: bytes read from `from`, not yet written to `to` */
    char buf[BUF];
    size_t len;
    bool eof;              /* `from` closed its side; shut `to`'s write side once empty */
    bool shut;
};

struct pair {
    int client, server;    /* -1: none (server: not connected yet) */
    bool connecting;
    bool held;             /* --hole-after reached: never moves again */
    size_t up_sent, down_sent;
    struct dir up, down;   /* up: client -> server; down: server -> client */
};

static volatile sig_atomic_t want_hole, want_pass, want_exit;
static int sigpipe_w = -1;

static void on_signal(int sig)
{
    int saved = errno;
    if (sig == SIGUSR1)
        want_hole = 1;
    else if (sig == SIGUSR2)
        want_pass = 1;
    else
        want_exit = 1;
    char c = 1;
    ssize_t w = write(sigpipe_w, &c, 1);
    (void)w;
    errno = saved;
}

static struct sockaddr_storage target;
static socklen_t target_len;

static int resolve(const char *hostport)
{
    char host[256];
    const char *colon = strrchr(hostport, ':');
    if (!colon || (size_t)(colon - hostport) >= sizeof host)
        return -1;
    memcpy(host, hostport, (size_t)(colon - hostport));
    host[colon - hostport] = '\0';
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
    if (getaddrinfo(host, colon + 1, &hints, &ai) != 0 || !ai)
        return -1;
    memcpy(&target, ai->ai_addr, ai->ai_addrlen);
    target_len = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

static void pair_close(struct pair *p)
{
    if (p->client >= 0)
        close(p->client);
    if (p->server >= 0)
        close(p->server);
    *p = (struct pair){ .client = -1, .server = -1 };
}

static void connect_server(struct pair *p)
{
    p->server = socket(target.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (p->server < 0) {
        pair_close(p);
        return;
    }
    if (connect(p->server, (struct sockaddr *)&target, target_len) < 0) {
        if (errno != EINPROGRESS) {
            pair_close(p);
            return;
        }
        p->connecting = true;
    }
}

/* Moves what it can from `from` into d and from d into `to`, at most
 * `limit` bytes to `to`; *sent counts them. Returns -1 when the pair is
 * finished (error). */
static int pump(int from, int to, struct dir *d, short rev_from, short rev_to, size_t limit,
                size_t *sent)
{
    if ((rev_from & (POLLIN | POLLHUP | POLLERR)) && !d->eof && d->len < BUF) {
        ssize_t n = read(from, d->buf + d->len, BUF - d->len);
        if (n > 0)
            d->len += (size_t)n;
        else if (n == 0)
            d->eof = true;
        else if (errno != EAGAIN && errno != EINTR)
            return -1;
    }
    if ((rev_to & POLLOUT) && d->len > 0 && limit > 0) {
        ssize_t n = send(to, d->buf, d->len < limit ? d->len : limit, MSG_NOSIGNAL);
        if (n > 0) {
            *sent += (size_t)n;
            memmove(d->buf, d->buf + n, d->len - (size_t)n);
            d->len -= (size_t)n;
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
            return -1;
        }
    }
    if (d->eof && d->len == 0 && !d->shut) {
        shutdown(to, SHUT_WR);
        d->shut = true;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *tgt = NULL;
    int port = 0;
    long long hole_after = -1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--target") == 0 && i + 1 < argc)
            tgt = argv[++i];
        else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--hole-after") == 0 && i + 1 < argc)
            hole_after = atoll(argv[++i]);
        else
            tgt = NULL, i = argc;
    }
    if (!tgt || resolve(tgt) < 0) {
        fprintf(stderr, "usage: relay --target HOST:PORT [--port N] [--hole-after BYTES]\n");
        return 2;
    }
    int sp[2];
    if (pipe2(sp, O_NONBLOCK | O_CLOEXEC) < 0) {
        perror("pipe");
        return 1;
    }
    sigpipe_w = sp[1];
    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in la = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t ll = sizeof la;
    if (bind(lfd, (struct sockaddr *)&la, sizeof la) < 0 || listen(lfd, 16) < 0 ||
        getsockname(lfd, (struct sockaddr *)&la, &ll) < 0) {
        perror("relay: listen");
        return 1;
    }
    printf("relay listening on 127.0.0.1:%d\n", ntohs(la.sin_port));
    fflush(stdout);

    static struct pair pairs[MAX_PAIRS];   /* 8 MiB of buffers: not on the stack */
    for (int i = 0; i < MAX_PAIRS; i++)
        pairs[i] = (struct pair){ .client = -1, .server = -1 };
    bool hole = false;

    while (!want_exit) {
        if (want_hole || want_pass) {
            bool h = want_hole && !want_pass ? true : want_pass && !want_hole ? false : hole;
            want_hole = want_pass = 0;
            if (h != hole) {
                hole = h;
                printf("mode %s\n", hole ? "hole" : "pass");
                fflush(stdout);
            }
        }
        struct pollfd pfd[2 + 2 * MAX_PAIRS];
        int owner[2 + 2 * MAX_PAIRS];
        int n = 0;
        pfd[n++] = (struct pollfd){ .fd = sp[0], .events = POLLIN };
        pfd[n++] = (struct pollfd){ .fd = lfd, .events = POLLIN };
        for (int i = 0; i < MAX_PAIRS && !hole; i++) {
            struct pair *p = &pairs[i];
            if (p->client < 0)
                continue;
            if (p->server < 0)
                connect_server(p);
            if (p->client < 0)
                continue;
            short ce = 0, se = 0;
            if (p->held) {
                /* Only to notice the client leaving. */
                owner[n] = i;
                pfd[n++] = (struct pollfd){ .fd = p->client, .events = POLLRDHUP };
                owner[n] = i;
                pfd[n++] = (struct pollfd){ .fd = -1 };
                continue;
            }
            if (p->connecting) {
                se = POLLOUT;
            } else {
                ce = (short)((!p->up.eof && p->up.len < BUF ? POLLIN : 0) |
                             (p->down.len ? POLLOUT : 0));
                se = (short)((!p->down.eof && p->down.len < BUF ? POLLIN : 0) |
                             (p->up.len ? POLLOUT : 0));
            }
            owner[n] = i;
            pfd[n++] = (struct pollfd){ .fd = p->client, .events = ce };
            owner[n] = i;
            pfd[n++] = (struct pollfd){ .fd = p->server, .events = se };
        }
        if (poll(pfd, (nfds_t)n, -1) < 0) {
            if (errno == EINTR)
                continue;
            perror("relay: poll");
            return 1;
        }
        if (pfd[0].revents) {
            char buf[64];
            while (read(sp[0], buf, sizeof buf) > 0)
                ;
        }
        if (pfd[1].revents) {
            int fd;
            while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                int i;
                for (i = 0; i < MAX_PAIRS && pairs[i].client >= 0; i++)
                    ;
                if (i == MAX_PAIRS) {
                    close(fd);
                    continue;
                }
                pairs[i] = (struct pair){ .client = fd, .server = -1 };
            }
        }
        for (int k = 2; k + 1 < n; k += 2) {
            struct pair *p = &pairs[owner[k]];
            if (p->client < 0)
                continue;
            short cr = pfd[k].revents, sr = pfd[k + 1].revents;
            if (p->held) {
                if (cr & (POLLRDHUP | POLLHUP | POLLERR))
                    pair_close(p);
                continue;
            }
            if (p->connecting) {
                if (!sr)
                    continue;
                int e = 0;
                socklen_t el = sizeof e;
                getsockopt(p->server, SOL_SOCKET, SO_ERROR, &e, &el);
                if (e) {
                    pair_close(p);
                    continue;
                }
                p->connecting = false;
                continue;
            }
            size_t down_limit = hole_after < 0 ? SIZE_MAX
                                : (size_t)hole_after - p->down_sent;
            if (pump(p->client, p->server, &p->up, cr, sr, SIZE_MAX, &p->up_sent) < 0 ||
                pump(p->server, p->client, &p->down, sr, cr, down_limit, &p->down_sent) < 0 ||
                (p->up.shut && p->down.shut)) {
                pair_close(p);
                continue;
            }
            if (hole_after >= 0 && p->down_sent >= (size_t)hole_after && p->up_sent > 0) {
                p->held = true;
                printf("held after %zu bytes down, %zu up\n", p->down_sent, p->up_sent);
                fflush(stdout);
            }
        }
    }
    for (int i = 0; i < MAX_PAIRS; i++)
        pair_close(&pairs[i]);
    close(lfd);
    return 0;
}
