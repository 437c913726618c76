/* cmd_param.c — aldrec get|set COMPONENT.PARAM through aldrecd, the
 * devices' one Modbus master: one request on its control socket (SET, GET;
 * docs/protocol.md). aldrecd checks a set point against its parameter map,
 * has the device's thread write it between two poll requests, reads it
 * back and appends the set-point event to its spool before it answers, so
 * `aldrec set` exits 0 only once the event is durable there.
 *
 * Part of the front program (aldrec.c): nothing here may need libpq, Redis
 * or libmodbus, so that a recipe step pays for one socket request and
 * little else. --direct and -v (the metadata cache, a Modbus connection of
 * their own) are cmd_direct.c's, in aldrec-full. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "store/ctlrec.h"
#include "common/ctl.h"

#define DAEMON_REPLY_MAX 16384

/* Sends line; returns what ctl_request does, having said why on -1. */
static int daemon_request(const aldrec_config_t *cfg, const char *cmd, const char *line,
                          char *reply, size_t cap)
{
    char err[512];
    int rc = ctl_request(cfg->socket_path, line, reply, cap, CLI_CTL_TIMEOUT_MS, err, sizeof err);
    if (rc < 0)
        fprintf(stderr, "aldrec: %s: %s; nothing sent (without aldrecd, --direct uses a"
                " connection of its own%s)\n", cmd, err,
                strcmp(cmd, "set") == 0 ? ", unrecorded" : "");
    return rc;
}

int cmd_param_get(const aldrec_config_t *cfg, int argc, char **argv)
{
    static const struct option opts[] = {
        { "verbose", no_argument, NULL, 'v' },
        { "direct", no_argument, NULL, 'd' },
        { "fresh", no_argument, NULL, 'f' },
        { NULL, 0, NULL, 0 },
    };
    bool fresh = false;
    char line[512], reply[DAEMON_REPLY_MAX];
    int opt;
    optind = 1;
    /* -v: aldrec-full printed the cache's metadata (cmd_param_get_full) */
    while ((opt = getopt_long(argc, argv, "+v", opts, NULL)) != -1) {
        if (opt == 'f')
            fresh = true;
        else if (opt != 'v')
            return cli_usage_error("get: bad option");
    }
    if (optind >= argc)
        return cli_usage_error("get: expected COMPONENT.PARAM [COMPONENT.PARAM ...]");
    int used = snprintf(line, sizeof line, "GET%s", fresh ? " FRESH" : "");
    for (int i = optind; i < argc; i++) {
        if (strchr(argv[i], ' ') || strchr(argv[i], '\n'))
            return cli_usage_error("get: \"%s\" is not COMPONENT.PARAM", argv[i]);
        used += snprintf(line + used, sizeof line - (size_t)used, " %s", argv[i]);
        if (used >= (int)sizeof line)
            return cli_usage_error("get: too many parameters for one request");
    }
    int rc = daemon_request(cfg, "get", line, reply, sizeof reply);
    if (rc < 0)
        return 1;
    char *nl = strchr(reply, '\n');
    if (rc == 1 && strncmp(reply, "ERR input: ", 11) == 0) {
        fprintf(stderr, "aldrec: %.*s\n", (int)(nl ? nl - reply - 11 : (long)strlen(reply + 11)),
                reply + 11);
        return 2;
    }
    /* NAME VALUE QUALITY QUALITY_NAME AGE_MS TEXT, or "failed NAME: why" */
    for (char *l = nl ? nl + 1 : NULL; l && *l; ) {
        char *end = strchr(l, '\n');
        if (end)
            *end = '\0';
        char *f[6] = { 0 };
        int nf = 0;
        for (char *t = l; nf < 6; nf++) {
            f[nf] = t;
            char *tab = strchr(t, '\t');
            if (!tab) {
                nf++;
                break;
            }
            *tab = '\0';
            t = tab + 1;
        }
        if (nf == 6 && fresh)
            printf("%s = %s (quality %s %s)\n", f[0], f[5], f[2], f[3]);
        else if (nf == 6)
            printf("%s = %s (quality %s %s, %s ms old)\n", f[0], f[5], f[2], f[3], f[4]);
        else
            fprintf(stderr, "aldrec: get: %s\n", strncmp(l, "failed ", 7) == 0 ? l + 7 : l);
        l = end ? end + 1 : NULL;
    }
    if (rc == 1)
        return 1;
    return 0;
}

