/* pcache.c — the parameter metadata cache: L1 map swap, load order,
 * the refresher thread (LISTEN/NOTIFY + periodic bulk refresh), L2 and
 * snapshot writes, counters; see pcache.h. */
#include "cache/pcache.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "cache/l2redis.h"
#include "cache/pmapdb.h"
#include "common/log.h"
#include "common/pgconn.h"
#include "cache/snapshot.h"
#include "common/clock.h"
#include "common/backoff.h"

#define LISTEN_CHANNEL "aldrec_metadata"
#define LIVE_TTL_MS 3000          /* the live key outlives two missed renewals */
#define LIVE_RENEW_MS 1000
#define REQUEST_GAP_MS 1000       /* requested refreshes: at most one per second */
#define RECONNECT_MIN_MS 500
#define RECONNECT_MAX_MS 5000

struct pcache {
    /* options (strings owned) */
    char *conninfo, *listen_conninfo, *machine, *app_name, *redis_host, *redis_password_file,
         *snapshot_path;
    int pg_timeout_ms, redis_port, redis_db, redis_timeout_ms;
    atomic_int ttl_s, refresh_s;  /* pcache_set_ttl() changes them at run time */
    bool write_snapshot;
    pcache_clock_fn clock;
    void *clock_arg;
    pcache_change_fn on_change;
    void *change_arg;

    pthread_mutex_t lock;         /* guards everything below up to the atomics */
    pmap_t *map;                  /* L1: the current map */
    pcache_source_t source;
    bool loaded_from_pg;          /* by this process (pcache_fetch's reload rule) */
    pmap_t *pending;              /* changed map waiting for pcache_take_change */
    int64_t saved_version;        /* version last written to the snapshot; -1 none */
    pcache_stats_t st;            /* counters other than the atomics */

    atomic_ullong hits, misses, stale;
    atomic_bool refresh_wanted;
    atomic_bool stopping;

    /* refresher */
    pthread_t thread;
    atomic_bool running;          /* read by lookups on any thread */
    int req_fd;                   /* eventfd: refresh requested */
    int stop_fd;                  /* eventfd: stop (also aborts network waits) */
    int change_fd;                /* eventfd: a changed map is pending */
    l2redis_t *l2;                /* NULL: no L2. Caller's thread before start, refresher's after */
    complain_t pg_down, redis_down;
};

static int64_t now_us(const pcache_t *c)
{
    if (c->clock)
        return c->clock(c->clock_arg);
    return clock_real_us();
}

const char *pcache_source_name(pcache_source_t s)
{
    switch (s) {
    case PCACHE_SRC_NONE:
        return "none";
    case PCACHE_SRC_POSTGRES:
        return "PostgreSQL";
    case PCACHE_SRC_REDIS:
        return "Redis";
    case PCACHE_SRC_SNAPSHOT:
        return "snapshot";
    }
    return "?";
}

void pcache_opts_from_config(pcache_opts_t *o, const aldrec_config_t *cfg)
{
    *o = (pcache_opts_t){
        .conninfo = cfg->conninfo,
        .listen_conninfo = cfg->listen_conninfo,
        .machine = cfg->machine,
        .pg_timeout_ms = cfg->connect_timeout_s * 1000,
        .ttl_s = cfg->cache_ttl_s,
        .refresh_s = cfg->cache_refresh_s,
        .redis_host = cfg->redis_host,
        .redis_port = cfg->redis_port,
        .redis_db = cfg->redis_db,
        .redis_password_file = cfg->redis_password_file,
        .redis_timeout_ms = cfg->redis_timeout_ms,
        .snapshot_path = cfg->snapshot_path,
    };
}

static char *dup_or_empty(const char *s)
{
    return strdup(s ? s : "");
}

