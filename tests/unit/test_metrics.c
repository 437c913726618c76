/* test_metrics.c — the Prometheus exposition (written, then parsed back by
 * a strict reader) and the HTTP endpoint over real sockets. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "expo.h"
#include "ops/httpd.h"
#include "ops/metrics.h"
#include "t.h"

static expo_t ex;

static void test_exposition(void)
{
    metrics_t *m = metrics_new();
    T_CHECK(m != NULL);
    metrics_family(m, "t_requests_total", METRIC_COUNTER, "Requests.\nSecond line \\ here.");
    metric_label_t l[2] = { { "device", "10.0.0.7:502 unit 1" }, { "kind", "timeout" } };
    metrics_sample(m, "t_requests_total", l, 2, 42);
    metric_label_t weird = { "device", "a\"b\\c\nd" };
    metrics_sample(m, "t_requests_total", &weird, 1, 1e15 + 1);
    metrics_family(m, "t_gauge", METRIC_GAUGE, "A gauge.");
    metrics_sample(m, "t_gauge", NULL, 0, 0.25);
    metrics_sample(m, "t_gauge", &l[1], 1, NAN);
    metrics_sample(m, "t_gauge", &l[0], 1, -INFINITY);
    hist_t h = { 0 };
    for (int i = 1; i <= 1000; i++)
        hist_add(&h, (uint64_t)i * 100);      /* 0.1 ms .. 100 ms in µs */
    metrics_family(m, "t_latency_seconds", METRIC_SUMMARY, "Latency.");
    metrics_summary(m, "t_latency_seconds", &l[0], 1, &h, 1e-6);
    hist_t empty = { 0 };
    metrics_summary(m, "t_latency_seconds", &l[1], 1, &empty, 1e-6);
    T_CHECK(!metrics_failed(m));

    size_t len;
    const char *text = metrics_text(m, &len);
    T_EQ_INT(len, strlen(text));
    T_CHECK(strstr(text, "# HELP t_requests_total Requests.\\nSecond line \\\\ here.\n"
                         "# TYPE t_requests_total counter\n"
                         "t_requests_total{device=\"10.0.0.7:502 unit 1\",kind=\"timeout\"} 42\n") == text);
    T_CHECK(strstr(text, "t_requests_total{device=\"a\\\"b\\\\c\\nd\"} 1000000000000001\n") != NULL);
    T_CHECK(strstr(text, "t_gauge 0.25\n") != NULL);
    T_CHECK(strstr(text, "t_gauge{kind=\"timeout\"} NaN\n") != NULL);
    T_CHECK(strstr(text, "-Inf\n") != NULL);

    int rc = expo_parse(&ex, text);
    T_EQ_INT(rc, 0);
    if (rc)
        printf("# %s\n", ex.error);
    T_EQ_INT(ex.n, 5 + 5 + 5);
    const char *k1[] = { "device=10.0.0.7:502 unit 1", "kind=timeout" };
    T_EQ_DBL(expo_get(&ex, "t_requests_total", 2, k1), 42, 0);
    const char *k2[] = { "device=a\"b\\c\nd" };
    T_EQ_DBL(expo_get(&ex, "t_requests_total", 1, k2), 1e15 + 1, 0);
    const char *q50[] = { "device=10.0.0.7:502 unit 1", "quantile=0.5" };
    const char *q99[] = { "device=10.0.0.7:502 unit 1", "quantile=0.99" };
    T_EQ_DBL(expo_get(&ex, "t_latency_seconds", 2, q50), 0.050, 0.050 * 0.04);
    T_EQ_DBL(expo_get(&ex, "t_latency_seconds", 2, q99), 0.099, 0.099 * 0.04);
    const char *dev[] = { "device=10.0.0.7:502 unit 1" };
    T_EQ_DBL(expo_get(&ex, "t_latency_seconds_count", 1, dev), 1000, 0);
    T_EQ_DBL(expo_get(&ex, "t_latency_seconds_sum", 1, dev), 50.05, 1e-9);
    const char *eq[] = { "kind=timeout", "quantile=0.95" };
    T_CHECK(isnan(expo_get(&ex, "t_latency_seconds", 2, eq)));

    /* Bad names are refused, not written. */
    metrics_sample(m, "bad-name", NULL, 0, 1);
    T_CHECK(metrics_failed(m));
    T_CHECK(strstr(metrics_text(m, NULL), "bad-name") == NULL);
    metrics_free(m);

    /* The reader itself catches what is wrong. */
    T_EQ_INT(expo_parse(&ex, "x 1\n"), -1);                               /* no TYPE */
    T_EQ_INT(expo_parse(&ex, "# TYPE x gauge\nx{a=\"b} 1\n"), -1);        /* unterminated */
    T_EQ_INT(expo_parse(&ex, "# TYPE x gauge\nx{a=\"\\q\"} 1\n"), -1);    /* bad escape */
    T_EQ_INT(expo_parse(&ex, "# TYPE x gauge\nx 1x\n"), -1);              /* bad value */
    T_EQ_INT(expo_parse(&ex, "# TYPE x gauge\nx 1\n"), 0);

    char esc[16];
    T_EQ_INT(metrics_escape(esc, sizeof esc, "a\"b", false), 4);
    T_EQ_STR(esc, "a\\\"b");
    T_EQ_INT(metrics_escape(esc, sizeof esc, "a\"b", true), 3);
}

