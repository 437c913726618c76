/* l2redis.c — Redis L2 of the metadata cache; see l2redis.h. */
#include "cache/l2redis.h"

#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/backoff.h"

#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 5000

struct l2redis {
    char *host;
    int port, db, timeout_ms;
    char *password_file;
    redisContext *ctx;
    bool up;
    int64_t retry_at_ms;      /* no connect attempt before this */
    backoff_t backoff;
};

l2redis_t *l2redis_new(const l2redis_opts_t *o)
{
    l2redis_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->host = strdup(o->host ? o->host : "127.0.0.1");
    r->password_file = strdup(o->password_file ? o->password_file : "");
    r->port = o->port;
    r->db = o->db;
    r->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 250;
    backoff_init(&r->backoff, BACKOFF_MIN_MS, BACKOFF_MAX_MS, BACKOFF_JITTER_NONE, 0);
    if (!r->host || !r->password_file) {
        l2redis_free(r);
        errno = ENOMEM;
        return NULL;
    }
    return r;
}

static void drop(l2redis_t *r)
{
    if (r->ctx)
        redisFree(r->ctx);
    r->ctx = NULL;
    r->up = false;
}

void l2redis_free(l2redis_t *r)
{
    if (!r)
        return;
    drop(r);
    free(r->host);
    free(r->password_file);
    free(r);
}

bool l2redis_up(const l2redis_t *r)
{
    return r->up;
}

/* A failure: drop the connection and back off. Returns -1. */
static int failed(l2redis_t *r, char *err, size_t errlen, const char *what, const char *why)
{
    snprintf(err, errlen, "Redis %s:%d: %s: %s", r->host, r->port, what, why);
    drop(r);
    r->retry_at_ms = clock_mono_ms() + backoff_next(&r->backoff);
    return -1;
}

/* Reads the first line of the password file into pw. Returns 0 or -1. */
static int read_password(const l2redis_t *r, char *pw, size_t cap, char *err, size_t errlen)
{
    int fd = open(r->password_file, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        snprintf(err, errlen, "redis_password_file %s: %s", r->password_file, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO) & ~S_IRGRP) {
        snprintf(err, errlen, "redis_password_file %s: permissions %03o are too open"
                 " (at most 0640)", r->password_file, (unsigned)(st.st_mode & 0777));
        close(fd);
        return -1;
    }
    ssize_t n = read(fd, pw, cap - 1);
    close(fd);
    if (n < 0) {
        snprintf(err, errlen, "redis_password_file %s: %s", r->password_file, strerror(errno));
        return -1;
    }
    pw[n] = '\0';
    pw[strcspn(pw, "\r\n")] = '\0';
    if (pw[0] == '\0') {
        snprintf(err, errlen, "redis_password_file %s is empty", r->password_file);
        return -1;
    }
    return 0;
}

/* Runs one command that must not fail (AUTH, SELECT). Returns 0 or -1. */
static int setup_command(l2redis_t *r, int argc, const char **argv, const char *what,
                         char *err, size_t errlen)
{
    redisReply *rep = redisCommandArgv(r->ctx, argc, argv, NULL);
    if (!rep)
        return failed(r, err, errlen, what, r->ctx->errstr);
    if (rep->type == REDIS_REPLY_ERROR) {
        char msg[128];
        snprintf(msg, sizeof msg, "%.100s", rep->str);
        freeReplyObject(rep);
        return failed(r, err, errlen, what, msg);
    }
    freeReplyObject(rep);
    return 0;
}

static int ensure(l2redis_t *r, char *err, size_t errlen)
{
    if (r->ctx)
        return 0;
    int64_t now = clock_mono_ms();
    if (now < r->retry_at_ms) {
        snprintf(err, errlen, "Redis %s:%d unavailable (next attempt in %lld ms)", r->host,
                 r->port, (long long)(r->retry_at_ms - now));
        return -1;
    }
    struct timeval tv = { .tv_sec = r->timeout_ms / 1000,
                          .tv_usec = (r->timeout_ms % 1000) * 1000 };
    r->ctx = redisConnectWithTimeout(r->host, r->port, tv);
    if (!r->ctx)
        return failed(r, err, errlen, "connect", "out of memory");
    if (r->ctx->err)
        return failed(r, err, errlen, "connect", r->ctx->errstr);
    if (redisSetTimeout(r->ctx, tv) != REDIS_OK)
        return failed(r, err, errlen, "setting the timeout", r->ctx->errstr);
    if (r->password_file[0]) {
        char pw[512];
        if (read_password(r, pw, sizeof pw, err, errlen) < 0) {
            char why[400];
            snprintf(why, sizeof why, "%s", err);
            return failed(r, err, errlen, "AUTH", why);
        }
        const char *argv[2] = { "AUTH", pw };
        int rc = setup_command(r, 2, argv, "AUTH", err, errlen);
        explicit_bzero(pw, sizeof pw);
        if (rc < 0)
            return -1;
    }
    if (r->db) {
        char db[16];
        snprintf(db, sizeof db, "%d", r->db);
        const char *argv[2] = { "SELECT", db };
        if (setup_command(r, 2, argv, "SELECT", err, errlen) < 0)
            return -1;
    }
    r->up = true;
    backoff_reset(&r->backoff);
    return 0;
}

static void key(char *dst, size_t cap, const char *machine, const char *suffix)
{
    snprintf(dst, cap, "aldrec:%s:%s", machine, suffix);
}

/* Reads n pipelined replies into reps[]. Returns 0, or -1 (connection
 * dropped, replies freed). */
