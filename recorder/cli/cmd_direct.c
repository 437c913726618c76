/* cmd_direct.c — aldrec get|set with --direct or -v: the parameter's
 * metadata from the cache (cache/pcache.h: Redis if current, else
 * PostgreSQL in one query, else the snapshot) and, with --direct, a Modbus
 * connection of the command's own, for maintenance and commissioning
 * without aldrecd (refused while it runs: it is the devices' one master).
 * A set point is checked against the metadata before anything reaches the
 * device (setpoint.h: the same checks and words as aldrecd's SET); a
 * direct set is not recorded and says so.
 *
 * In aldrec-full only (it needs libpq, Redis and libmodbus): the front
 * program (aldrec.c) hands these forms over to it. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli/cli.h"
#include "store/ctlrec.h"
#include "common/log.h"
#include "acq/mbio.h"
#include "cache/pcache.h"
#include "acq/quality.h"
#include "acq/sample.h"
#include "common/clock.h"
#include "common/ctl.h"
#include "acq/setpoint.h"

/* -v: the entry's metadata and where it came from, on stderr. */
static void describe(pcache_t *c, const param_meta_t *p)
{
    pcache_stats_t st;
    char lim[96];
    pcache_get_stats(c, &st);
    setpoint_format_limits(lim, sizeof lim, p);
    fprintf(stderr, "aldrec: %s: id %d, %s %d, %s %s, scale %g, offset %g, limits %s, %s;"
            " metadata from %s (version %lld, read from PostgreSQL %.1f s ago)\n",
            p->qualified, p->id, regcodec_regtype_name(p->table), p->address,
            regcodec_type_name(p->type), regcodec_order_name(p->order), p->scale, p->offset,
            lim, p->writable ? "writable" : "read-only", pcache_source_name(st.source),
            (long long)st.version, st.age_s);
}

/* Opens the cache for a one-shot lookup. */
static pcache_t *open_cache(const aldrec_config_t *cfg, bool verbose)
{
    pcache_opts_t o;
    log_init("aldrec", verbose ? LL_DEBUG : LL_WARN);
    pcache_opts_from_config(&o, cfg);
    o.app_name = "aldrec";
    pcache_t *c = pcache_new(&o);
    if (!c)
        cli_fail("cannot set up the metadata cache: %s", strerror(errno));
    return c;
}

/* Prints why name is not a parameter of the map, with what there is (the
 * same words aldrecd answers with: setpoint_explain_unknown). */
static void explain_unknown(pcache_t *c, const char *name, const char *cmd)
{
    pmap_t *m = pcache_map(c);
    char msg[1024];
    setpoint_explain_unknown(m, name, cmd, msg, sizeof msg);
    fprintf(stderr, "aldrec: %s\n", msg);
    pmap_free(m);
}

/* Looks name up. Returns 0 with *out, 1 unknown (explained), -1 no
 * metadata at all (explained). */
static int find_param(pcache_t *c, const char *name, param_meta_t *out, const char *cmd,
                      bool verbose)
{
    char err[1024];
    pcache_result_t r = pcache_fetch(c, name, out, err, sizeof err);
    if (verbose && r != PCACHE_MISS)
        describe(c, out);
    if (r == PCACHE_MISS && err[0]) {
        fprintf(stderr, "aldrec: %s: %s\n", cmd, err);
        return -1;
    }
    if (r == PCACHE_MISS) {
        explain_unknown(c, name, cmd);
        return 1;
    }
    if (r == PCACHE_STALE)
        fprintf(stderr, "aldrec: warning: parameter metadata may be stale (PostgreSQL"
                " unreachable)\n");
    if (!out->valid) {
        fprintf(stderr, "aldrec: %s: parameter %s cannot be used: %s\n", cmd, out->qualified,
                out->why);
        return 1;
    }
    return 0;
}

/* The metadata of parameter name, from the cache. Returns 0 with *out, or
 * the exit status after a message: 2 unknown or unusable, 1 no metadata. */
static int metadata_of(const aldrec_config_t *cfg, const char *name, param_meta_t *out,
                       const char *cmd, bool verbose)
{
    pcache_t *c = open_cache(cfg, verbose);
    if (!c)
        return 1;
    int rc = find_param(c, name, out, cmd, verbose);
    pcache_free(c);
    return rc == 0 ? 0 : rc < 0 ? 1 : 2;
}

