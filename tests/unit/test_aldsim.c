/* test_aldsim.c — aldsim's fault injection, from the outside and inside.
 *
 * First the pure half (firmware/fault.c): spec parsing and its errors, the
 * canonical text, request parsing, the decision order. Then the real
 * thing: aldsim started as a subprocess on a free port and driven with
 * libmodbus, one fault at a time — latency measured (and two clients
 * served in parallel while answers wait), silent requests time out,
 * exceptions only for requests touching the chosen addresses, drop_every
 * closes exactly every N-th, refuse_ms refuses then recovers, the request
 * limits, rates that repeat with the seed, SIGHUP reloads to another set,
 * to none, and a broken file that changes nothing. Throughout, the read
 * counter (input registers 20-21) is checked against the number of reads
 * this test saw answered, and the exit summary against the faults applied.
 *
 * aldsim is the one beside this program (build/bin or build-san/bin), or
 * $ALDSIM. Timing checks compare with the fault's own figure with wide
 * margins; everything else waits for aldsim's own lines with a deadline. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <modbus.h>

#include "common/clock.h"
#include "firmware/fault.h"
#include "acq/regcodec.h"
#include "t.h"

static char aldsim_path[PATH_MAX];
static char tmpdir[512];   /* short enough for every path made from it */

/* ---- pure half: fault.c ------------------------------------------------- */

static void expect_format(const char *const *specs, int n, const char *want)
{
    char err[256] = "", text[FAULT_TEXT_MAX];
    fault_set_t f;
    int rc = 0;

    fault_set_clear(&f);
    for (int i = 0; i < n && rc == 0; i++)
        rc = fault_set_add(&f, specs[i], err, sizeof err);
    T_EQ_STR(err, "");
    fault_set_format(&f, text, sizeof text);
    T_EQ_STR(text, want);
}

static void expect_bad_spec(const char *spec, const char *msg_part)
{
    char err[256] = "";
    fault_set_t f;

    fault_set_clear(&f);
    fault_set_add(&f, "latency=5", err, sizeof err);
    T_EQ_INT(fault_set_add(&f, spec, err, sizeof err), -1);
    if (!strstr(err, msg_part))
        printf("# \"%s\" gave \"%s\"\n", spec, err);
    T_CHECK(strstr(err, msg_part) != NULL);
    T_EQ_INT(f.latency_ms, 5);         /* unchanged */
    T_EQ_INT(f.nranges, 0);
}

static void test_specs(void)
{
    const char *all[] = { "max_bits=8", "exception=input:20-21:2", "latency=200",
                          "silent_rate=0.25", "exception=coil:3:4", "exception_rate=0.5:6",
                          "drop_every=7", "refuse_ms=1500", "silent", "max_registers=16",
                          "freeze" };
    const char *one[] = { "exception=holding:10-10:11" };
    fault_set_t f;
    char text[FAULT_TEXT_MAX];

    expect_format(all, 11, "latency=200 silent freeze silent_rate=0.25 exception=input:20-21:2 "
                  "exception=coil:3:4 exception_rate=0.5:6 drop_every=7 refuse_ms=1500 "
                  "max_registers=16 max_bits=8");
    expect_format(one, 1, "exception=holding:10:11");
    expect_format(NULL, 0, "none");
    fault_set_clear(&f);
    T_CHECK(fault_set_empty(&f));
    fault_set_format(&f, text, sizeof text);
    T_EQ_STR(text, "none");

    expect_bad_spec("latency", "expected latency=MS");
    expect_bad_spec("refuse_ms=0", "refuse_ms=MS, 1..3600000");
    expect_bad_spec("latency=5", "given twice");
    expect_bad_spec("max_bits=12x", "max_bits=N");
    expect_bad_spec("silent=1", "expected silent");
    expect_bad_spec("freeze=1", "expected freeze");
    expect_bad_spec("silent_rate=1.5", "silent_rate=P");
    expect_bad_spec("silent_rate=nan", "silent_rate=P");
    expect_bad_spec("exception=input:20", "TABLE:ADDR");
    expect_bad_spec("exception=inputs:20:2", "unknown table \"inputs\"");
    expect_bad_spec("exception=input:21-20:2", "FIRST-LAST");
    expect_bad_spec("exception=input:20:12", "exception code 1..11");
    expect_bad_spec("exception=input:70000:2", "0..65535");
    expect_bad_spec("exception_rate=0.5", "exception_rate=P:CODE");
    expect_bad_spec("exception_rate=0.5:0", "exception_rate=P:CODE");
    expect_bad_spec("drop_every=0", "drop_every=N");
    expect_bad_spec("max_registers=126", "max_registers=N (1..125)");
    expect_bad_spec("max_bits=2001", "max_bits=N");
    expect_bad_spec("jitter=5", "unknown fault \"jitter\"");
    expect_bad_spec("", "unknown fault");

    /* Repeated exception ranges are fine, up to the limit. */
    char err[256];
    fault_set_clear(&f);
    for (int i = 0; i < FAULT_MAX_EXCEPTIONS; i++)
        T_EQ_INT(fault_set_add(&f, "exception=holding:1:2", err, sizeof err), 0);
    T_EQ_INT(fault_set_add(&f, "exception=holding:1:2", err, sizeof err), -1);
    T_CHECK(strstr(err, "more than 32") != NULL);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    T_CHECK(f != NULL);
    if (!f)
        return;
    fputs(text, f);
    fclose(f);
}