pcache_t *pcache_new(const pcache_opts_t *o)
{
    if (!o->conninfo || !o->machine || !o->machine[0]) {
        errno = EINVAL;
        return NULL;
    }
    pcache_t *c = calloc(1, sizeof *c);
    if (!c) {
        errno = ENOMEM;
        return NULL;
    }
    c->req_fd = c->stop_fd = c->change_fd = -1;
    pthread_mutex_init(&c->lock, NULL);
    c->conninfo = dup_or_empty(o->conninfo);
    c->listen_conninfo = dup_or_empty(o->listen_conninfo && o->listen_conninfo[0]
                                      ? o->listen_conninfo : o->conninfo);
    c->machine = dup_or_empty(o->machine);
    c->app_name = dup_or_empty(o->app_name && o->app_name[0] ? o->app_name : "aldrec-cache");
    c->redis_host = dup_or_empty(o->redis_host && o->redis_host[0] ? o->redis_host : "127.0.0.1");
    c->redis_password_file = dup_or_empty(o->redis_password_file);
    c->snapshot_path = dup_or_empty(o->snapshot_path);
    c->pg_timeout_ms = o->pg_timeout_ms > 0 ? o->pg_timeout_ms : 5000;
    c->ttl_s = o->ttl_s > 0 ? o->ttl_s : 300;
    c->refresh_s = o->refresh_s > 0 ? o->refresh_s : 60;
    c->redis_port = o->redis_port;
    c->redis_db = o->redis_db;
    c->redis_timeout_ms = o->redis_timeout_ms > 0 ? o->redis_timeout_ms : 250;
    c->write_snapshot = o->write_snapshot;
    c->clock = o->clock;
    c->clock_arg = o->clock_arg;
    c->on_change = o->on_change;
    c->change_arg = o->change_arg;
    c->saved_version = -1;
    c->st.refresh_ms_min = -1;
    c->req_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    c->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    c->change_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!c->conninfo || !c->listen_conninfo || !c->machine || !c->app_name ||
        !c->redis_host || !c->redis_password_file || !c->snapshot_path ||
        c->req_fd < 0 || c->stop_fd < 0 || c->change_fd < 0)
        goto fail;
    if (c->redis_port > 0) {
        l2redis_opts_t lo = {
            .host = c->redis_host, .port = c->redis_port, .db = c->redis_db,
            .password_file = c->redis_password_file, .timeout_ms = c->redis_timeout_ms,
        };
        if (!(c->l2 = l2redis_new(&lo)))
            goto fail;
    }
    return c;
fail:
    pcache_free(c);
    errno = ENOMEM;
    return NULL;
}

static void stop_refresher(pcache_t *c);

void pcache_free(pcache_t *c)
{
    if (!c)
        return;
    stop_refresher(c);
    l2redis_free(c->l2);
    pmap_free(c->map);
    pmap_free(c->pending);
    if (c->req_fd >= 0)
        close(c->req_fd);
    if (c->stop_fd >= 0)
        close(c->stop_fd);
    if (c->change_fd >= 0)
        close(c->change_fd);
    pthread_mutex_destroy(&c->lock);
    free(c->conninfo);
    free(c->listen_conninfo);
    free(c->machine);
    free(c->app_name);
    free(c->redis_host);
    free(c->redis_password_file);
    free(c->snapshot_path);
    free(c);
}

/* ---- L1 ----------------------------------------------------------------- */

static void signal_fd(int fd)
{
    uint64_t one = 1;
    ssize_t w = write(fd, &one, sizeof one);
    (void)w;   /* a full counter is still readable: the wake-up is not lost */
}

static void drain_fd(int fd)
{
    uint64_t v;
    ssize_t r = read(fd, &v, sizeof v);
    (void)r;
}

void pcache_set_ttl(pcache_t *c, int ttl_s, int refresh_s)
{
    if (ttl_s > 0)
        atomic_store(&c->ttl_s, ttl_s);
    if (refresh_s > 0)
        atomic_store(&c->refresh_s, refresh_s);
}

void pcache_request_refresh(pcache_t *c)
{
    if (!atomic_exchange(&c->refresh_wanted, true) && c->running)
        signal_fd(c->req_fd);
}

static bool is_change(const pmap_t *old, const pmap_t *m)
{
    return !old || pmap_version(old) != pmap_version(m) ||
           pmap_machine_id(old) != pmap_machine_id(m) || pmap_count(old) != pmap_count(m);
}

/* Makes m (our reference) the current map. Returns true when that is a
 * change (handed to on_change and the change fd). */
static bool install(pcache_t *c, pmap_t *m, pcache_source_t src)
{
    pthread_mutex_lock(&c->lock);
    pmap_t *old = c->map;
    /* The refresher's first map (when start-up found none) is a change
     * too: the daemon is waiting for it. */
    bool changed = old ? is_change(old, m) : atomic_load(&c->running);
    c->map = m;
    c->source = src;
    if (src == PCACHE_SRC_POSTGRES)
        c->loaded_from_pg = true;
    if (changed) {
        c->st.changes++;
        pmap_free(c->pending);
        c->pending = pmap_ref(m);
    }
    pthread_mutex_unlock(&c->lock);
    pmap_free(old);
    if (changed) {
        signal_fd(c->change_fd);
        if (c->on_change)
            c->on_change(c->change_arg, pmap_ref(m));
    }
    return changed;
}

pmap_t *pcache_map(pcache_t *c)
{
    pthread_mutex_lock(&c->lock);
    pmap_t *m = c->map ? pmap_ref(c->map) : NULL;
    pthread_mutex_unlock(&c->lock);
    return m;
}

