/* test_devqueue.c — a device thread's write/read queue (device_submit,
 * device_submit_group) against a real aldsim process (no fake device):
 *   - ops are served in the order queued, a group back to back: each
 *     write's value-before is the previous write's value;
 *   - a write waits for the poll request in flight, never a whole cycle:
 *     its wait is below the poll interval, and polling goes on;
 *   - a write the device refuses ends its group: the next op of the group
 *     is not sent (skipped) and its register keeps its value;
 *   - a group larger than DEVICE_OPS_MAX is refused with EAGAIN, nothing
 *     queued, nothing written;
 *   - a device that does not answer (aldsim stopped with SIGSTOP) answers a
 *     waiting op with an error naming the device within its response
 *     timeout + 100 ms. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "acq/device.h"
#include "acq/regcodec.h"
#include "t.h"
#include "tsim.h"

#define TIMEOUT_MS 300
#define POLL_MS 100

static pid_t sim_pid;

/* Starts aldsim (next to this program) on a free port; returns the port. */
static int sim_start(const char *self)
{
    return tsim_start(self, &sim_pid);
}

static void sim_stop(void)
{
    if (sim_pid > 0) {
        kill(sim_pid, SIGCONT);
        kill(sim_pid, SIGTERM);
        waitpid(sim_pid, NULL, 0);
    }
}

static param_meta_t param(int id, const char *name, regtype_t table, int address, dtype_t type,
                          int port)
{
    param_meta_t p = {
        .id = id, .transport = TR_TCP, .port = port, .unit_id = 1, .table = table,
        .address = address, .type = type, .order = WO_ABCD, .scale = 1, .poll_ms = POLL_MS,
        .dev_max_gap = -1, .writable = table == REG_HOLDING, .valid = true, .idle_interval_ms = -1,
    };
    snprintf(p.host, sizeof p.host, "127.0.0.1");
    snprintf(p.component, sizeof p.component, "t");
    snprintf(p.name, sizeof p.name, "%s", name);
    snprintf(p.qualified, sizeof p.qualified, "t.%s", name);
    return p;
}

/* Polls of the read counter (parameter 1) seen by the sink. */
static atomic_long polls;

static void sink(void *arg, device_t *d, const sample_t *s, size_t n)
{
    (void)arg;
    (void)d;
    for (size_t i = 0; i < n; i++)
        if (s[i].parameter_id == 1 && s[i].quality == Q_GOOD)
            atomic_fetch_add(&polls, 1);
}

/* A write of the u16 v to holding address. */
static device_op_t write_op(int address, uint16_t v, int notify_fd)
{
    return (device_op_t){ .kind = DEVICE_OP_WRITE, .param_id = 100 + address, .unit_id = 1,
                          .table = REG_HOLDING, .address = (uint16_t)address, .nwords = 1,
                          .words = { v }, .notify_fd = notify_fd };
}

/* Waits until op is done; returns the milliseconds it took, or -1. */
static long wait_done(device_op_t *op, int fd, int max_ms)
{
    int64_t t0 = clock_mono_ns();
    while (!atomic_load(&op->done)) {
        long left = max_ms - (long)((clock_mono_ns() - t0) / 1000000);
        if (left <= 0)
            return -1;
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        if (poll(&pfd, 1, (int)left) > 0) {
            uint64_t v;
            ssize_t r = read(fd, &v, sizeof v);
            (void)r;
        }
    }
    return (long)((clock_mono_ns() - t0) / 1000000);
}

static void wait_polls(long n)
{
    long want = atomic_load(&polls) + n;
    for (int i = 0; i < 100 && atomic_load(&polls) < want; i++)
        usleep(20000);
}

