/* cmd_step.c — aldrec process step NUMBER NAME: a recipe step tells aldrecd
 * that step NUMBER begins now. aldrecd timestamps it with the clock its
 * samples use and sends it through the spool like the samples (record kind
 * STEPS, table process_steps; control command STEP, store/ctlrec.h), so
 * a step marker is as durable as the data around it and never needs the
 * database to be up. It answers once the marker is durable in the spool. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "store/ctlrec.h"
#include "query/qtext.h"

int cmd_process_step(const aldrec_config_t *cfg, int argc, char **argv)
{
    char line[512], reply[512], err[512];
    long long no;
    ctlrec_step_t st;

    if (argc != 3)
        return cli_usage_error("process step: expected NUMBER NAME (quote a name with spaces)");
    if (qtext_int(argv[1], 0, 2147483647, &no) < 0)
        return cli_usage_error("process step: NUMBER must be an integer in 0..2147483647, got \"%s\"",
                               argv[1]);
    if (ctlrec_check_text("NAME", argv[2], err, sizeof err) < 0)
        return cli_usage_error("process step: %s", err);
    st.step_no = (int32_t)no;
    snprintf(st.name, sizeof st.name, "%s", argv[2]);
    if (ctlrec_step_line(&st, line, sizeof line, err, sizeof err) < 0)
        return cli_usage_error("process step: %s", err);
    if (cli_ctl(cfg, line, reply, sizeof reply, CLI_CTL_TIMEOUT_MS, NULL) != 0)
        return 1;
    fputs(reply[2] == ' ' ? reply + 3 : reply + 2, stdout);
    return 0;
}