static void test_fault_file(void)
{
    char path[PATH_MAX], err[512] = "", text[FAULT_TEXT_MAX];
    fault_set_t f;

    snprintf(path, sizeof path, "%s/parse.faults", tmpdir);
    write_file(path, "# a comment\n\n  latency=20   # trailing comment\n"
               "exception=discrete:0-1:4\n\t\n");
    fault_set_clear(&f);
    T_EQ_INT(fault_set_add(&f, "max_bits=4", err, sizeof err), 0);
    T_EQ_INT(fault_set_load(&f, path, err, sizeof err), 0);
    fault_set_format(&f, text, sizeof text);
    T_EQ_STR(text, "latency=20 exception=discrete:0-1:4 max_bits=4");

    write_file(path, "silent\nlatency=10\nbogus\n");
    fault_set_clear(&f);
    T_EQ_INT(fault_set_load(&f, path, err, sizeof err), -1);
    T_CHECK(strstr(err, "parse.faults:3: unknown fault \"bogus\"") != NULL);
    T_CHECK(fault_set_empty(&f));      /* all or nothing */

    snprintf(path, sizeof path, "%s/missing.faults", tmpdir);
    T_EQ_INT(fault_set_load(&f, path, err, sizeof err), -1);
    T_CHECK(strstr(err, "No such file") != NULL);
}

static fault_request_t parse_req(const uint8_t *pdu, size_t len)
{
    fault_request_t r;
    T_EQ_INT(fault_parse_request(pdu, len, &r), 0);
    return r;
}

