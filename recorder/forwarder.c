/* forwarder.c — writer thread: in-order, retrying, exactly-once delivery of
 * batches through pgsink. See forwarder.h. */
#include "forwarder.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define BACKOFF_MIN_MS 200
#define BACKOFF_MAX_MS 5000

struct qbatch {
    pgsink_batch_t b;
    uint8_t *data;
    struct qbatch *next;
};

struct forwarder {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;          /* queue changed or stop requested */
    struct qbatch *head, *tail;
    size_t max_batches;
    int stopping;                 /* 1: drain then exit; 2: exit now */
    int notify[2];                /* pipe: [0] for the poll loop */
    pgsink_t *sink;
    forwarder_stats_t st;
    complain_t db_down;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void abs_deadline(struct timespec *ts, int ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static void qbatch_free(struct qbatch *q)
{
    if (!q)
        return;
    free(q->data);
    free(q);
}

/* Called with the lock held: removes the head after it was handled. */
static void pop_head(forwarder_t *f)
{
    struct qbatch *q = f->head;
    f->head = q->next;
    if (!f->head)
        f->tail = NULL;
    f->st.queued_batches--;
    f->st.queued_rows -= q->b.rows;
    if (q->b.seq > f->st.last_done_seq)
        f->st.last_done_seq = q->b.seq;
    qbatch_free(q);
    pthread_cond_broadcast(&f->cond);   /* forwarder_stop() waits for this */
    char c = 1;
    ssize_t w = write(f->notify[1], &c, 1);   /* full pipe: already signalled */
    (void)w;
}

static void *forwarder_main(void *arg)
{
    forwarder_t *f = arg;
    int backoff = BACKOFF_MIN_MS;
    unsigned int seed = (unsigned int)time(NULL) ^ (unsigned int)getpid();

    pthread_mutex_lock(&f->lock);
    for (;;) {
        while (!f->head && !f->stopping)
            pthread_cond_wait(&f->cond, &f->lock);
        if (f->stopping == 2 || (!f->head && f->stopping))
            break;
        struct qbatch *q = f->head;
        pthread_mutex_unlock(&f->lock);

        /* The head stays in the queue while it is written: the poll loop only
         * appends at the tail, so q is stable without the lock. */
        char err[256] = "";
        int64_t t0 = mono_ms();
        pgsink_result_t r = pgsink_write(f->sink, &q->b, err, sizeof err);
        int64_t took = mono_ms() - t0;

        pthread_mutex_lock(&f->lock);
        switch (r) {
        case PGSINK_STORED:
            f->st.stored_batches++;
            f->st.stored_rows += q->b.rows;
            break;
        case PGSINK_DUPLICATE:
            f->st.duplicate_batches++;
            log_msg(LL_INFO, "batch %lld was already stored (ledger); not storing it again",
                    (long long)q->b.seq);
            break;
        case PGSINK_REJECTED:
            f->st.rejected_batches++;
            f->st.rejected_rows += q->b.rows;
            snprintf(f->st.last_error, sizeof f->st.last_error, "%s", err);
            log_msg(LL_ERROR, "PostgreSQL rejected batch %lld (%u rows, process %lld): %s;"
                    " batch discarded", (long long)q->b.seq, q->b.rows,
                    (long long)q->b.process_id, err);
            break;
        case PGSINK_RETRY:
            break;
        }
        if (r != PGSINK_RETRY) {
            if (f->st.link != LINK_UP) {
                f->st.link = LINK_UP;
                log_release(&f->db_down, LL_INFO, "PostgreSQL reachable again; %zu batches queued",
                            f->st.queued_batches);
            }
            backoff = BACKOFF_MIN_MS;
            log_msg(LL_DEBUG, "batch %lld: %u rows in %lld ms", (long long)q->b.seq,
                    q->b.rows, (long long)took);
            pop_head(f);   /* frees q */
            q = NULL;
            continue;
        }
        /* Transient failure: keep the batch, wait, try again. */
        f->st.link = LINK_DOWN;
        snprintf(f->st.last_error, sizeof f->st.last_error, "%s", err);
        log_complain(&f->db_down, LL_WARN, "cannot store batches: %s; retrying with backoff", err);
        int jitter = backoff / 4;
        int wait = backoff - jitter + (jitter ? (int)(rand_r(&seed) % (unsigned)(2 * jitter + 1)) : 0);
        struct timespec ts;
        abs_deadline(&ts, wait);
        /* Keeps retrying while stop drains the queue (stopping == 1); only
         * the final stop (stopping == 2) cuts a backoff short. */
        while (f->stopping != 2 && pthread_cond_timedwait(&f->cond, &f->lock, &ts) != ETIMEDOUT)
            ;
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
    pthread_mutex_unlock(&f->lock);
    return NULL;
}

forwarder_t *forwarder_start(const char *conninfo, const char *recorder_id,
                             int timeout_ms, size_t max_batches,
                             char *err, size_t errlen)
{
    forwarder_t *f = calloc(1, sizeof *f);
    pthread_condattr_t ca;

    if (!f) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    f->notify[0] = f->notify[1] = -1;
    f->max_batches = max_batches;
    f->st.link = LINK_DOWN;
    if (pipe2(f->notify, O_NONBLOCK | O_CLOEXEC) < 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        goto fail;
    }
    f->sink = pgsink_new(conninfo, recorder_id, timeout_ms);
    if (!f->sink) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    pthread_mutex_init(&f->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&f->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&f->thread, NULL, forwarder_main, f) != 0) {
        snprintf(err, errlen, "cannot start the forwarder thread");
        pthread_cond_destroy(&f->cond);
        pthread_mutex_destroy(&f->lock);
        goto fail;
    }
    return f;
fail:
    if (f->notify[0] >= 0) {
        close(f->notify[0]);
        close(f->notify[1]);
    }
    pgsink_free(f->sink);
    free(f);
    return NULL;
}

int forwarder_submit(forwarder_t *f, const pgsink_batch_t *b, uint8_t *data)
{
    struct qbatch *q = calloc(1, sizeof *q);
    if (!q) {
        pthread_mutex_lock(&f->lock);
        f->st.dropped_batches++;
        f->st.dropped_rows += b->rows;
        pthread_mutex_unlock(&f->lock);
        free(data);
        errno = ENOMEM;
        return -1;
    }
    q->b = *b;
    q->b.data = data;
    q->data = data;

    pthread_mutex_lock(&f->lock);
    /* Full: drop the oldest batch that is not being written right now
     * (the head may be in flight, so drop the one after it). */
    if (f->st.queued_batches >= f->max_batches && f->head && f->head->next) {
        struct qbatch *victim = f->head->next;
        f->head->next = victim->next;
        if (f->tail == victim)
            f->tail = f->head;
        f->st.queued_batches--;
        f->st.queued_rows -= victim->b.rows;
        f->st.dropped_batches++;
        f->st.dropped_rows += victim->b.rows;
        log_msg(LL_ERROR, "in-memory queue full (%zu batches): dropped batch %lld"
                " (%u rows of process %lld)", f->max_batches, (long long)victim->b.seq,
                victim->b.rows, (long long)victim->b.process_id);
        qbatch_free(victim);
    }
    if (f->tail)
        f->tail->next = q;
    else
        f->head = q;
    f->tail = q;
    f->st.queued_batches++;
    f->st.queued_rows += b->rows;
    /* broadcast: forwarder_stop() may be waiting on the same condition */
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
    return 0;
}

int forwarder_notify_fd(const forwarder_t *f)
{
    return f->notify[0];
}

void forwarder_drain_notify(forwarder_t *f)
{
    char buf[256];
    while (read(f->notify[0], buf, sizeof buf) > 0)
        ;
}

void forwarder_get_stats(forwarder_t *f, forwarder_stats_t *out)
{
    pthread_mutex_lock(&f->lock);
    *out = f->st;
    pthread_mutex_unlock(&f->lock);
}

size_t forwarder_stop(forwarder_t *f, int drain_ms)
{
    if (!f)
        return 0;
    int64_t deadline = mono_ms() + drain_ms;

    pthread_mutex_lock(&f->lock);
    f->stopping = 1;
    pthread_cond_broadcast(&f->cond);
    while (f->head && mono_ms() < deadline) {
        struct timespec ts;
        abs_deadline(&ts, 50);
        pthread_mutex_unlock(&f->lock);
        forwarder_drain_notify(f);
        pthread_mutex_lock(&f->lock);
        pthread_cond_timedwait(&f->cond, &f->lock, &ts);
    }
    f->stopping = 2;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
    pthread_join(f->thread, NULL);

    size_t left = 0;
    for (struct qbatch *q = f->head, *next; q; q = next) {
        next = q->next;
        left++;
        qbatch_free(q);
    }
    close(f->notify[0]);
    close(f->notify[1]);
    pgsink_free(f->sink);
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->lock);
    free(f);
    return left;
}