static pcache_result_t lookup(pcache_t *c, const char *qualified, int32_t id,
                              param_meta_t *out)
{
    int64_t now = now_us(c);
    bool found = false, stale = false;

    pthread_mutex_lock(&c->lock);
    if (c->map) {
        const param_meta_t *p = qualified ? pmap_find(c->map, qualified)
                                          : pmap_find_id(c->map, id);
        if (p) {
            *out = *p;
            found = true;
            stale = now - pmap_loaded_at(c->map) > (int64_t)c->ttl_s * 1000000;
        }
    }
    pthread_mutex_unlock(&c->lock);
    if (!found) {
        atomic_fetch_add_explicit(&c->misses, 1, memory_order_relaxed);
        pcache_request_refresh(c);
        return PCACHE_MISS;
    }
    if (stale) {
        atomic_fetch_add_explicit(&c->stale, 1, memory_order_relaxed);
        pcache_request_refresh(c);
        return PCACHE_STALE;
    }
    atomic_fetch_add_explicit(&c->hits, 1, memory_order_relaxed);
    return PCACHE_HIT;
}

pcache_result_t pcache_get(pcache_t *c, const char *qualified, param_meta_t *out)
{
    return lookup(c, qualified, 0, out);
}

pcache_result_t pcache_get_id(pcache_t *c, int32_t id, param_meta_t *out)
{
    return lookup(c, NULL, id, out);
}

int pcache_change_fd(const pcache_t *c)
{
    return c->change_fd;
}

pmap_t *pcache_take_change(pcache_t *c)
{
    drain_fd(c->change_fd);
    pthread_mutex_lock(&c->lock);
    pmap_t *m = c->pending;
    c->pending = NULL;
    pthread_mutex_unlock(&c->lock);
    return m;
}

/* ---- loading from each level ------------------------------------------- */

static void count_refresh(pcache_t *c, double ms, bool ok)
{
    pthread_mutex_lock(&c->lock);
    if (ok) {
        pcache_stats_t *s = &c->st;
        s->pg_loads++;
        s->refresh_ms_last = ms;
        if (s->refresh_ms_min < 0 || ms < s->refresh_ms_min)
            s->refresh_ms_min = ms;
        if (ms > s->refresh_ms_max)
            s->refresh_ms_max = ms;
        s->refresh_ms_avg += (ms - s->refresh_ms_avg) / (double)s->pg_loads;
    } else {
        c->st.pg_errors++;
    }
    pthread_mutex_unlock(&c->lock);
}

static void count(pcache_t *c, uint64_t *field)
{
    pthread_mutex_lock(&c->lock);
    (*field)++;
    pthread_mutex_unlock(&c->lock);
}

/* Records the outcome of a Redis command: the degraded mode "no L2" is
 * logged when it starts and when it ends. */
static void redis_outcome(pcache_t *c, bool ok, const char *err)
{
    pthread_mutex_lock(&c->lock);
    c->st.redis_up = ok;
    if (!ok)
        c->st.l2_errors++;
    pthread_mutex_unlock(&c->lock);
    if (ok)
        log_release(&c->redis_down, LL_INFO, "Redis reachable again");
    else
        log_complain(&c->redis_down, LL_WARN, "%s: running on L1 + PostgreSQL", err);
}

/* One bulk load over conn. Returns the map, or NULL with err and errno
 * (ENOENT: unknown machine; ETIMEDOUT/ECANCELED/EIO: the connection is no
 * longer usable; EPROTO: the server answered with an error). */
static pmap_t *pg_bulk_load(pcache_t *c, PGconn *conn, int wake_fd, char *err, size_t errlen)
{
    const char *params[1] = { c->machine };
    int64_t t0 = clock_mono_us();
    PGresult *res = pgconn_query(conn, pmapdb_sql(), 1, params, c->pg_timeout_ms, wake_fd,
                                 err, errlen);
    pmap_t *m = NULL;
    if (res && PQresultStatus(res) != PGRES_TUPLES_OK) {
        const char *msg = PQresultErrorMessage(res);
        snprintf(err, errlen, "loading the parameters of machine \"%s\": %.*s", c->machine,
                 (int)strcspn(msg, "\n"), msg);
        errno = EPROTO;
    } else if (res) {
        m = pmapdb_from_result(res, c->machine, now_us(c), err, errlen);
    }
    int e = errno;
    PQclear(res);
    count_refresh(c, (double)(clock_mono_us() - t0) / 1e3, m != NULL);
    errno = e;
    return m;
}

