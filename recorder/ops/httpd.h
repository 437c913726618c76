/* httpd.h — the metrics and health endpoint: a small HTTP server
 * (libmicrohttpd, its own thread) answering
 *
 *   GET /metrics   Prometheus text exposition (text/plain; version=0.0.4)
 *   GET /health    "ok" / "degraded" / "failing", then "- reason" lines;
 *                  HTTP 200 for ok and degraded, 503 for failing
 *
 * (HEAD too; anything else 404/405). The server never looks at the
 * daemon's state: it answers with the texts last handed to
 * httpd_publish(), which the main loop renders from a snapshot once a
 * second; until the first publish both answer 503 "starting".
 *
 * Binding: a numeric IPv4/IPv6 address or "localhost" (127.0.0.1), port 0
 * for any free one (httpd_port() says which). Whether a non-loopback
 * address is allowed is the config's decision ([metrics] allow_remote),
 * checked before this is called. */
#ifndef ALDREC_HTTPD_H
#define ALDREC_HTTPD_H

#include <stddef.h>

typedef struct httpd httpd_t;

/* Listens on host:port and starts the server thread. Returns NULL with the
 * reason in err (address in use, bad address, out of memory). */
httpd_t *httpd_start(const char *host, int port, char *err, size_t errlen);

/* The port actually bound. */
int httpd_port(const httpd_t *h);

/* Replaces the answers of /metrics and /health (copied); health_status is
 * the HTTP status of /health. Thread-safe. Returns 0, or -1 with errno
 * ENOMEM (the previous answers stay). */
int httpd_publish(httpd_t *h, const char *metrics, size_t mlen, const char *health,
                  size_t hlen, int health_status);

/* Requests answered so far (all paths). Thread-safe. */
unsigned long httpd_requests(httpd_t *h);

/* Stops the thread (waits for requests in flight), closes the socket,
 * frees h. NULL is fine. */
void httpd_stop(httpd_t *h);

#endif
