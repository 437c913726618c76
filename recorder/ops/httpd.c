/* httpd.c — /metrics and /health over libmicrohttpd; see httpd.h. */
#include "ops/httpd.h"

#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"
#include "common/netaddr.h"

#define CONNECTION_LIMIT 16
#define CONNECTION_TIMEOUT_S 10

struct httpd {
    struct MHD_Daemon *d;
    int port;
    pthread_mutex_t mu;
    char *metrics, *health;    /* NULL until the first publish */
    size_t mlen, hlen;
    int health_status;
    unsigned long requests;
};

static enum MHD_Result answer(struct MHD_Connection *conn, unsigned int status,
                              const char *type, const char *body, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body,
                                                             MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **ctx)
{
    httpd_t *h = cls;
    static int first;
    (void)version;
    (void)upload_data;
    /* The first call only announces the request (headers read). */
    if (*ctx == NULL) {
        *ctx = &first;
        return MHD_YES;
    }
    if (*upload_size != 0) {
        *upload_size = 0;   /* a body we do not want: drop it */
        return MHD_YES;
    }
    pthread_mutex_lock(&h->mu);
    h->requests++;
    pthread_mutex_unlock(&h->mu);
    static const char text[] = "text/plain; charset=utf-8";
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return answer(conn, MHD_HTTP_METHOD_NOT_ALLOWED, text, "only GET and HEAD\n", 18);
    bool metrics = strcmp(url, "/metrics") == 0, health = strcmp(url, "/health") == 0;
    if (!metrics && !health) {
        static const char index[] = "aldrecd: /metrics (Prometheus), /health\n";
        return answer(conn, strcmp(url, "/") == 0 ? MHD_HTTP_OK : MHD_HTTP_NOT_FOUND, text,
                      index, sizeof index - 1);
    }
    enum MHD_Result rc;
    /* The answer is copied while the lock is held; the copy is served. */
    pthread_mutex_lock(&h->mu);
    const char *body = metrics ? h->metrics : h->health;
    if (!body)
        rc = answer(conn, MHD_HTTP_SERVICE_UNAVAILABLE, text, "starting\n", 9);
    else if (metrics)
        rc = answer(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", h->metrics,
                    h->mlen);
    else
        rc = answer(conn, (unsigned int)h->health_status, text, h->health, h->hlen);
    pthread_mutex_unlock(&h->mu);
    return rc;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    (void)cls;
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    log_msg(LL_DEBUG, "metrics http: %s", msg);
}

httpd_t *httpd_start(const char *host, int port, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    unsigned int flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
    int af = netaddr_parse(host, port, &ss);
    if (af < 0) {
        snprintf(err, errlen, "metrics: \"%s\" is not a numeric IPv4 or IPv6 address", host);
        return NULL;
    }
    if (af == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";   /* as named in the error below */
    httpd_t *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "metrics: out of memory");
        return NULL;
    }
    pthread_mutex_init(&h->mu, NULL);
    h->d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, h,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned int)CONNECTION_LIMIT,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)CONNECTION_TIMEOUT_S,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                            MHD_OPTION_END);
    if (!h->d) {
        int e = errno;
        snprintf(err, errlen, "metrics: cannot listen on %s%s%s:%d: %s",
                 strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", port,
                 e ? strerror(e) : "libmicrohttpd refused to start");
        pthread_mutex_destroy(&h->mu);
        free(h);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : port;
    return h;
}

int httpd_port(const httpd_t *h)
{
    return h->port;
}

int httpd_publish(httpd_t *h, const char *metrics, size_t mlen, const char *health,
                  size_t hlen, int health_status)
{
    char *m = malloc(mlen + 1), *hh = malloc(hlen + 1);
    if (!m || !hh) {
        free(m);
        free(hh);
        errno = ENOMEM;
        return -1;
    }
    memcpy(m, metrics, mlen);
    m[mlen] = '\0';
    memcpy(hh, health, hlen);
    hh[hlen] = '\0';
    pthread_mutex_lock(&h->mu);
    char *old_m = h->metrics, *old_h = h->health;
    h->metrics = m;
    h->mlen = mlen;
    h->health = hh;
    h->hlen = hlen;
    h->health_status = health_status;
    pthread_mutex_unlock(&h->mu);
    free(old_m);
    free(old_h);
    return 0;
}

unsigned long httpd_requests(httpd_t *h)
{
    pthread_mutex_lock(&h->mu);
    unsigned long n = h->requests;
    pthread_mutex_unlock(&h->mu);
    return n;
}

void httpd_stop(httpd_t *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->d);
    pthread_mutex_destroy(&h->mu);
    free(h->metrics);
    free(h->health);
    free(h);
}