/* Connect, load, disconnect. */
static pmap_t *pg_load_once(pcache_t *c, char *err, size_t errlen)
{
    PGconn *conn = pgconn_connect(c->conninfo, c->app_name, c->pg_timeout_ms, -1, err, errlen);
    if (!conn) {
        count_refresh(c, 0, false);
        return NULL;
    }
    pmap_t *m = pg_bulk_load(c, conn, -1, err, errlen);
    int e = errno;
    PQfinish(conn);
    errno = e;
    return m;
}

/* Reads L2. Returns the decoded map (and sets *current when the live key
 * vouches for it), or NULL with err. */
static pmap_t *l2_read(pcache_t *c, bool *current, char *err, size_t errlen)
{
    uint8_t *blob = NULL;
    size_t len = 0;
    int64_t live = -1;

    *current = false;
    if (!c->l2) {
        snprintf(err, errlen, "no Redis configured");
        return NULL;
    }
    int rc = l2redis_get(c->l2, c->machine, &blob, &len, &live, err, errlen);
    redis_outcome(c, rc >= 0, err);
    if (rc < 0)
        return NULL;
    if (rc == 1) {
        snprintf(err, errlen, "no parameter map of machine \"%s\" in Redis", c->machine);
        count(c, &c->st.l2_misses);
        return NULL;
    }
    pmap_t *m = pmap_decode(blob, len, err, errlen);
    free(blob);
    if (!m) {
        log_msg(LL_WARN, "Redis key aldrec:%s:pmap: %s; ignoring it", c->machine, err);
        count(c, &c->st.l2_misses);
        return NULL;
    }
    if (strcmp(pmap_machine(m), c->machine) != 0) {
        snprintf(err, errlen, "Redis blob is for machine \"%s\"", pmap_machine(m));
        pmap_free(m);
        count(c, &c->st.l2_misses);
        return NULL;
    }
    *current = live >= 0 && live == pmap_version(m);
    return m;
}

static void l2_write(pcache_t *c, const pmap_t *m, bool publish)
{
    char err[256];
    size_t len;
    if (!c->l2)
        return;
    uint8_t *blob = pmap_encode(m, &len);
    if (!blob)
        return;
    /* The blob outlives ttl_s a little so that a refresher that is late
     * by a cycle does not leave a hole. */
    int rc = l2redis_put(c->l2, c->machine, blob, len, pmap_version(m),
                         c->ttl_s + c->refresh_s, publish, err, sizeof err);
    free(blob);
    redis_outcome(c, rc == 0, err);
    if (rc == 0)
        count(c, &c->st.l2_writes);
}

static void snapshot_write(pcache_t *c, const pmap_t *m)
{
    char err[512];
    size_t len;
    if (!c->write_snapshot || !c->snapshot_path[0] || c->saved_version == pmap_version(m))
        return;
    uint8_t *blob = pmap_encode(m, &len);
    if (!blob)
        return;
    int rc = snapshot_save(c->snapshot_path, c->machine, blob, len, pmap_version(m),
                           pmap_loaded_at(m), now_us(c), err, sizeof err);
    free(blob);
    if (rc < 0) {
        log_msg(LL_WARN, "%s; an offline start would use an older map", err);
        return;
    }
    c->saved_version = pmap_version(m);
    count(c, &c->st.snapshot_saves);
}

static pmap_t *snapshot_read(pcache_t *c, int64_t *saved_at, char *err, size_t errlen)
{
    uint8_t *blob = NULL;
    size_t len = 0;
    if (!c->snapshot_path[0]) {
        snprintf(err, errlen, "no snapshot configured");
        return NULL;
    }
    int rc = snapshot_load(c->snapshot_path, c->machine, &blob, &len, saved_at, err, errlen);
    if (rc == 1)
        snprintf(err, errlen, "no snapshot of machine \"%s\" in %s", c->machine,
                 c->snapshot_path);
    if (rc != 0)
        return NULL;
    pmap_t *m = pmap_decode(blob, len, err, errlen);
    free(blob);
    if (m)
        count(c, &c->st.snapshot_loads);
    return m;
}

static double age_s(const pcache_t *c, const pmap_t *m)
{
    return (double)(now_us(c) - pmap_loaded_at(m)) / 1e6;
}