static int parse_args(int argc, char **argv, const char *cmd, int nargs, bool *verbose,
                      const char **by, bool *unrecorded)
{
    static const struct option opts[] = {
        { "verbose", no_argument, NULL, 'v' },
        { "by", required_argument, NULL, 'b' },
        { "unrecorded", no_argument, NULL, 'u' },
        { "direct", no_argument, NULL, 'd' },
        { NULL, 0, NULL, 0 },
    };
    int opt;
    optind = 1;
    /* "+": stop at the first operand, so that "-5" is a value, not an option. */
    while ((opt = getopt_long(argc, argv, "+v", opts, NULL)) != -1) {
        if (opt == 'v')
            *verbose = true;
        else if (opt == 'b' && by)
            *by = optarg;
        else if ((opt == 'u' || opt == 'd') && unrecorded)
            *unrecorded = true;
        else if (opt == 'd')
            ;
        else
            return cli_usage_error("%s: bad option", cmd);
    }
    if (argc - optind != nargs)
        return cli_usage_error("%s: expected %s", cmd,
                               nargs == 1 ? "COMPONENT.PARAM" : "COMPONENT.PARAM VALUE");
    return 0;
}

static int direct_get(const aldrec_config_t *cfg, int argc, char **argv)
{
    bool verbose = false;
    param_meta_t p;
    char err[512], val[96];
    uint16_t words[4] = { 0 };
    int rc = parse_args(argc, argv, "get", 1, &verbose, NULL, NULL);
    if (rc)
        return rc;
    if ((rc = metadata_of(cfg, argv[optind], &p, "get", verbose)) != 0)
        return rc;

    devconn_defaults_t modbus = devconn_defaults_from_config(cfg);
    mbio_t *m = mbio_open(&p, &modbus, err, sizeof err);
    int16_t q = m ? mbio_read(m, &p, words, err, sizeof err) : (int16_t)Q_COMM_ERROR;
    mbio_close(m);
    if (q != Q_GOOD) {
        printf("%s = NULL (quality %d %s)\n", p.qualified, q, quality_name(q));
        fprintf(stderr, "aldrec: get: %s\n", err);
        return 1;
    }
    double v = mbio_value(&p, words);
    q = quality_of_value(&p, v);
    setpoint_format_value(val, sizeof val, &p, v);
    printf("%s = %s (quality %d %s)\n", p.qualified, val, q, quality_name(q));
    return 0;
}