static void test_requests(void)
{
    static const uint8_t rd_in[] = { 0x04, 0x00, 0x14, 0x00, 0x02 };
    static const uint8_t wr_coil[] = { 0x05, 0x00, 0x03, 0xFF, 0x00 };
    static const uint8_t wr_regs[] = { 0x10, 0x00, 0x0A, 0x00, 0x03, 0x06, 0, 1, 0, 2, 0, 3 };
    static const uint8_t rw[] = { 0x17, 0x00, 0x01, 0x00, 0x02, 0x00, 0x20, 0x00, 0x01, 0x02, 0, 9 };
    static const uint8_t slave_id[] = { 0x11 };
    fault_request_t r;

    r = parse_req(rd_in, sizeof rd_in);
    T_EQ_INT(r.function, 4);
    T_CHECK(r.is_read);
    T_EQ_INT(r.nranges, 1);
    T_EQ_INT(r.range[0].table, REG_INPUT);
    T_EQ_INT(r.range[0].addr, 20);
    T_EQ_INT(r.range[0].count, 2);
    r = parse_req(wr_coil, sizeof wr_coil);
    T_CHECK(!r.is_read);
    T_EQ_INT(r.range[0].table, REG_COIL);
    T_EQ_INT(r.range[0].addr, 3);
    T_EQ_INT(r.range[0].count, 1);
    r = parse_req(wr_regs, sizeof wr_regs);
    T_EQ_INT(r.range[0].table, REG_HOLDING);
    T_EQ_INT(r.range[0].count, 3);
    r = parse_req(rw, sizeof rw);
    T_CHECK(r.is_read);
    T_EQ_INT(r.nranges, 2);
    T_EQ_INT(r.range[1].addr, 32);
    T_EQ_INT(r.range[1].count, 1);
    r = parse_req(slave_id, sizeof slave_id);
    T_EQ_INT(r.nranges, 0);
    T_EQ_INT(fault_parse_request(rd_in, 4, &r), -1);
    T_EQ_INT(fault_parse_request(rw, 9, &r), -1);
    T_EQ_INT(fault_parse_request(rd_in, 0, &r), -1);
}

static fault_request_t req_of(regtype_t t, int addr, int count)
{
    return (fault_request_t){ .function = 3, .is_read = true, .nranges = 1,
                              .range[0] = { .table = t, .addr = addr, .count = count } };
}

static void test_decide(void)
{
    fault_set_t f;
    char err[256];
    uint64_t rng = 1;
    int code = 0;

    fault_set_clear(&f);
    fault_request_t r = req_of(REG_HOLDING, 0, 10);
    T_EQ_INT(fault_decide(&f, &r, 1, &rng, &code), FAULT_ANSWER);
    T_EQ_INT(rng, 1);                  /* no rate: no draw */

    fault_set_add(&f, "exception=holding:10-11:4", err, sizeof err);
    fault_set_add(&f, "max_registers=16", err, sizeof err);
    fault_set_add(&f, "max_bits=8", err, sizeof err);
    fault_set_add(&f, "drop_every=5", err, sizeof err);
    struct { regtype_t t; int addr, count; enum fault_action want; int code; } cases[] = {
        { REG_HOLDING, 0, 10, FAULT_ANSWER, 0 },
        { REG_HOLDING, 0, 11, FAULT_EXCEPTION, 4 },      /* touches 10 */
        { REG_HOLDING, 11, 1, FAULT_EXCEPTION, 4 },
        { REG_HOLDING, 12, 16, FAULT_ANSWER, 0 },
        { REG_INPUT, 10, 2, FAULT_ANSWER, 0 },           /* another table */
        { REG_HOLDING, 20, 17, FAULT_EXCEPTION, 3 },     /* limit */
        { REG_HOLDING, 0, 17, FAULT_EXCEPTION, 3 },      /* the limit is checked first */
        { REG_COIL, 0, 8, FAULT_ANSWER, 0 },
        { REG_DISCRETE, 0, 9, FAULT_EXCEPTION, 3 },
        { REG_HOLDING, 10, 0, FAULT_ANSWER, 0 },         /* touches nothing */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        r = req_of(cases[i].t, cases[i].addr, cases[i].count);
        code = 0;
        T_EQ_INT(fault_decide(&f, &r, 1, &rng, &code), cases[i].want);
        T_EQ_INT(code, cases[i].code);
    }
    r = req_of(REG_HOLDING, 0, 10);
    for (uint64_t seq = 1; seq <= 20; seq++)
        T_EQ_INT(fault_decide(&f, &r, seq, &rng, &code) == FAULT_DROP, seq % 5 == 0);

    /* Rates: about P, and the same for the same seed. */
    fault_set_clear(&f);
    fault_set_add(&f, "exception_rate=0.3:6", err, sizeof err);
    int hits = 0, differ = 0;
    uint64_t a = 42, b = 42;
    for (int i = 0; i < 10000; i++) {
        int ca = 0, cb = 0;
        enum fault_action x = fault_decide(&f, &r, (uint64_t)i + 1, &a, &ca);
        enum fault_action y = fault_decide(&f, &r, (uint64_t)i + 1, &b, &cb);
        differ += x != y || ca != cb;
        hits += x == FAULT_EXCEPTION && ca == 6;
    }
    T_EQ_INT(differ, 0);
    T_CHECK(hits > 2700 && hits < 3300);
    fault_set_add(&f, "silent", err, sizeof err);
    T_EQ_INT(fault_decide(&f, &r, 1, &a, &code), FAULT_SILENT);
}

