/* aldrec.c — command-line tool for recipe steps, operators and engineers.
 *
 *   aldrec [--config FILE] COMMAND [SUBCOMMAND] [ARGS...]
 *
 * This file only parses the global options, loads the config and routes to
 * the command, found in the table below; the commands live in cmd_*.c files
 * (see cli.h for their contract).
 *
 * Exit status: 0 success; 1 the operation failed (daemon not running,
 * database error); 2 bad usage or bad configuration. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/config.h"

#ifndef ALDREC_SYSCONFDIR
#define ALDREC_SYSCONFDIR "/etc"
#endif
#define DEFAULT_CONFIG ALDREC_SYSCONFDIR "/aldrec/aldrec.conf"

struct command {
    const char *name;        /* first word */
    const char *sub;         /* second word, or NULL for one-word commands */
    cli_cmd_fn fn;
    const char *args;        /* for the usage text */
    const char *help;
};

static const struct command commands[] = {
    { .name = "process", .sub = "start", .fn = cmd_process_start,
      .args = "--recipe NAME [--lot ID]", .help = "open a process and start recording" },
    { .name = "process", .sub = "stop", .fn = cmd_process_stop,
      .args = "", .help = "stop recording; returns once stored" },
    { .name = "process", .sub = "step", .fn = cmd_process_step,
      .args = "NUMBER NAME", .help = "mark the start of recipe step NUMBER" },
    { .name = "status", .fn = cmd_status,
      .args = "", .help = "what aldrecd is doing, its health and alerts" },
    { .name = "metrics", .fn = cmd_metrics,
      .args = "", .help = "aldrecd's metrics (Prometheus text, as on /metrics)" },
    { .name = "get", .fn = cmd_param_get,
      .args = "[-v] COMPONENT.PARAM", .help = "live value of a parameter, with units and quality" },
    { .name = "set", .fn = cmd_param_set,
      .args = "[-v] [--by WHO] [--unrecorded] COMPONENT.PARAM VALUE",
      .help = "change a set point (checked, written, read back, recorded)" },
    { .name = "spool", .sub = "quarantine", .fn = cmd_spool_quarantine,
      .args = "list|retry|drop [SEQ|all]",
      .help = "batches PostgreSQL refused: show, resend, give up" },
    { .name = "db", .sub = "migrate", .fn = cmd_db_migrate,
      .args = "[--sql-dir DIR]", .help = "apply pending schema migrations (admin role)" },
    { .name = "db", .sub = "maintain", .fn = cmd_db_maintain,
      .args = "", .help = "create partitions ahead, drop expired ones (admin role)" },
    { .name = "runs", .fn = cmd_runs,
      .args = "[--recipe R] [--since T] [--machine M] [--limit N] [--format table|csv|json]",
      .help = "recent processes" },
    { .name = "export", .fn = cmd_export,
      .args = "--process ID [--before DUR] | --machine M --from T --to T; [--param A,B]"
              " [--step N] [--from T] [--to T] [--every DUR]"
              " [--format csv|json] [--layout wide|long] [-o FILE]",
      .help = "a run's or a machine window's samples (bucketed with --every)" },
    { .name = "summary", .fn = cmd_summary,
      .args = "--process ID [--param A,B] [--step N] [--format table|json]",
      .help = "per-parameter, per-step statistics" },
    { .name = "plot", .fn = cmd_plot,
      .args = "--process ID [--before DUR] | --machine M --from T --to T; --param A,B"
              " [--step N] [--from T] [--to T] [--width PX] -o FILE.svg",
      .help = "an SVG chart of a run, or of a machine's history" },
    { .name = "web", .fn = cmd_web,
      .args = "", .help = "serve the run, compare and runs pages ([web] listen)" },
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f)
{
    fputs("usage: aldrec [--config FILE] COMMAND ...\n\n", f);
    for (size_t i = 0; i < NCOMMANDS; i++) {
        const struct command *c = &commands[i];
        char left[256];
        snprintf(left, sizeof left, "%s%s%s %s", c->name, c->sub ? " " : "",
                 c->sub ? c->sub : "", c->args);
        if (strlen(left) > 44)
            fprintf(f, "  %s\n  %-44s %s\n", left, "", c->help);
        else
            fprintf(f, "  %-44s %s\n", left, c->help);
    }
    fputs("\nFILE defaults to $ALDREC_CONFIG, then " DEFAULT_CONFIG ".\n"
          "Exit status: 0 success, 1 failure, 2 bad usage or configuration.\n", f);
}

int main(int argc, char **argv)
{
    const char *config_path = getenv("ALDREC_CONFIG");
    aldrec_config_t cfg;
    char err[512];
    int i = 1;

    if (!config_path)
        config_path = DEFAULT_CONFIG;
    while (i < argc && argv[i][0] == '-') {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config_path = argv[i + 1];
            i += 2;
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            config_path = argv[i] + 9;
            i++;
        } else {
            return cli_usage_error("unknown option \"%s\"", argv[i]);
        }
    }
    if (i >= argc)
        return cli_usage_error("missing command");

    const char *name = argv[i];
    const char *sub = i + 1 < argc ? argv[i + 1] : "";
    const struct command *found = NULL;
    int known_name = 0;
    for (size_t k = 0; k < NCOMMANDS && !found; k++) {
        if (strcmp(commands[k].name, name) != 0)
            continue;
        known_name = 1;
        if (!commands[k].sub || strcmp(commands[k].sub, sub) == 0)
            found = &commands[k];
    }
    if (!found) {
        if (!known_name)
            return cli_usage_error("unknown command \"%s\"", name);
        char subs[256] = "";
        for (size_t k = 0; k < NCOMMANDS; k++)
            if (strcmp(commands[k].name, name) == 0 && commands[k].sub)
                snprintf(subs + strlen(subs), sizeof subs - strlen(subs), "%s\"%s\"",
                         subs[0] ? ", " : "", commands[k].sub);
        return cli_usage_error("%s: expected %s, got \"%s\"", name, subs, sub);
    }
    /* Configuration errors end every command the same way: exit 2. */
    if (config_load(&cfg, config_path, err, sizeof err) < 0) {
        fprintf(stderr, "aldrec: %s\n", err);
        return 2;
    }
    int skip = found->sub ? 1 : 0;
    return found->fn(&cfg, argc - i - skip, argv + i + skip);
}