pcache_source_t pcache_load(pcache_t *c, pcache_order_t order, char *err, size_t errlen)
{
    char pgerr[512] = "", l2err[512] = "", snerr[512] = "";
    pmap_t *l2map = NULL, *m;
    bool current = false;

    if (c->running) {
        snprintf(err, errlen, "the refresher is running");
        errno = EBUSY;
        return PCACHE_SRC_NONE;
    }
    if (order == PCACHE_L2_FIRST) {
        l2map = l2_read(c, &current, l2err, sizeof l2err);
        if (l2map && current) {
            count(c, &c->st.l2_hits);
            install(c, l2map, PCACHE_SRC_REDIS);
            log_msg(LL_DEBUG, "parameter map of machine %s: %zu parameters, version %lld,"
                    " from Redis (current)", c->machine, pmap_count(l2map),
                    (long long)pmap_version(l2map));
            return PCACHE_SRC_REDIS;
        }
        if (l2map)
            count(c, &c->st.l2_misses);   /* present but nobody vouches for it */
    }
    if ((m = pg_load_once(c, pgerr, sizeof pgerr)) != NULL) {
        pmap_free(l2map);
        log_release(&c->pg_down, LL_INFO, "PostgreSQL reachable again");
        install(c, m, PCACHE_SRC_POSTGRES);
        log_msg(order == PCACHE_PG_FIRST ? LL_INFO : LL_DEBUG,
                "parameter map of machine %s: %zu parameters, version %lld, from PostgreSQL",
                c->machine, pmap_count(m), (long long)pmap_version(m));
        l2_write(c, m, order == PCACHE_PG_FIRST);
        snapshot_write(c, m);
        return PCACHE_SRC_POSTGRES;
    }
    if (errno == ENOENT) {
        pmap_free(l2map);
        snprintf(err, errlen, "%s", pgerr);
        errno = ENOENT;
        return PCACHE_SRC_NONE;
    }
    log_complain(&c->pg_down, LL_WARN, "PostgreSQL unreachable (%s): serving cached"
                 " parameter metadata", pgerr);
    if (!l2map && order == PCACHE_PG_FIRST)
        l2map = l2_read(c, &current, l2err, sizeof l2err);
    if (l2map) {
        count(c, &c->st.l2_hits);
        install(c, l2map, PCACHE_SRC_REDIS);
        log_msg(LL_WARN, "parameter map of machine %s: %zu parameters, version %lld, from"
                " Redis%s (read from PostgreSQL %.0f s ago)", c->machine, pmap_count(l2map),
                (long long)pmap_version(l2map), current ? "" : ", possibly stale",
                age_s(c, l2map));
        return PCACHE_SRC_REDIS;
    }
    int64_t saved_at = 0;
    if ((m = snapshot_read(c, &saved_at, snerr, sizeof snerr)) != NULL) {
        install(c, m, PCACHE_SRC_SNAPSHOT);
        log_msg(LL_WARN, "PostgreSQL and Redis unreachable: parameter map of machine %s from"
                " the snapshot %s (%zu parameters, version %lld, saved %.0f s ago)",
                c->machine, c->snapshot_path, pmap_count(m), (long long)pmap_version(m),
                (double)(now_us(c) - saved_at) / 1e6);
        return PCACHE_SRC_SNAPSHOT;
    }
    snprintf(err, errlen, "no parameter map for machine \"%s\": %s; %s; %s", c->machine,
             pgerr, l2err[0] ? l2err : "Redis not tried", snerr);
    errno = EAGAIN;
    return PCACHE_SRC_NONE;
}

pcache_result_t pcache_fetch(pcache_t *c, const char *qualified, param_meta_t *out,
                             char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    pthread_mutex_lock(&c->lock);
    bool loaded = c->map != NULL;
    pthread_mutex_unlock(&c->lock);
    if (!loaded && !c->running &&
        pcache_load(c, PCACHE_L2_FIRST, err, errlen) == PCACHE_SRC_NONE)
        return PCACHE_MISS;
    pcache_result_t r = pcache_get(c, qualified, out);
    if (r == PCACHE_HIT || c->running || c->loaded_from_pg)
        return r;
    char pgerr[512];
    pmap_t *m = pg_load_once(c, pgerr, sizeof pgerr);
    if (!m) {
        log_msg(LL_DEBUG, "reloading after a %s lookup: %s",
                r == PCACHE_MISS ? "missed" : "stale", pgerr);
        return r;
    }
    install(c, m, PCACHE_SRC_POSTGRES);
    l2_write(c, m, false);
    return pcache_get(c, qualified, out);
}

/* ---- refresher ---------------------------------------------------------- */

/* Connects the refresher's own connection and LISTENs. A LISTEN binds the
 * session to one server connection (pgbouncer: a session-mode pool), hence
 * a conninfo of its own. */
static PGconn *listen_connect(pcache_t *c, char *err, size_t errlen)
{
    PGconn *conn = pgconn_connect(c->listen_conninfo, c->app_name, c->pg_timeout_ms,
                                  c->stop_fd, err, errlen);
    if (!conn)
        return NULL;
    PGresult *res = pgconn_query(conn, "LISTEN " LISTEN_CHANNEL, 0, NULL, c->pg_timeout_ms,
                                 c->stop_fd, err, errlen);
    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
        if (res)
            snprintf(err, errlen, "LISTEN: %.*s", (int)strcspn(PQresultErrorMessage(res), "\n"),
                     PQresultErrorMessage(res));
        PQclear(res);
        PQfinish(conn);
        return NULL;
    }
    PQclear(res);
    return conn;
}