/* One HTTP/1.0 request over a fresh connection; the whole answer in buf. */
static int http_get(int family, int port, const char *method, const char *path, char *buf,
                    size_t cap)
{
    int fd = socket(family, SOCK_STREAM, 0);
    struct sockaddr_storage ss = { 0 };
    socklen_t len;
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *a;
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        a->sin6_addr = in6addr_loopback;
        len = sizeof *a;
    }
    if (fd < 0 || connect(fd, (struct sockaddr *)&ss, len) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    char req[256];
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.0\r\nHost: localhost\r\n\r\n", method, path);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    size_t got = 0;
    for (;;) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 5000) <= 0)
            break;
        ssize_t r = read(fd, buf + got, cap - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    buf[got] = '\0';
    close(fd);
    int status = 0;
    sscanf(buf, "HTTP/1.%*d %d", &status);
    return status;
}

static void test_http(void)
{
    char err[256], buf[65536];
    httpd_t *h = httpd_start("127.0.0.1", 0, err, sizeof err);
    T_CHECK(h != NULL);
    if (!h) {
        printf("# %s\n", err);
        return;
    }
    int port = httpd_port(h);
    T_CHECK(port > 0);
    T_EQ_INT(http_get(AF_INET, port, "GET", "/metrics", buf, sizeof buf), 503);
    T_CHECK(strstr(buf, "\r\n\r\nstarting\n") != NULL);
    static const char text[] = "# HELP x An x.\n# TYPE x gauge\nx 1\n";
    T_EQ_INT(httpd_publish(h, text, sizeof text - 1, "ok\n", 3, 200), 0);
    T_EQ_INT(http_get(AF_INET, port, "GET", "/metrics", buf, sizeof buf), 200);
    T_CHECK(strstr(buf, "Content-Type: text/plain; version=0.0.4") != NULL);
    const char *body = strstr(buf, "\r\n\r\n");
    T_CHECK(body && strcmp(body + 4, text) == 0);
    T_EQ_INT(http_get(AF_INET, port, "GET", "/health", buf, sizeof buf), 200);
    body = strstr(buf, "\r\n\r\n");
    T_CHECK(body && strcmp(body + 4, "ok\n") == 0);
    T_EQ_INT(httpd_publish(h, text, sizeof text - 1, "failing\n- failing: x\n", 21, 503), 0);
    T_EQ_INT(http_get(AF_INET, port, "GET", "/health", buf, sizeof buf), 503);
    T_CHECK(strstr(buf, "\r\n\r\nfailing\n- failing: x\n") != NULL);
    T_EQ_INT(http_get(AF_INET, port, "HEAD", "/metrics", buf, sizeof buf), 200);
    T_CHECK(strstr(buf, "# TYPE") == NULL);
    T_EQ_INT(http_get(AF_INET, port, "POST", "/metrics", buf, sizeof buf), 405);
    T_EQ_INT(http_get(AF_INET, port, "GET", "/nope", buf, sizeof buf), 404);
    T_EQ_INT(http_get(AF_INET, port, "GET", "/", buf, sizeof buf), 200);
    T_EQ_INT(httpd_requests(h), 8);   /* the eight requests above, each counted once */

    /* A big exposition goes through whole. */
    size_t big = 200000;
    char *large = malloc(big + 1);
    memset(large, 'a', big);
    large[big] = '\0';
    T_EQ_INT(httpd_publish(h, large, big, "ok\n", 3, 200), 0);
    char *rbuf = malloc(big + 4096);
    T_EQ_INT(http_get(AF_INET, port, "GET", "/metrics", rbuf, big + 4096), 200);
    body = strstr(rbuf, "\r\n\r\n");
    T_CHECK(body && strlen(body + 4) == big);
    free(rbuf);
    free(large);

    /* Only the address given: nothing answers on another loopback address. */
    char other[256];
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    inet_pton(AF_INET, "127.0.0.2", &a.sin_addr);
    T_CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) < 0);
    close(fd);
    (void)other;

    /* The same port again: refused with a reason. */
    httpd_t *h2 = httpd_start("127.0.0.1", port, err, sizeof err);
    T_CHECK(h2 == NULL);
    T_CHECK(strstr(err, "cannot listen on 127.0.0.1:") != NULL);
    httpd_stop(h2);
    httpd_stop(h);
    T_EQ_INT(http_get(AF_INET, port, "GET", "/metrics", buf, sizeof buf), -1);

    T_CHECK(httpd_start("example.com", 0, err, sizeof err) == NULL);
    T_CHECK(strstr(err, "not a numeric") != NULL);

    /* IPv6 loopback, when the machine has it. */
    h = httpd_start("::1", 0, err, sizeof err);
    if (h) {
        T_EQ_INT(httpd_publish(h, text, sizeof text - 1, "ok\n", 3, 200), 0);
        T_EQ_INT(http_get(AF_INET6, httpd_port(h), "GET", "/health", buf, sizeof buf), 200);
        httpd_stop(h);
    } else {
        printf("# no IPv6 loopback here: %s\n", err);
    }
    httpd_stop(NULL);
}

int main(void)
{
    test_exposition();
    test_http();
    return t_done("test_metrics");
}
