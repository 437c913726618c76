/* cmd_spool.c — aldrec spool quarantine list|retry|drop: batches PostgreSQL
 * refused for good, kept in the spool with its error text.
 *
 * aldrecd is the only writer of the spool, so retry and drop go through its
 * control socket. list asks aldrecd too, and reads the spool file read-only
 * when aldrecd is not running. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/ctl.h"
#include "store/spool.h"
#include "common/utc.h"
#include "store/records.h"

#define REPLY_CAP (512 * 1024)

static void print_header(void)
{
    printf("%-8s %-7s %-9s %7s  %-23s  %-23s  %s\n", "SEQ", "KIND", "PROCESS", "ROWS",
           "FIRST SAMPLE (UTC)", "QUARANTINED (UTC)", "ERROR");
}

static void print_entry(const spool_qentry_t *e)
{
    char first[40], when[40];
    utc_format(e->first_ts_us, UTC_TABLE_MS, first, sizeof first);
    utc_format(e->quarantined_us, UTC_TABLE_MS, when, sizeof when);
    printf("%-8lld %-7s %-9lld %7u  %-23s  %-23s  %s\n", (long long)e->seq,
           records_name(e->kind), (long long)e->process_id, e->rows, first, when, e->error);
}

static void print_cb(void *arg, const spool_qentry_t *e)
{
    (void)arg;
    print_entry(e);
}

/* One line of aldrecd's QUARANTINE LIST answer (see aldrecd.c). */
static int parse_line(char *line, spool_qentry_t *e)
{
    char *f[8];
    for (int i = 0; i < 8; i++) {
        f[i] = strsep(&line, "\t");
        if (!f[i])
            return -1;
    }
    *e = (spool_qentry_t){
        .seq = strtoll(f[0], NULL, 10),
        .process_id = strtoll(f[2], NULL, 10),
        .rows = (uint32_t)strtoul(f[3], NULL, 10),
        .first_ts_us = strtoll(f[4], NULL, 10),
        .last_ts_us = strtoll(f[5], NULL, 10),
        .quarantined_us = strtoll(f[6], NULL, 10),
    };
    e->kind = (enum batch_kind)records_by_name(f[1]);
    snprintf(e->error, sizeof e->error, "%s", f[7]);
    return 0;
}

static int list_offline(const aldrec_config_t *cfg, const char *why)
{
    char err[512];
    spool_t *sp = spool_open_readonly(cfg->spool_path, err, sizeof err);
    if (!sp) {
        fprintf(stderr, "aldrec: %s; and reading the spool directly failed: %s\n", why, err);
        return 1;
    }
    printf("(aldrecd is not running: read from %s)\n", cfg->spool_path);
    print_header();
    long n = spool_quarantine_list(sp, print_cb, NULL, err, sizeof err);
    spool_close(sp);
    if (n < 0) {
        fprintf(stderr, "aldrec: %s\n", err);
        return 1;
    }
    printf("%ld quarantined batch%s\n", n, n == 1 ? "" : "es");
    return 0;
}

static int quarantine_list(const aldrec_config_t *cfg)
{
    char err[512];
    char *reply = malloc(REPLY_CAP);
    if (!reply)
        return cli_fail("out of memory");
    int rc = ctl_request(cfg->socket_path, "QUARANTINE LIST", reply, REPLY_CAP,
                         CLI_CTL_TIMEOUT_MS, err, sizeof err);
    if (rc < 0) {
        free(reply);
        return list_offline(cfg, err);
    }
    if (rc == 1) {
        fprintf(stderr, "aldrec: %s", reply + 4);
        free(reply);
        return 1;
    }
    long n = strtol(reply + 3, NULL, 10);
    char *p = strchr(reply, '\n');
    print_header();
    long shown = 0;
    while (p && *++p) {
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        spool_qentry_t e;
        if (parse_line(p, &e) == 0) {
            print_entry(&e);
            shown++;
        }
        p = nl;
    }
    if (shown < n)
        printf("... and %ld more\n", n - shown);
    printf("%ld quarantined batch%s\n", n, n == 1 ? "" : "es");
    free(reply);
    return 0;
}

static int quarantine_change(const aldrec_config_t *cfg, const char *verb, const char *which)
{
    char line[128], reply[1024], err[512];
    if (strcmp(which, "all") != 0 && strspn(which, "0123456789") != strlen(which))
        return cli_usage_error("spool quarantine %s: expected a batch number (SEQ) or \"all\","
                               " got \"%s\"", verb, which);
    snprintf(line, sizeof line, "QUARANTINE %s %s", strcmp(verb, "retry") == 0 ? "RETRY" : "DROP",
             which);
    int rc = ctl_request(cfg->socket_path, line, reply, sizeof reply, CLI_CTL_TIMEOUT_MS, err,
                         sizeof err);
    if (rc < 0) {
        fprintf(stderr, "aldrec: %s (%s needs aldrecd: it is the only writer of the spool)\n",
                err, verb);
        return 1;
    }
    fputs(reply + (rc == 0 ? 3 : 4), rc == 0 ? stdout : stderr);
    return rc == 0 ? 0 : 1;
}

int cmd_spool_quarantine(const aldrec_config_t *cfg, int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error("spool quarantine: expected list, retry SEQ|all or drop SEQ|all");
    const char *verb = argv[1];
    if (strcmp(verb, "list") == 0) {
        if (argc > 2)
            return cli_usage_error("spool quarantine list: unexpected argument \"%s\"", argv[2]);
        return quarantine_list(cfg);
    }
    if (strcmp(verb, "retry") == 0 || strcmp(verb, "drop") == 0) {
        if (argc != 3)
            return cli_usage_error("spool quarantine %s: expected SEQ or \"all\"", verb);
        return quarantine_change(cfg, verb, argv[2]);
    }
    return cli_usage_error("spool quarantine: expected list, retry or drop, got \"%s\"", verb);
}
