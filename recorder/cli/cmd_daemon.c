/* cmd_daemon.c — aldrec status and aldrec metrics: what aldrecd is doing,
 * from its control socket. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/ctl.h"

int cmd_status(const aldrec_config_t *cfg, int argc, char **argv)
{
    char reply[16384], err[512];   /* aldrecd answers at most 16 KiB */
    if (argc > 1)
        return cli_usage_error("status: unexpected argument \"%s\"", argv[1]);
    int rc = ctl_request(cfg->socket_path, "STATUS", reply, sizeof reply, CLI_CTL_TIMEOUT_MS,
                         err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "aldrec: %s\n", err);
        return 1;
    }
    char *body = strchr(reply, '\n');
    fputs(body ? body + 1 : reply, rc == 0 ? stdout : stderr);
    return rc == 0 ? 0 : 1;
}


/* The exposition can be large (a few KiB per device). */
#define METRICS_MAX (4u << 20)

int cmd_metrics(const aldrec_config_t *cfg, int argc, char **argv)
{
    char err[512];
    if (argc > 1)
        return cli_usage_error("metrics: unexpected argument \"%s\"", argv[1]);
    char *reply = malloc(METRICS_MAX);
    if (!reply)
        return cli_fail("metrics: out of memory");
    int rc = ctl_request(cfg->socket_path, "METRICS", reply, METRICS_MAX, CLI_CTL_TIMEOUT_MS,
                         err, sizeof err);
    if (rc < 0) {
        free(reply);
        fprintf(stderr, "aldrec: %s\n", err);
        return 1;
    }
    char *body = strchr(reply, '\n');
    fputs(body ? body + 1 : reply, rc == 0 ? stdout : stderr);
    free(reply);
    return rc == 0 ? 0 : 1;
}
