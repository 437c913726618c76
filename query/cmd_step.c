/* cmd_step.c — aldrec process step NUMBER NAME: a recipe step tells aldrecd
 * that step NUMBER begins now. aldrecd timestamps it with the clock its
 * samples use and sends it through the spool like the samples (record kind
 * STEPS, table process_steps), so a step marker is as durable as the data
 * around it and never needs the database to be up. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "ctl.h"
#include "qtext.h"

/* A step name travels on one line of the control protocol and is shown in
 * tables and plots: printable text, no control characters. */
#define STEP_NAME_MAX 200

int cmd_process_step(const aldrec_config_t *cfg, int argc, char **argv)
{
    char line[512], reply[512], err[512];
    long long no;

    if (argc != 3)
        return cli_usage_error("process step: expected NUMBER NAME (quote a name with spaces)");
    if (qtext_int(argv[1], 0, 2147483647, &no) < 0)
        return cli_usage_error("process step: NUMBER must be an integer in 0..2147483647, got \"%s\"",
                               argv[1]);
    const char *name = argv[2];
    size_t len = strlen(name);
    if (len == 0 || len > STEP_NAME_MAX)
        return cli_usage_error("process step: NAME must be 1..%d bytes, got %zu", STEP_NAME_MAX, len);
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return cli_usage_error("process step: NAME contains a control character (byte %zu)",
                                   (size_t)(p - (const unsigned char *)name) + 1);
    if (name[0] == ' ' || name[len - 1] == ' ')
        return cli_usage_error("process step: NAME must not begin or end with a space: \"%s\"", name);

    snprintf(line, sizeof line, "STEP %lld %s", no, name);
    int rc = ctl_request(cfg->socket_path, line, reply, sizeof reply, CLI_CTL_TIMEOUT_MS,
                         err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "aldrec: %s\n", err);
        return 1;
    }
    if (rc == 1) {
        fprintf(stderr, "aldrec: %s", reply + 4);
        return 1;
    }
    fputs(reply[2] == ' ' ? reply + 3 : reply + 2, stdout);
    return 0;
}
