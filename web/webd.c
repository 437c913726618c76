/* webd.c — the HTTP side of aldrec web: routing, static files, the pool of
 * reader connections; see webd.h. The answers themselves are webapi.c. */
#include "web/webd.h"

#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/netaddr.h"
#include "common/pgconn.h"
#include "web/webapi.h"

#define CONNECTION_LIMIT 32
#define CONNECTION_TIMEOUT_S 30
#define MAX_URL 4096
#define MAX_POOL 32

struct webd {
    struct MHD_Daemon *d;
    int port;
    char conninfo[1024];
    char root[1024];
    int timeout_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    PGconn *idle[MAX_POOL];   /* connected, ready */
    int nidle;
    int out;                  /* handed out */
    int size;                 /* most at once */
};

/* ---- the pool ------------------------------------------------------------ */

/* A ready connection: an idle one, or a new one while fewer than `size`
 * exist (waits otherwise). NULL with err when connecting failed. */
static PGconn *pool_get(webd_t *w, char *err, size_t errlen)
{
    pthread_mutex_lock(&w->mu);
    while (w->nidle == 0 && w->out >= w->size)
        pthread_cond_wait(&w->cv, &w->mu);
    w->out++;
    PGconn *c = w->nidle ? w->idle[--w->nidle] : NULL;
    pthread_mutex_unlock(&w->mu);
    if (c && PQstatus(c) == CONNECTION_OK)
        return c;
    PQfinish(c);
    c = pgconn_connect(w->conninfo, "aldrec web", w->timeout_ms, -1, err, errlen);
    if (c) {
        PQsetnonblocking(c, 0);
        /* Statements run read-only and bounded: a page never writes, and a
         * query that hangs gives its connection back. */
        PGresult *res = PQexec(c, "SET default_transaction_read_only = on;"
                                  " SET statement_timeout = '30s'");
        bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        PQclear(res);
        if (!ok || webapi_prepare(c, err, errlen) < 0) {
            if (!ok)
                snprintf(err, errlen, "%s", PQerrorMessage(c));
            PQfinish(c);
            c = NULL;
        }
    }
    if (!c) {
        pthread_mutex_lock(&w->mu);
        w->out--;
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
    }
    return c;
}