static int direct_set(const aldrec_config_t *cfg, int argc, char **argv)
{
    bool verbose = false, unrecorded = true;
    const char *by = NULL;
    param_meta_t p;
    (void)unrecorded;   /* --direct and --unrecorded: the same */
    char err[512], req[96], was[96] = "?", got[96], wrote[96];
    uint16_t words[4] = { 0 }, back[4] = { 0 }, before[4] = { 0 };
    double value;
    int rc = parse_args(argc, argv, "set", 2, &verbose, &by, &unrecorded);
    if (rc)
        return rc;
    const char *text = argv[optind + 1];
    if (by && ctlrec_check_text("--by", by, err, sizeof err) < 0)
        return cli_usage_error("set: %s", err);
    if ((rc = metadata_of(cfg, argv[optind], &p, "set", verbose)) != 0)
        return rc;

    /* Everything is checked before the device is touched (setpoint.h:
     * the same checks and words as aldrecd's SET). */
    setpoint_t sp;
    if (setpoint_check(&p, text, &sp, err, sizeof err) < 0) {
        fprintf(stderr, "aldrec: %s\n", err);
        return 2;
    }
    value = sp.requested;
    double effective = sp.effective;
    memcpy(words, sp.words, sizeof words);
    setpoint_format_value(req, sizeof req, &p, value);
    setpoint_format_value(wrote, sizeof wrote, &p, effective);
    devconn_defaults_t modbus = devconn_defaults_from_config(cfg);
    mbio_t *m = mbio_open(&p, &modbus, err, sizeof err);
    if (!m) {
        fprintf(stderr, "aldrec: set %s: %s; nothing written\n", p.qualified, err);
        return 1;
    }
    if (mbio_read(m, &p, before, err, sizeof err) == Q_GOOD)
        setpoint_format_value(was, sizeof was, &p, mbio_value(&p, before));
    int16_t q = mbio_write(m, &p, words, err, sizeof err);
    if (q != Q_GOOD) {
        mbio_close(m);
        fprintf(stderr, "aldrec: set %s: %s (quality %d %s)\n", p.qualified, err, q,
                quality_name(q));
        return 1;
    }
    ctlrec_event_t ev = {
        .parameter_id = p.id,
        .ts_us = clock_real_us(),
        .requested = value,
    };
    cli_who_asked(ev.requested_by, sizeof ev.requested_by, by);
    ev.quality = mbio_read(m, &p, back, err, sizeof err);
    mbio_close(m);
    int status = 0;
    if (ev.quality != Q_GOOD) {
        fprintf(stderr, "aldrec: set %s: wrote %s but could not read it back: %s\n",
                p.qualified, wrote, err);
        status = 1;
    } else {
        ev.has_readback = true;
        ev.readback = mbio_value(&p, back);
        setpoint_format_value(got, sizeof got, &p, ev.readback);
        int n = p.type == DT_BOOL ? 1 : regcodec_words(p.type);
        bool same = p.type == DT_BOOL ? (back[0] != 0) == (words[0] != 0)
                                      : memcmp(back, words, (size_t)n * sizeof *words) == 0;
        if (!same) {
            fprintf(stderr, "aldrec: set %s: read-back mismatch: wrote %s, device reports %s\n",
                    p.qualified, wrote, got);
            status = 1;
        } else {
            if (effective != value)
                printf("%s: %s -> %s (requested %s; the nearest value the device holds),"
                       " read back %s\n", p.qualified, was, wrote, req, got);
            else
                printf("%s: %s -> %s, read back %s\n", p.qualified, was, wrote, got);
        }
    }
    fflush(stdout);
    /* without aldrecd nothing records it: say so */
    fprintf(stderr, "aldrec: set %s: not recorded as a set-point event (--direct)\n",
            p.qualified);
    return status;
}

/* True when aldrecd answers PING: it is then the devices' master and no
 * direct connection is opened. */
static bool daemon_running(const aldrec_config_t *cfg)
{
    char reply[256], err[256];
    return ctl_request(cfg->socket_path, "PING", reply, sizeof reply, 1000, err,
                       sizeof err) >= 0;
}

/* --direct: refused while aldrecd runs. Returns 0 to go on, else the exit. */
static int direct_allowed(const aldrec_config_t *cfg, const char *cmd)
{
    if (!daemon_running(cfg))
        return 0;
    fprintf(stderr, "aldrec: %s --direct: aldrecd is running and is the devices' one Modbus"
            " master; nothing sent (use aldrec %s without --direct)\n", cmd, cmd);
    return 1;
}

static bool has_opt(int argc, char **argv, const char *a, const char *b)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0 || argv[i][0] != '-')
            return false;
        if (strcmp(argv[i], a) == 0 || (b && strcmp(argv[i], b) == 0))
            return true;
    }
    return false;
}

int cmd_param_get_full(const aldrec_config_t *cfg, int argc, char **argv)
{
    if (has_opt(argc, argv, "--direct", NULL)) {
        int rc = direct_allowed(cfg, "get");
        return rc ? rc : direct_get(cfg, argc, argv);
    }
    /* -v: the metadata as the tools' cache has it (no device access) */
    bool verbose = has_opt(argc, argv, "-v", "--verbose");
    for (int i = 1; verbose && i < argc; i++) {
        param_meta_t p;
        if (argv[i][0] != '-')
            metadata_of(cfg, argv[i], &p, "get", true);
    }
    return cmd_param_get(cfg, argc, argv);
}

int cmd_param_set_full(const aldrec_config_t *cfg, int argc, char **argv)
{
    if (has_opt(argc, argv, "--direct", "--unrecorded")) {
        int rc = direct_allowed(cfg, "set");
        return rc ? rc : direct_set(cfg, argc, argv);
    }
    return cmd_param_set(cfg, argc, argv);
}