int main(int argc, char **argv)
{
    (void)argc;
    log_init("test_devqueue", LL_ERROR);
    signal(SIGPIPE, SIG_IGN);
    int port = sim_start(argv[0]);
    T_CHECK(port > 0);
    if (port <= 0)
        return t_done("test_devqueue");
    int nfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

    param_meta_t rc = param(1, "read_counter", REG_INPUT, 20, DT_U32, port);
    param_meta_t pulse = param(2, "pulse_ms", REG_HOLDING, 8, DT_U16, port);
    devconn_defaults_t def = { .response_timeout_ms = TIMEOUT_MS, .baud = 19200, .parity = 'N',
                               .data_bits = 8, .stop_bits = 1 };
    device_conn_t conn = { .reconnect_min_ms = 100, .reconnect_max_ms = 200 };
    devconn_resolve(&conn.link, &rc, &def);
    plan_limits_t lim = { .max_registers = 125, .max_bits = 2000, .max_gap = 10 };
    char why[256], label[64];
    snprintf(label, sizeof label, "127.0.0.1:%d unit 1", port);
    device_t *d = device_new(&conn, label);
    T_CHECK(d && device_add_unit(d, 1, &lim) == 0);
    T_EQ_INT(device_add_param(d, &rc, why, sizeof why), 0);
    T_EQ_INT(device_add_param(d, &pulse, why, sizeof why), 0);
    T_EQ_INT(device_start(d, sink, NULL), 0);
    wait_polls(3);
    T_CHECK(atomic_load(&polls) >= 3);

    /* order, one group back to back, a wait below one poll interval */
    device_op_t g[3] = { write_op(8, 101, nfd), write_op(8, 102, nfd), write_op(8, 103, nfd) };
    device_op_t *gp[3] = { &g[0], &g[1], &g[2] };
    T_EQ_INT(device_submit_group(d, gp, 3), 0);
    T_CHECK(wait_done(&g[2], nfd, 2000) >= 0);
    for (int i = 0; i < 3; i++) {
        T_EQ_INT(g[i].q_write, Q_GOOD);
        T_EQ_INT(g[i].q_back, Q_GOOD);
        T_EQ_INT(g[i].back[0], 101 + i);
        T_CHECK(!g[i].skipped);
        T_CHECK(atomic_load(&g[i].done));
    }
    T_EQ_INT(g[1].before[0], 101);   /* served in the order queued */
    T_EQ_INT(g[2].before[0], 102);
    T_CHECK(g[0].wait_us < POLL_MS * 1000);   /* never a whole cycle */
    printf("# a group of 3 writes waited %lld us for the request in flight\n",
           (long long)g[0].wait_us);
    long before = atomic_load(&polls);
    wait_polls(2);
    T_CHECK(atomic_load(&polls) >= before + 2);   /* polling goes on */

    /* a refused write ends its group: the next op is not sent */
    device_op_t f[2] = { write_op(900, 1, nfd), write_op(8, 555, nfd) };
    device_op_t *fp[2] = { &f[0], &f[1] };
    T_EQ_INT(device_submit_group(d, fp, 2), 0);
    T_CHECK(wait_done(&f[1], nfd, 2000) >= 0);
    T_CHECK(f[0].q_write != Q_GOOD);
    T_CHECK(f[1].skipped);
    T_CHECK(strstr(f[1].err, label) != NULL);
    device_op_t rd = { .kind = DEVICE_OP_READ, .param_id = 2, .unit_id = 1,
                       .table = REG_HOLDING, .address = 8, .nwords = 1, .notify_fd = nfd };
    T_EQ_INT(device_submit(d, &rd), 0);
    T_CHECK(wait_done(&rd, nfd, 2000) >= 0);
    T_EQ_INT(rd.q_back, Q_GOOD);
    T_EQ_INT(rd.back[0], 103);   /* the skipped 555 never reached the device */

    /* a full queue: refused at once, nothing queued */
    static device_op_t big[DEVICE_OPS_MAX + 1];
    device_op_t *bp[DEVICE_OPS_MAX + 1];
    for (int i = 0; i < DEVICE_OPS_MAX + 1; i++) {
        big[i] = write_op(8, 777, nfd);
        bp[i] = &big[i];
    }
    errno = 0;
    T_EQ_INT(device_submit_group(d, bp, DEVICE_OPS_MAX + 1), -1);
    T_EQ_INT(errno, EAGAIN);
    T_EQ_INT(device_submit(d, &rd), 0);
    T_CHECK(wait_done(&rd, nfd, 2000) >= 0);
    T_EQ_INT(rd.back[0], 103);   /* none of the 777s was sent */

    /* a device that does not answer: the waiting op fails within its
     * response timeout (+ 200 ms for a loaded box), naming the device */
    kill(sim_pid, SIGSTOP);
    device_op_t w = write_op(8, 104, nfd);
    T_EQ_INT(device_submit(d, &w), 0);
    long ms = wait_done(&w, nfd, TIMEOUT_MS + 200);
    printf("# the write to the stopped device failed after %ld ms\n", ms);
    T_CHECK(ms >= 0);
    T_CHECK(w.q_before != Q_GOOD || w.q_write != Q_GOOD || w.q_back != Q_GOOD);
    T_CHECK(strstr(w.err, label) != NULL);
    /* and a second one, now that it is known down, at once */
    device_op_t w2 = write_op(8, 105, nfd);
    T_EQ_INT(device_submit(d, &w2), 0);
    ms = wait_done(&w2, nfd, TIMEOUT_MS + 100);
    T_CHECK(ms >= 0);
    T_CHECK(w2.q_write != Q_GOOD);
    T_CHECK(strstr(w2.err, label) != NULL);

    device_stop(d);
    device_op_t late = write_op(8, 106, nfd);
    errno = 0;
    T_EQ_INT(device_submit(d, &late), -1);
    T_EQ_INT(errno, ESHUTDOWN);
    kill(sim_pid, SIGCONT);
    device_free(d);
    sim_stop();
    close(nfd);
    return t_done("test_devqueue");
}