/* Consumes input and pending notifications. Returns the number of
 * notifications for our machine, or -1 when the connection broke. */
static int take_notifications(pcache_t *c, PGconn *conn)
{
    int mine = 0;
    char id[16];
    pthread_mutex_lock(&c->lock);
    snprintf(id, sizeof id, "%d", c->map ? pmap_machine_id(c->map) : -1);
    bool know_id = c->map != NULL;
    pthread_mutex_unlock(&c->lock);
    if (!PQconsumeInput(conn))
        return -1;
    PGnotify *n;
    while ((n = PQnotifies(conn)) != NULL) {
        /* Without a map we do not know our id yet: any change will do. */
        if (!know_id || strcmp(n->extra, id) == 0)
            mine++;
        PQfreemem(n);
    }
    if (mine) {
        pthread_mutex_lock(&c->lock);
        c->st.notifications += (uint64_t)mine;
        pthread_mutex_unlock(&c->lock);
    }
    return mine;
}

/* A bulk refresh on the listening connection. Returns 0 (done or the
 * server answered with an error), -1 when the connection must be dropped. */
static int refresh(pcache_t *c, PGconn *conn)
{
    char err[512];
    pmap_t *m = pg_bulk_load(c, conn, c->stop_fd, err, sizeof err);
    if (!m) {
        if (errno == ETIMEDOUT || errno == ECANCELED || errno == EIO) {
            if (!atomic_load(&c->stopping))
                log_complain(&c->pg_down, LL_WARN, "PostgreSQL unreachable (%s): serving"
                             " the cached parameter map", err);
            return -1;
        }
        log_msg(LL_WARN, "parameter refresh failed: %s; keeping the current map", err);
        return 0;
    }
    log_release(&c->pg_down, LL_INFO, "PostgreSQL reachable again: parameter map refreshed"
                " (version %lld)", (long long)pmap_version(m));
    pmap_ref(m);   /* keep one for L2/snapshot below; install takes the other */
    pcache_source_t prev;
    pthread_mutex_lock(&c->lock);
    prev = c->source;
    pthread_mutex_unlock(&c->lock);
    bool changed = install(c, m, PCACHE_SRC_POSTGRES);
    if (changed)
        log_msg(LL_INFO, "parameter map of machine %s changed: version %lld, %zu parameters",
                c->machine, (long long)pmap_version(m), pmap_count(m));
    else if (prev != PCACHE_SRC_POSTGRES)
        log_msg(LL_INFO, "parameter map of machine %s confirmed by PostgreSQL (version %lld)",
                c->machine, (long long)pmap_version(m));
    l2_write(c, m, changed);
    snapshot_write(c, m);
    pmap_free(m);
    return 0;
}