/* ---- the real thing: aldsim as a subprocess ----------------------------- */

struct sim {
    pid_t pid;                /* 0 once reaped */
    int status;               /* exit status once reaped, -1 if killed */
    int port;
    char out[PATH_MAX], log[PATH_MAX];
};


static void pause_ms(int ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };
    nanosleep(&ts, NULL);
}

/* Whole file as a string (static buffer), "" if unreadable. */
static const char *slurp(const char *path)
{
    static char buf[1 << 16];
    size_t n = 0;
    FILE *f = fopen(path, "r");

    buf[0] = '\0';
    if (!f)
        return buf;
    n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* True (and s->status set) once s has exited. */
static bool sim_exited(struct sim *s)
{
    int st;
    if (s->pid > 0 && waitpid(s->pid, &st, WNOHANG) == s->pid) {
        s->pid = 0;
        s->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    }
    return s->pid == 0;
}

/* Waits until path holds needle at least n times; true if it did within
 * timeout_ms, false at once if s exited meanwhile. */
static bool wait_text(struct sim *s, const char *path, const char *needle, int n,
                      int timeout_ms)
{
    int64_t end = clock_mono_ms() + timeout_ms;
    do {
        if (count_of(slurp(path), needle) >= n)
            return true;
        if (sim_exited(s))
            return count_of(slurp(path), needle) >= n;
        pause_ms(10);
    } while (clock_mono_ms() < end);
    printf("# timed out waiting for \"%s\" x%d in %s:\n%s\n", needle, n, path, slurp(path));
    return false;
}

/* Starts aldsim --port 0 with argv extra (NULL-terminated); waits for its
 * ready line. */
static bool sim_start(struct sim *s, const char *name, const char *const *extra)
{
    const char *argv[32] = { aldsim_path, "--port", "0", "--seed", "7" };
    int argc = 5;

    for (int i = 0; extra && extra[i] && argc < 30; i++)
        argv[argc++] = extra[i];
    argv[argc] = NULL;
    snprintf(s->out, sizeof s->out, "%s/%s.out", tmpdir, name);
    snprintf(s->log, sizeof s->log, "%s/%s.log", tmpdir, name);
    fflush(stdout);
    s->pid = fork();
    if (s->pid == 0) {
        int o = open(s->out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(s->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
            _exit(127);
        execv(aldsim_path, (char *const *)argv);
        _exit(127);
    }
    s->status = -1;
    if (s->pid < 0 || !wait_text(s, s->out, "listening on", 1, 10000))
        return false;
    const char *p = strstr(slurp(s->out), "127.0.0.1:");
    s->port = p ? atoi(p + strlen("127.0.0.1:")) : 0;
    return s->port > 0;
}

/* SIGTERM, wait (10 s at most); returns the exit status, -1 if it did not
 * exit normally. */
static int sim_stop(struct sim *s)
{
    if (s->pid <= 0)
        return s->status;
    kill(s->pid, SIGTERM);
    for (int i = 0; i < 1000; i++) {
        if (sim_exited(s))
            return s->status;
        pause_ms(10);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
    return -1;
}

/* Rewrites the fault file, sends SIGHUP and waits for the n-th
 * "aldsim: faults: " line; true if it says want. */
static bool sim_reload(struct sim *s, const char *file, const char *text, const char *want, int n)
{
    static const char tag[] = "aldsim: faults: ";
    const char *last, *p;
    size_t len = strlen(want);

    write_file(file, text);
    kill(s->pid, SIGHUP);
    if (!wait_text(s, s->log, tag, n, 10000))
        return false;
    for (last = p = strstr(slurp(s->log), tag); p; p = strstr(p + 1, tag))
        last = p;
    last += strlen(tag);
    if (strncmp(last, want, len) == 0 && last[len] == '\n')
        return true;
    printf("# after reload %d: %.*s\n", n, (int)strcspn(last, "\n"), last);
    return false;
}

static modbus_t *client(const struct sim *s, int timeout_ms)
{
    modbus_t *m = modbus_new_tcp("127.0.0.1", s->port);
    if (!m)
        return NULL;
    modbus_set_response_timeout(m, (uint32_t)(timeout_ms / 1000),
                                (uint32_t)(timeout_ms % 1000) * 1000);
    if (modbus_connect(m) < 0) {
        modbus_free(m);
        return NULL;
    }
    return m;
}

static void client_free(modbus_t *m)
{
    if (!m)
        return;
    modbus_close(m);
    modbus_free(m);
}

/* Reads the read counter; -1 with errno on failure. */
static long read_counter(modbus_t *m)
{
    uint16_t r[2];
    if (modbus_read_input_registers(m, 20, 2, r) != 2)
        return -1;
    return (long)regcodec_decode(r, DT_U32, WO_ABCD);
}

/* One holding-register read of count at addr: 0 on success, else errno. */
static int read_holding(modbus_t *m, int addr, int count)
{
    uint16_t r[MODBUS_MAX_READ_REGISTERS];
    return modbus_read_registers(m, addr, count, r) == count ? 0 : errno;
}

/* A delayed answer arrives no earlier than latency_ms; two clients waiting
 * at once are answered in parallel; the exit summary counts it all. */
static void test_latency(void)
{
    static const char *const args[] = { "--fault", "latency=400", NULL };
    struct sim s;
    long reads = 0;

    T_CHECK(sim_start(&s, "latency", args));
    T_CHECK(strstr(slurp(s.log), "aldsim: faults: latency=400\n") != NULL);
    modbus_t *a = client(&s, 3000), *b = client(&s, 3000);
    T_CHECK(a && b);
    if (!a || !b)
        goto out;

    int64_t t0 = clock_mono_ms();
    long rc = read_counter(a);
    int64_t took = clock_mono_ms() - t0;
    T_EQ_INT(rc, ++reads);
    T_CHECK(took >= 400 || (printf("# answer after %lld ms\n", (long long)took), 0));
    T_CHECK(took < 2500);

    /* Two requests in flight: answered together, not one after the other. */
    uint8_t req[] = { 1, 0x04, 0x00, 0x14, 0x00, 0x02 };   /* unit, FC4, 20, 2 */
    uint8_t rsp[MODBUS_TCP_MAX_ADU_LENGTH];
    t0 = clock_mono_ms();
    T_CHECK(modbus_send_raw_request(a, req, sizeof req) > 0);
    T_CHECK(modbus_send_raw_request(b, req, sizeof req) > 0);
    T_CHECK(modbus_receive_confirmation(a, rsp) > 0);
    T_CHECK(modbus_receive_confirmation(b, rsp) > 0);
    took = clock_mono_ms() - t0;
    reads += 2;
    printf("# two clients with latency=400: both answered after %lld ms\n", (long long)took);
    T_CHECK(took >= 400);
    T_CHECK(took < 800);   /* one after the other would take >= 800 ms */
    T_EQ_INT(read_counter(b), ++reads);

out:
    client_free(a);
    client_free(b);
    T_EQ_INT(sim_stop(&s), 0);
    const char *log = slurp(s.log);
    char want[128];
    snprintf(want, sizeof want, "served %ld read requests", reads);
    T_CHECK(strstr(log, want) != NULL);
    snprintf(want, sizeof want, "faults applied: %ld answers delayed, 0 requests unanswered", reads);
    T_CHECK(strstr(log, want) != NULL || (printf("# %s", log), 0));
}

/* Everything else on one aldsim, switched with SIGHUP. */
static void test_reloads(void)
{
    char file[PATH_MAX];
    struct sim s;
    long reads = 0, exceptions = 0, unanswered = 0, dropped = 0;
    int loads = 1, err;
    modbus_t *m = NULL;

    snprintf(file, sizeof file, "%s/reload.faults", tmpdir);
    write_file(file, "# starts empty\n");
    const char *const args[] = { "--fault-file", file, NULL };
    T_CHECK(sim_start(&s, "reload", args));
    T_CHECK(strstr(slurp(s.log), "aldsim: faults: none\n") != NULL);
    m = client(&s, 300);
    T_CHECK(m != NULL);
    if (!m)
        goto out;
    T_EQ_INT(read_counter(m), ++reads);

    /* silent: read, never answered, not counted. */
    T_CHECK(sim_reload(&s, file, "silent\n", "silent", ++loads));
    int64_t t0 = clock_mono_ms();
    T_EQ_INT(read_counter(m), -1);
    T_EQ_INT(errno, ETIMEDOUT);
    T_CHECK(clock_mono_ms() - t0 >= 250);
    unanswered++;
    T_CHECK(sim_reload(&s, file, "", "none", ++loads));
    T_EQ_INT(read_counter(m), ++reads);

    /* exception ranges: only requests touching them. */
    T_CHECK(sim_reload(&s, file, "exception=holding:10-11:4\nexception=input:44:2\n",
                       "exception=holding:10-11:4 exception=input:44:2", ++loads));
    T_EQ_INT(read_holding(m, 10, 2), EMBXSFAIL);
    T_EQ_INT(read_holding(m, 8, 3), EMBXSFAIL);    /* 8-10 */
    T_EQ_INT(read_holding(m, 11, 1), EMBXSFAIL);
    T_EQ_INT(read_holding(m, 12, 5), 0);
    T_EQ_INT(read_holding(m, 0, 10), 0);           /* 0-9 */
    reads += 5;
    exceptions += 3;
    T_EQ_INT(modbus_write_register(m, 11, 7) == 1 ? 0 : errno, EMBXSFAIL);
    T_EQ_INT(modbus_write_register(m, 12, 7) == 1 ? 0 : errno, 0);
    exceptions++;
    uint16_t in[30];
    T_EQ_INT(modbus_read_input_registers(m, 30, 15, in) == 15 ? 0 : errno, EMBXILADD);
    T_EQ_INT(modbus_read_input_registers(m, 30, 14, in), 14);   /* 30-43 */
    T_EQ_INT(in[0], 54321);
    reads += 2;
    exceptions++;
    T_EQ_INT(read_counter(m), ++reads);            /* exception answers count */

    /* max_registers / max_bits: exception 3 above the limit, reads and writes. */
    T_CHECK(sim_reload(&s, file, "max_registers=16\nmax_bits=8\n",
                       "max_registers=16 max_bits=8", ++loads));
    T_EQ_INT(read_holding(m, 0, 16), 0);
    T_EQ_INT(read_holding(m, 0, 17), EMBXILVAL);
    uint8_t bits[16];
    T_EQ_INT(modbus_read_bits(m, 0, 8, bits), 8);
    T_EQ_INT(modbus_read_bits(m, 0, 9, bits) == 9 ? 0 : errno, EMBXILVAL);
    uint16_t regs[17] = { 0 };
    T_EQ_INT(modbus_write_registers(m, 50, 17, regs) == 17 ? 0 : errno, EMBXILVAL);
    reads += 4;
    exceptions += 3;
    T_EQ_INT(read_counter(m), ++reads);

    /* drop_every=3: the 3rd, 6th, 9th request since the reload close the
     * connection; the others are answered. */
    T_CHECK(sim_reload(&s, file, "drop_every=3\n", "drop_every=3", ++loads));
    for (int i = 1; i <= 9; i++) {
        long v = read_counter(m);
        if (i % 3 == 0) {
            T_EQ_INT(v, -1);
            T_CHECK(errno == ECONNRESET || errno == EPIPE || errno == EMBBADDATA);
            dropped++;
            modbus_close(m);
            T_EQ_INT(modbus_connect(m), 0);
        } else {
            T_EQ_INT(v, ++reads);
        }
    }

    /* Rates: roughly P, and the same sequence for the same seed (checked
     * against a second aldsim below). */
    T_CHECK(sim_reload(&s, file, "exception_rate=0.5:6\n", "exception_rate=0.5:6", ++loads));
    char pattern[65] = "";
    for (int i = 0; i < 64; i++) {
        err = read_holding(m, 0, 1);
        T_CHECK(err == 0 || err == EMBXSBUSY);
        pattern[i] = err ? 'x' : '.';
        exceptions += err != 0;
    }
    reads += 64;
    int nexc = count_of(pattern, "x");
    printf("# exception_rate=0.5 over 64 requests: %s\n", pattern);
    T_CHECK(nexc >= 16 && nexc <= 48);
    /* (The read counter itself would get exceptions now: it is checked
     * once the faults are deterministic again.) */

    /* A broken file changes nothing. */
    write_file(file, "latency=50\nnonsense\n");
    kill(s.pid, SIGHUP);
    T_CHECK(wait_text(&s, s.log, "reload.faults:2: unknown fault \"nonsense\"", 1, 10000));
    T_CHECK(strstr(slurp(s.log), "; faults unchanged\n") != NULL);
    T_EQ_INT(count_of(slurp(s.log), "aldsim: faults:"), loads);
    err = read_holding(m, 0, 1);               /* still exception_rate */
    T_CHECK(err == 0 || err == EMBXSBUSY);
    exceptions += err != 0;
    reads++;

    /* silent_rate: some unanswered, the rest answered and counted. */
    T_CHECK(sim_reload(&s, file, "silent_rate=0.5\n", "silent_rate=0.5", ++loads));
    modbus_set_response_timeout(m, 0, 150000);
    int answered = 0;
    for (int i = 0; i < 16; i++)
        answered += read_holding(m, 0, 1) == 0;
    unanswered += 16 - answered;
    reads += answered;
    printf("# silent_rate=0.5: %d of 16 answered\n", answered);
    T_CHECK(answered >= 3 && answered <= 13);

    /* refuse_ms: the client is closed, connections are refused, then
     * accepted again on the same port. */
    modbus_set_response_timeout(m, 1, 0);
    T_CHECK(sim_reload(&s, file, "refuse_ms=800\n", "refuse_ms=800", ++loads));
    int64_t refused_at = clock_mono_ms();
    T_EQ_INT(read_counter(m), -1);             /* closed */
    client_free(m);
    m = modbus_new_tcp("127.0.0.1", s.port);
    T_EQ_INT(modbus_connect(m), -1);
    T_EQ_INT(errno, ECONNREFUSED);
    int64_t back = -1;
    while (clock_mono_ms() - refused_at < 10000) {
        if (modbus_connect(m) == 0) {
            back = clock_mono_ms() - refused_at;
            break;
        }
        pause_ms(20);
    }
    printf("# refuse_ms=800: connected again %lld ms after the faults line was seen\n",
           (long long)back);
    T_CHECK(back >= 400);                      /* the line is printed after the refusal began */
    T_CHECK(back >= 0 && back < 5000);
    T_CHECK(strstr(slurp(s.log), "accepting connections again on 127.0.0.1:") != NULL);
    modbus_set_response_timeout(m, 1, 0);
    T_EQ_INT(read_counter(m), ++reads);

    /* Back to none. */
    T_CHECK(sim_reload(&s, file, "# nothing\n", "none", ++loads));
    T_EQ_INT(read_counter(m), ++reads);

out:
    client_free(m);
    T_EQ_INT(sim_stop(&s), 0);
    const char *log = slurp(s.log);
    char want[256];
    snprintf(want, sizeof want, "served %ld read requests", reads);
    T_CHECK(strstr(log, want) != NULL || (printf("# want %s\n%s", want, log), 0));
    snprintf(want, sizeof want, "faults applied: 0 answers delayed, %ld requests unanswered, "
             "%ld exceptions, %ld connections dropped, 1 refusals", unanswered, exceptions, dropped);
    T_CHECK(strstr(log, want) != NULL || (printf("# want %s\n%s", want, log), 0));

    /* The same seed and requests give the same rate decisions. */
    const char *const again[] = { "--fault", "exception_rate=0.5:6", NULL };
    struct sim s2;
    T_CHECK(sim_start(&s2, "rate-again", again));
    m = client(&s2, 1000);
    char pattern2[65] = "";
    for (int i = 0; m && i < 64; i++)
        pattern2[i] = read_holding(m, 0, 1) ? 'x' : '.';
    T_EQ_STR(pattern2, pattern);
    client_free(m);
    T_EQ_INT(sim_stop(&s2), 0);
}

/* refuse_ms at start: the port is printed, then refused, then served. */
static void test_refuse_at_start(void)
{
    static const char *const args[] = { "--fault", "refuse_ms=500", NULL };
    struct sim s;

    T_CHECK(sim_start(&s, "refuse-start", args));
    modbus_t *m = modbus_new_tcp("127.0.0.1", s.port);
    T_EQ_INT(modbus_connect(m), -1);
    T_EQ_INT(errno, ECONNREFUSED);
    T_CHECK(wait_text(&s, s.log, "accepting connections again", 1, 10000));
    T_EQ_INT(modbus_connect(m), 0);
    T_EQ_INT(read_counter(m), 1);
    client_free(m);
    T_EQ_INT(sim_stop(&s), 0);
}

/* Bad command lines and fault files stop aldsim with status 2 and a
 * message naming the culprit. */
static void test_bad_command_lines(void)
{
    char file[PATH_MAX];
    snprintf(file, sizeof file, "%s/bad.faults", tmpdir);
    write_file(file, "latency=10\nlatency=20\n");
    struct {
        const char *const args[5];   /* NULL-terminated */
        const char *msg;
    } cases[] = {
        { { "--fault", "latency=abc" }, "--fault: \"latency=abc\": expected latency=MS" },
        { { "--fault-file", file }, "bad.faults:2: \"latency=20\": latency given twice" },
        { { "--fault-file", "/nonexistent/x" }, "/nonexistent/x: No such file" },
        { { "--baud", "9600" }, "--baud needs --rtu DEVICE" },
        { { "--rtu", "/dev/null", "--parity", "X" }, "--parity: expected N, E or O" },
        { { "--rtu", "/dev/null", "--baud", "12345" }, "not a standard line speed" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct sim s;
        T_CHECK(!sim_start(&s, "bad", cases[i].args));   /* never ready */
        T_EQ_INT(sim_stop(&s), 2);
        const char *log = slurp(s.log);
        T_CHECK(strstr(log, cases[i].msg) != NULL || (printf("# got: %s", log), 0));
    }
}

int main(int argc, char **argv)
{
    const char *env = getenv("ALDSIM");
    const char *tmp = getenv("TMPDIR");

    (void)argc;
    signal(SIGPIPE, SIG_IGN);
    if (env) {
        snprintf(aldsim_path, sizeof aldsim_path, "%s", env);
    } else {
        snprintf(aldsim_path, sizeof aldsim_path, "%s", argv[0]);
        char *slash = strrchr(aldsim_path, '/');
        snprintf(slash ? slash + 1 : aldsim_path,
                 sizeof aldsim_path - (size_t)(slash ? slash + 1 - aldsim_path : 0), "aldsim");
    }
    snprintf(tmpdir, sizeof tmpdir, "%s/test_aldsim.XXXXXX", tmp ? tmp : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }

    test_specs();
    test_fault_file();
    test_requests();
    test_decide();
    if (access(aldsim_path, X_OK) != 0) {
        printf("not ok - %s: %s\n", aldsim_path, strerror(errno));
        t_failed++;
    } else {
        test_latency();
        test_reloads();
        test_refuse_at_start();
        test_bad_command_lines();
    }
    return t_done("test_aldsim");
}