static int get_replies(l2redis_t *r, redisReply **reps, int n, const char *what,
                       char *err, size_t errlen)
{
    for (int i = 0; i < n; i++) {
        void *rep = NULL;
        if (redisGetReply(r->ctx, &rep) != REDIS_OK) {
            for (int k = 0; k < i; k++)
                freeReplyObject(reps[k]);
            return failed(r, err, errlen, what, r->ctx->errstr);
        }
        reps[i] = rep;
    }
    for (int i = 0; i < n; i++) {
        if (reps[i]->type == REDIS_REPLY_ERROR) {
            char msg[128];
            snprintf(msg, sizeof msg, "%.100s", reps[i]->str);
            for (int k = 0; k < n; k++)
                freeReplyObject(reps[k]);
            /* The server answered: the link is fine, the command was not. */
            snprintf(err, errlen, "Redis %s:%d: %s: %s%s", r->host, r->port, what, msg,
                     strncmp(msg, "NOAUTH", 6) == 0 && !r->password_file[0]
                         ? " (it requires AUTH: set [cache] redis_password_file)" : "");
            return -1;
        }
    }
    return 0;
}

int l2redis_get(l2redis_t *r, const char *machine, uint8_t **blob, size_t *len,
                int64_t *live_version, char *err, size_t errlen)
{
    char kmap[128], klive[128];
    redisReply *rep[1];

    *blob = NULL;
    *len = 0;
    *live_version = -1;
    if (ensure(r, err, errlen) < 0)
        return -1;
    key(kmap, sizeof kmap, machine, "pmap");
    key(klive, sizeof klive, machine, "live");
    const char *argv[3] = { "MGET", kmap, klive };
    if (redisAppendCommandArgv(r->ctx, 3, argv, NULL) != REDIS_OK)
        return failed(r, err, errlen, "MGET", r->ctx->errstr);
    if (get_replies(r, rep, 1, "MGET", err, errlen) < 0)
        return -1;
    redisReply *a = rep[0];
    int rc = -1;
    if (a->type != REDIS_REPLY_ARRAY || a->elements != 2) {
        snprintf(err, errlen, "Redis %s:%d: MGET: unexpected reply", r->host, r->port);
        goto out;
    }
    if (a->element[1]->type == REDIS_REPLY_STRING) {
        char *end;
        long long v = strtoll(a->element[1]->str, &end, 10);
        if (end != a->element[1]->str && *end == '\0' && v >= 0)
            *live_version = v;
    }
    if (a->element[0]->type != REDIS_REPLY_STRING) {
        rc = 1;
        goto out;
    }
    *blob = malloc(a->element[0]->len ? a->element[0]->len : 1);
    if (!*blob) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    memcpy(*blob, a->element[0]->str, a->element[0]->len);
    *len = a->element[0]->len;
    rc = 0;
out:
    freeReplyObject(a);
    return rc;
}

int l2redis_put(l2redis_t *r, const char *machine, const uint8_t *blob, size_t len,
                int64_t version, int ttl_s, bool publish, char *err, size_t errlen)
{
    char kmap[128], ttl[16], ver[24];
    redisReply *rep[2];

    if (ensure(r, err, errlen) < 0)
        return -1;
    key(kmap, sizeof kmap, machine, "pmap");
    snprintf(ttl, sizeof ttl, "%d", ttl_s > 0 ? ttl_s : 1);
    snprintf(ver, sizeof ver, "%lld", (long long)version);
    const char *set[5] = { "SET", kmap, (const char *)blob, "EX", ttl };
    size_t setlen[5] = { 3, strlen(kmap), len, 2, strlen(ttl) };
    if (redisAppendCommandArgv(r->ctx, 5, set, setlen) != REDIS_OK)
        return failed(r, err, errlen, "SET", r->ctx->errstr);
    if (publish) {
        const char *pub[3] = { "PUBLISH", kmap, ver };
        if (redisAppendCommandArgv(r->ctx, 3, pub, NULL) != REDIS_OK)
            return failed(r, err, errlen, "PUBLISH", r->ctx->errstr);
    }
    int n = publish ? 2 : 1;
    if (get_replies(r, rep, n, "SET", err, errlen) < 0)
        return -1;
    for (int i = 0; i < n; i++)
        freeReplyObject(rep[i]);
    return 0;
}

/* Runs one command whose reply is only checked for errors. */
static int simple_command(l2redis_t *r, int argc, const char **argv, const char *what,
                          char *err, size_t errlen)
{
    redisReply *rep[1];
    if (redisAppendCommandArgv(r->ctx, argc, argv, NULL) != REDIS_OK)
        return failed(r, err, errlen, what, r->ctx->errstr);
    if (get_replies(r, rep, 1, what, err, errlen) < 0)
        return -1;
    freeReplyObject(rep[0]);
    return 0;
}

int l2redis_set_live(l2redis_t *r, const char *machine, int64_t version, int ttl_ms,
                     char *err, size_t errlen)
{
    char klive[128], ttl[16], ver[24];
    if (ensure(r, err, errlen) < 0)
        return -1;
    key(klive, sizeof klive, machine, "live");
    snprintf(ttl, sizeof ttl, "%d", ttl_ms > 0 ? ttl_ms : 1);
    snprintf(ver, sizeof ver, "%lld", (long long)version);
    const char *argv[5] = { "SET", klive, ver, "PX", ttl };
    return simple_command(r, 5, argv, "SET", err, errlen);
}

int l2redis_clear_live(l2redis_t *r, const char *machine, char *err, size_t errlen)
{
    char klive[128];
    if (ensure(r, err, errlen) < 0)
        return -1;
    key(klive, sizeof klive, machine, "live");
    const char *argv[2] = { "DEL", klive };
    return simple_command(r, 2, argv, "DEL", err, errlen);
}