static void set_live(pcache_t *c, bool listening)
{
    char err[256];
    if (!c->l2)
        return;
    int rc;
    bool was_down = c->redis_down.active;
    pmap_t *m = NULL;
    if (listening) {
        pthread_mutex_lock(&c->lock);
        if (c->map && c->source == PCACHE_SRC_POSTGRES)
            m = pmap_ref(c->map);
        pthread_mutex_unlock(&c->lock);
        if (!m)
            return;
        /* Back after an outage (a restarted Redis may be empty): the blob
         * first, then the key that vouches for it. */
        if (was_down)
            l2_write(c, m, false);
        rc = l2redis_set_live(c->l2, c->machine, pmap_version(m), LIVE_TTL_MS, err, sizeof err);
        pmap_free(m);
    } else {
        rc = l2redis_clear_live(c->l2, c->machine, err, sizeof err);
    }
    redis_outcome(c, rc == 0, err);
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* The refresher's link: listening, and whether its last attempt to reach
 * PostgreSQL failed (before the first attempt ends it is neither). */
static void set_listening(pcache_t *c, bool on, bool unreachable)
{
    pthread_mutex_lock(&c->lock);
    c->st.listening = on;
    c->st.pg_unreachable = unreachable;
    pthread_mutex_unlock(&c->lock);
}

static void *refresher_main(void *arg)
{
    pcache_t *c = arg;
    PGconn *conn = NULL;
    char err[512];
    int64_t now = clock_mono_ms();
    int64_t next_connect = now, next_refresh = now + (int64_t)c->refresh_s * 1000;
    int64_t next_live = now, last_requested = now - REQUEST_GAP_MS;
    backoff_t backoff;
    bool need_refresh = false, notified = false;

    backoff_init(&backoff, RECONNECT_MIN_MS, RECONNECT_MAX_MS, BACKOFF_JITTER_NONE, 0);
    while (!atomic_load(&c->stopping)) {
        now = clock_mono_ms();
        if (!conn && now >= next_connect) {
            conn = listen_connect(c, err, sizeof err);
            if (!conn) {
                if (atomic_load(&c->stopping))
                    break;
                log_complain(&c->pg_down, LL_WARN, "PostgreSQL unreachable (%s): serving the"
                             " cached parameter map", err);
                set_listening(c, false, true);
                count_refresh(c, 0, false);
                next_connect = clock_mono_ms() + backoff_next(&backoff);
            } else {
                backoff_reset(&backoff);
                need_refresh = true;      /* changes may have been missed meanwhile */
                set_listening(c, true, false);
            }
        }
        if (conn) {
            int n = take_notifications(c, conn);
            if (n < 0) {
                log_complain(&c->pg_down, LL_WARN, "PostgreSQL connection lost (%s): serving"
                             " the cached parameter map", pgconn_errmsg(conn, err, sizeof err));
                PQfinish(conn);
                conn = NULL;
                set_listening(c, false, true);
                next_connect = clock_mono_ms();
                continue;
            }
            if (n > 0)
                need_refresh = notified = true;
        }
        now = clock_mono_ms();
        if (atomic_load(&c->refresh_wanted) && now - last_requested >= REQUEST_GAP_MS) {
            atomic_store(&c->refresh_wanted, false);
            last_requested = now;
            need_refresh = true;
        }
        if (now >= next_refresh)
            need_refresh = true;
        if (need_refresh && conn) {
            /* Stop vouching for L2 at once: tools go to PostgreSQL until the
             * new map is in Redis. */
            if (notified)
                set_live(c, false);
            int rc = refresh(c, conn);
            need_refresh = notified = false;
            now = clock_mono_ms();
            next_refresh = now + (int64_t)c->refresh_s * 1000;
            if (rc < 0) {
                PQfinish(conn);
                conn = NULL;
                set_listening(c, false, true);
                next_connect = now + backoff.step_ms;   /* this step again */
            } else {
                next_live = now;   /* vouch for the new version right away */
            }
        } else if (need_refresh && now >= next_refresh) {
            next_refresh = now + (int64_t)c->refresh_s * 1000;   /* retried on connect */
        }
        if (conn && now >= next_live) {
            set_live(c, true);
            next_live = clock_mono_ms() + LIVE_RENEW_MS;
        }

        now = clock_mono_ms();
        int64_t wake = next_refresh;
        if (conn)
            wake = min64(wake, next_live);
        else
            wake = min64(wake, next_connect);
        if (atomic_load(&c->refresh_wanted))
            wake = min64(wake, last_requested + REQUEST_GAP_MS);
        struct pollfd pfd[3] = {
            { .fd = c->stop_fd, .events = POLLIN },
            { .fd = c->req_fd, .events = POLLIN },
            { .fd = conn ? PQsocket(conn) : -1, .events = POLLIN },
        };
        int64_t wait = wake - now;
        if (wait < 0)
            wait = 0;
        if (poll(pfd, 3, (int)min64(wait, 60000)) > 0 && (pfd[1].revents & POLLIN))
            drain_fd(c->req_fd);
    }
    if (conn)
        PQfinish(conn);
    set_listening(c, false, false);
    set_live(c, false);   /* a stopped daemon vouches for nothing */
    return NULL;
}

int pcache_start(pcache_t *c, char *err, size_t errlen)
{
    if (c->running) {
        snprintf(err, errlen, "the refresher is already running");
        return -1;
    }
    atomic_store(&c->stopping, false);
    c->running = true;   /* before the thread can install its first map */
    int rc = pthread_create(&c->thread, NULL, refresher_main, c);
    if (rc != 0) {
        c->running = false;
        snprintf(err, errlen, "starting the cache refresher: %s", strerror(rc));
        return -1;
    }
    return 0;
}

static void stop_refresher(pcache_t *c)
{
    if (!c->running)
        return;
    atomic_store(&c->stopping, true);
    signal_fd(c->stop_fd);
    pthread_join(c->thread, NULL);
    c->running = false;
    drain_fd(c->stop_fd);
}

/* ---- counters ----------------------------------------------------------- */

void pcache_get_stats(pcache_t *c, pcache_stats_t *out)
{
    int64_t now = now_us(c);
    pthread_mutex_lock(&c->lock);
    *out = c->st;
    out->source = c->source;
    out->version = c->map ? pmap_version(c->map) : -1;
    out->params = c->map ? pmap_count(c->map) : 0;
    out->age_s = c->map ? (double)(now - pmap_loaded_at(c->map)) / 1e6 : 0;
    pthread_mutex_unlock(&c->lock);
    if (out->refresh_ms_min < 0)
        out->refresh_ms_min = 0;
    out->l1_hits = atomic_load_explicit(&c->hits, memory_order_relaxed);
    out->l1_misses = atomic_load_explicit(&c->misses, memory_order_relaxed);
    out->stale_serves = atomic_load_explicit(&c->stale, memory_order_relaxed);
    out->refresher_running = c->running;
    out->redis_configured = c->l2 != NULL;
    out->ttl_s = c->ttl_s;
}

/* Appends "; " (unless first) and the formatted text to buf[*n..cap). */
static void add_mode(char *buf, size_t cap, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void add_mode(char *buf, size_t cap, size_t *n, const char *fmt, ...)
{
    va_list ap;
    if (*n + 2 >= cap)
        return;
    if (*n) {
        memcpy(buf + *n, "; ", 3);
        *n += 2;
    }
    va_start(ap, fmt);
    int w = vsnprintf(buf + *n, cap - *n, fmt, ap);
    va_end(ap);
    if (w > 0)
        *n += (size_t)w < cap - *n ? (size_t)w : cap - *n - 1;
}

/* "ok", or "degraded: " and the degraded modes in force, into buf. */
static void format_state(const pcache_stats_t *s, char *buf, size_t cap)
{
    char modes[400] = "";
    size_t n = 0;
    if (s->source == PCACHE_SRC_NONE)
        add_mode(modes, sizeof modes, &n, "no parameter map");
    if (s->refresher_running && s->pg_unreachable)
        add_mode(modes, sizeof modes, &n, "PostgreSQL unreachable, serving the cached map");
    if (s->redis_configured && !s->redis_up)
        add_mode(modes, sizeof modes, &n, "Redis unreachable, running on L1 + PostgreSQL");
    if (s->source == PCACHE_SRC_REDIS || s->source == PCACHE_SRC_SNAPSHOT)
        add_mode(modes, sizeof modes, &n, "map from %s",
                 s->source == PCACHE_SRC_REDIS ? "Redis" : "the snapshot");
    if (s->source != PCACHE_SRC_NONE && s->age_s > s->ttl_s)
        add_mode(modes, sizeof modes, &n, "map stale (read %.0f s ago, ttl %d s)", s->age_s,
                 s->ttl_s);
    snprintf(buf, cap, "%s%s", n ? "degraded: " : "ok", modes);
}

size_t pcache_format_stats(const pcache_stats_t *s, char *buf, size_t cap)
{
    size_t len = cap ? strlen(buf) : 0;
    if (len >= cap)
        return len;
    char state[512];
    format_state(s, state, sizeof state);
    int n = snprintf(buf + len, cap - len,
        "cache_state:        %s\n"
        "cache_map:          version %lld, %zu parameters, from %s, read %.1f s ago\n"
        "cache_links:        PostgreSQL %s, Redis %s (last contact)\n"
        "cache_l1:           %llu hits, %llu misses, %llu stale serves\n"
        "cache_l2:           %llu hits, %llu misses, %llu writes, %llu errors\n"
        "cache_refresh:      %llu done, %llu failed; ms last %.2f, min %.2f, avg %.2f, max %.2f\n"
        "cache_changes:      %llu notifications, %llu maps swapped in\n"
        "cache_snapshot:     %llu saves, %llu loads\n",
        state, (long long)s->version, s->params, pcache_source_name(s->source), s->age_s,
        s->listening ? "listening"
                     : !s->refresher_running ? "not watched"
                     : s->pg_unreachable ? "down" : "connecting",
        s->redis_up ? "up" : "down",
        (unsigned long long)s->l1_hits, (unsigned long long)s->l1_misses,
        (unsigned long long)s->stale_serves, (unsigned long long)s->l2_hits,
        (unsigned long long)s->l2_misses, (unsigned long long)s->l2_writes,
        (unsigned long long)s->l2_errors, (unsigned long long)s->pg_loads,
        (unsigned long long)s->pg_errors, s->refresh_ms_last, s->refresh_ms_min,
        s->refresh_ms_avg, s->refresh_ms_max, (unsigned long long)s->notifications,
        (unsigned long long)s->changes, (unsigned long long)s->snapshot_saves,
        (unsigned long long)s->snapshot_loads);
    if (n < 0)
        return len;
    return (size_t)n >= cap - len ? cap - 1 : len + (size_t)n;
}