static void pool_put(webd_t *w, PGconn *c)
{
    if (c && PQstatus(c) != CONNECTION_OK) {
        PQfinish(c);
        c = NULL;
    }
    pthread_mutex_lock(&w->mu);
    w->out--;
    if (c)
        w->idle[w->nidle++] = c;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* ---- answers -------------------------------------------------------------- */

static enum MHD_Result reply(struct MHD_Connection *conn, int status, const char *type,
                             void *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    /* The pages load nothing from anywhere else. */
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'");
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned int)status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reply_text(struct MHD_Connection *conn, int status, const char *msg)
{
    return reply(conn, status, "text/plain; charset=utf-8", (void *)msg, strlen(msg),
                 MHD_RESPMEM_MUST_COPY);
}

static const char *mime(const char *path)
{
    static const struct { const char *ext, *type; } types[] = {
        { ".html", "text/html; charset=utf-8" }, { ".js", "text/javascript; charset=utf-8" },
        { ".css", "text/css; charset=utf-8" }, { ".svg", "image/svg+xml" },
        { ".png", "image/png" },
    };
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

/* A file under root: names of [A-Za-z0-9._-/] only, no "..", no dot files. */
static enum MHD_Result serve_file(webd_t *w, struct MHD_Connection *conn, const char *url)
{
    if (strcmp(url, "/") == 0)
        url = "/index.html";
    bool ok = url[0] == '/' && !strstr(url, "..") && !strstr(url, "/.");
    for (const char *p = url; ok && *p; p++)
        ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
             *p == '.' || *p == '_' || *p == '-' || *p == '/';
    char path[2048];
    struct stat st;
    int fd = -1;
    if (ok && snprintf(path, sizeof path, "%s%s", w->root, url) < (int)sizeof path)
        fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        char msg[256];
        snprintf(msg, sizeof msg, "not found: %.200s\n", url);
        return reply_text(conn, 404, msg);
    }
    struct MHD_Response *r = MHD_create_response_from_fd((size_t)st.st_size, fd);
    if (!r) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", mime(path));
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Content-Security-Policy",
                            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'");
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

static const char *arg_of(void *ctx, const char *name)
{
    const char *v = MHD_lookup_connection_value(ctx, MHD_GET_ARGUMENT_KIND, name);
    return v && *v ? v : NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *data_size, void **state)
{
    webd_t *w = cls;
    (void)version;
    (void)data;
    if (!*state) {          /* first call: headers only */
        *state = w;
        return MHD_YES;
    }
    if (*data_size) {       /* a body: refused below */
        *data_size = 0;
        return MHD_YES;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return reply_text(conn, 405, "method: only GET\n");
    if (strlen(url) > MAX_URL)
        return reply_text(conn, 414, "url: too long\n");
    bool api = strncmp(url, "/api/", 5) == 0;
    if (!api && strcmp(url, "/health") != 0)
        return serve_file(w, conn, url);
    char err[512] = "";
    PGconn *c = pool_get(w, err, sizeof err);
    if (!c) {
        char msg[700];
        err[strcspn(err, "\n")] = '\0';
        for (char *p = err; *p; p++)      /* libpq's text inside a JSON string */
            if (*p == '"' || *p == '\\')
                *p = '\'';
        snprintf(msg, sizeof msg, api ? "{\"error\": \"database unreachable: %s\"}\n"
                                      : "failing\n- database unreachable: %s\n", err);
        return reply(conn, 503, api ? "application/json" : "text/plain; charset=utf-8", msg,
                     strlen(msg), MHD_RESPMEM_MUST_COPY);
    }
    if (!api) {
        pool_put(w, c);
        return reply_text(conn, 200, "ok\n");
    }
    webapi_reply_t r = { 0 };
    int rc = webapi_handle(c, url, arg_of, conn, &r);
    pool_put(w, c);
    if (rc < 0)
        return reply_text(conn, 500, "out of memory\n");
    if (r.status >= 500)
        log_msg(LL_WARN, "web: %s: %d %.*s", url, r.status, (int)(r.len > 200 ? 200 : r.len), r.body);
    return reply(conn, r.status, r.type, r.body, r.len, MHD_RESPMEM_MUST_FREE);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    log_msg(LL_DEBUG, "web http: %s", msg);
}

webd_t *webd_start(const webd_opts_t *o, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    unsigned int flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                         MHD_USE_ERROR_LOG;
    int af = netaddr_parse(o->host, o->port, &ss);
    if (af < 0) {
        snprintf(err, errlen, "web: listen: \"%s\" is not a numeric IPv4 or IPv6 address", o->host);
        return NULL;
    }
    if (af == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (o->pool < 1 || o->pool > MAX_POOL) {
        snprintf(err, errlen, "web: pool: %d is outside 1..%d", o->pool, MAX_POOL);
        return NULL;
    }
    webd_t *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(err, errlen, "web: out of memory");
        return NULL;
    }
    snprintf(w->conninfo, sizeof w->conninfo, "%s", o->conninfo);
    snprintf(w->root, sizeof w->root, "%s", o->root);
    w->timeout_ms = o->connect_timeout_s * 1000;
    w->size = o->pool;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->d = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, on_request, w,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned int)CONNECTION_LIMIT,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)CONNECTION_TIMEOUT_S,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
    if (!w->d) {
        int e = errno;
        snprintf(err, errlen, "web: cannot listen on %s:%d: %s", o->host, o->port,
                 e ? strerror(e) : "libmicrohttpd refused to start");
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        free(w);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(w->d, MHD_DAEMON_INFO_BIND_PORT);
    w->port = info ? info->port : o->port;
    return w;
}

int webd_port(const webd_t *w) { return w->port; }

void webd_stop(webd_t *w)
{
    if (!w)
        return;
    MHD_stop_daemon(w->d);
    for (int i = 0; i < w->nidle; i++)
        PQfinish(w->idle[i]);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