int cmd_param_set(const aldrec_config_t *cfg, int argc, char **argv)
{
    static const struct option opts[] = {
        { "verbose", no_argument, NULL, 'v' },
        { "by", required_argument, NULL, 'b' },
        { "direct", no_argument, NULL, 'd' },
        { "unrecorded", no_argument, NULL, 'u' },
        { NULL, 0, NULL, 0 },
    };
    const char *by = NULL;
    char line[512], reply[DAEMON_REPLY_MAX], who[256], err[512];
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "+v", opts, NULL)) != -1) {
        if (opt == 'b')
            by = optarg;
        else if (opt != 'v')
            return cli_usage_error("set: bad option");
    }
    /* --by after the set points too ("+" above keeps "-5" a value) */
    int k = optind;
    for (int i = optind; i < argc; i++) {
        if (strcmp(argv[i], "--by") == 0 && i + 1 < argc)
            by = argv[++i];
        else if (strncmp(argv[i], "--by=", 5) == 0)
            by = argv[i] + 5;
        else if (strcmp(argv[i], "-v") == 0 || strcmp(argv[i], "--verbose") == 0)
            ;
        else
            argv[k++] = argv[i];
    }
    argc = k;
    int nops = argc - optind;
    bool single = nops == 2 && !strchr(argv[optind], '=');
    if (nops < 1 || (!single && nops == 2 && !strchr(argv[optind + 1], '=')))
        return cli_usage_error("set: expected COMPONENT.PARAM VALUE or COMPONENT.PARAM=VALUE ...");
    if (by && ctlrec_check_text("--by", by, err, sizeof err) < 0)
        return cli_usage_error("set: %s", err);
    cli_who_asked(who, sizeof who, by);
    int used = snprintf(line, sizeof line, "SET");
    for (int i = optind; i < argc; i += single ? 2 : 1) {
        const char *a = argv[i];
        if (strchr(a, ' ') || strchr(a, '\n') || (single && strchr(argv[i + 1], ' ')))
            return cli_usage_error("set: \"%s\": no spaces in a set point", a);
        if (!single && !strchr(a, '='))
            return cli_usage_error("set: expected COMPONENT.PARAM=VALUE, got \"%s\"", a);
        used += single ? snprintf(line + used, sizeof line - (size_t)used, " %s=%s", a, argv[i + 1])
                       : snprintf(line + used, sizeof line - (size_t)used, " %s", a);
        if (used >= (int)sizeof line)
            return cli_usage_error("set: too many set points for one request");
    }
    used += snprintf(line + used, sizeof line - (size_t)used, " BY %s", who);
    if (used >= (int)sizeof line)
        return cli_usage_error("set: too many set points for one request");
    int rc = daemon_request(cfg, "set", line, reply, sizeof reply);
    if (rc < 0)
        return 1;
    char *nl = strchr(reply, '\n');
    if (nl)
        *nl = '\0';
    if (rc == 1 && strncmp(reply, "ERR input: ", 11) == 0) {
        fprintf(stderr, "aldrec: %s\n", reply + 11);
        return 2;
    }
    for (char *l = nl ? nl + 1 : NULL; l && *l; ) {
        char *end = strchr(l, '\n');
        if (end)
            *end = '\0';
        if (strncmp(l, "ok ", 3) == 0)
            printf("%s\n", l + 3);
        else if (strncmp(l, "failed ", 7) == 0)
            fprintf(stderr, "aldrec: set %s\n", l + 7);
        else if (strncmp(l, "skipped ", 8) == 0)
            fprintf(stderr, "aldrec: set %s\n", l + 8);
        l = end ? end + 1 : NULL;
    }
    if (rc == 1 && !(nl && nl[1]))
        fprintf(stderr, "aldrec: set: %s\n", reply + 4);
    else if (rc == 1 && single == false)
        fprintf(stderr, "aldrec: set: %s\n", reply + 4);
    return rc == 1 ? 1 : 0;
}
