/* aldrec.c — command-line tool for recipe steps, operators and engineers.
 *
 *   aldrec [--config FILE] COMMAND [SUBCOMMAND] [ARGS...]
 *
 * This file only parses the global options, loads the config and routes to
 * the command, found in the table below; the commands live in cmd_*.c files
 * (see cli.h for their contract).
 *
 * It is built twice, as one command for the user:
 *   aldrec       (-DALDREC_FRONT) runs the commands that only talk to
 *                aldrecd's control socket (status, metrics, get, set,
 *                process step: the .front column) and links neither libpq
 *                nor Redis, SQLite or libmodbus — a recipe step's set point
 *                pays for a socket request, not for loading libpq with its
 *                TLS, Kerberos and LDAP chain (≈ 7 ms). For every other
 *                command, and for get/set with an option in .full_opts, it
 *                execs aldrec-full with the same arguments;
 *   aldrec-full  every command (.fn, else .front), found beside aldrec (the
 *                build tree) or in ALDREC_LIBEXECDIR (installed).
 * The front's link has no libpq, so a socket command that reached for the
 * database would fail to link (docs/ARCH.md "The command-line tool").
 *
 * Exit status: 0 success; 1 the operation failed (daemon not running,
 * database error); 2 bad usage or bad configuration. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/config.h"

#ifndef ALDREC_SYSCONFDIR
#define ALDREC_SYSCONFDIR "/etc"
#endif
#define DEFAULT_CONFIG ALDREC_SYSCONFDIR "/aldrec/aldrec.conf"
#ifndef ALDREC_LIBEXECDIR
#define ALDREC_LIBEXECDIR "/usr/local/libexec/aldrec"
#endif

/* FULL(f): a function of aldrec-full; the front does not link it. */
#ifdef ALDREC_FRONT
#define FULL(f) NULL
#else
#define FULL(f) f
#endif

struct command {
    const char *name;        /* first word */
    const char *sub;         /* second word, or NULL for one-word commands */
    cli_cmd_fn front;        /* runs in the front program (socket only), or NULL */
    cli_cmd_fn fn;           /* aldrec-full's (NULL: .front) */
    const char *full_opts;   /* " OPT ... ": options before the operands that
                                need aldrec-full although .front is set */
    const char *args;        /* for the usage text */
    const char *help;
};

static const struct command commands[] = {
    { .name = "process", .sub = "start", .fn = FULL(cmd_process_start),
      .args = "--recipe NAME [--lot ID]", .help = "open a process and start recording" },
    { .name = "process", .sub = "stop", .fn = FULL(cmd_process_stop),
      .args = "", .help = "stop recording; returns once stored" },
    { .name = "process", .sub = "step", .front = cmd_process_step,
      .args = "NUMBER NAME", .help = "mark the start of recipe step NUMBER" },
    { .name = "status", .front = cmd_status,
      .args = "", .help = "what aldrecd is doing, its health and alerts" },
    { .name = "metrics", .front = cmd_metrics,
      .args = "", .help = "aldrecd's metrics (Prometheus text, as on /metrics)" },
    { .name = "get", .front = cmd_param_get, .fn = FULL(cmd_param_get_full),
      .full_opts = " --direct -v --verbose ",
      .args = "[-v] COMPONENT.PARAM", .help = "live value of a parameter, with units and quality" },
    { .name = "set", .front = cmd_param_set, .fn = FULL(cmd_param_set_full),
      .full_opts = " --direct --unrecorded ",
      .args = "[-v] [--by WHO] [--unrecorded] COMPONENT.PARAM VALUE",
      .help = "change a set point (checked, written, read back, recorded)" },
    { .name = "spool", .sub = "quarantine", .fn = FULL(cmd_spool_quarantine),
      .args = "list|retry|drop [SEQ|all]",
      .help = "batches PostgreSQL refused: show, resend, give up" },
    { .name = "db", .sub = "migrate", .fn = FULL(cmd_db_migrate),
      .args = "[--sql-dir DIR]", .help = "apply pending schema migrations (admin role)" },
    { .name = "db", .sub = "maintain", .fn = FULL(cmd_db_maintain),
      .args = "", .help = "create partitions ahead, drop expired ones (admin role)" },
    { .name = "runs", .fn = FULL(cmd_runs),
      .args = "[--recipe R] [--since T] [--machine M] [--limit N] [--format table|csv|json]",
      .help = "recent processes" },
    { .name = "export", .fn = FULL(cmd_export),
      .args = "--process ID [--before DUR] | --machine M --from T --to T; [--param A,B]"
              " [--step N] [--from T] [--to T] [--every DUR]"
              " [--format csv|json] [--layout wide|long] [-o FILE]",
      .help = "a run's or a machine window's samples (bucketed with --every)" },
    { .name = "summary", .fn = FULL(cmd_summary),
      .args = "--process ID [--param A,B] [--step N] [--format table|json]",
      .help = "per-parameter, per-step statistics" },
    { .name = "plot", .fn = FULL(cmd_plot),
      .args = "--process ID [--before DUR] | --machine M --from T --to T; --param A,B"
              " [--step N] [--from T] [--to T] [--width PX] -o FILE.svg",
      .help = "an SVG chart of a run, or of a machine's history" },
    { .name = "web", .fn = FULL(cmd_web),
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

#ifdef ALDREC_FRONT
/* True when one of c's full_opts comes before its first operand (after
 * "--" nothing is an option), as the command's own parsing sees it. */
static int wants_full(const struct command *c, int argc, char **argv)
{
    char word[64];
    if (!c->front)
        return 1;
    for (int i = 1; c->full_opts && i < argc; i++) {
        if (strcmp(argv[i], "--") == 0 || argv[i][0] != '-')
            return 0;
        snprintf(word, sizeof word, " %.*s ", (int)strcspn(argv[i], "="), argv[i]);
        if (strstr(c->full_opts, word))
            return 1;
    }
    return 0;
}

/* Runs aldrec-full with this program's arguments: beside this program (the
 * build tree), else in ALDREC_LIBEXECDIR. Returns 1 only when it cannot. */
static int exec_full(char **argv)
{
    char self[PATH_MAX], path[PATH_MAX + 16];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = '\0';
            snprintf(path, sizeof path, "%s/aldrec-full", self);
            if (access(path, X_OK) == 0)
                execv(path, argv);
        }
    }
    snprintf(path, sizeof path, "%s", ALDREC_LIBEXECDIR "/aldrec-full");
    execv(path, argv);
    return cli_fail("cannot run %s: %s", path, strerror(errno));
}
#endif

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
    int skip = found->sub ? 1 : 0;
#ifdef ALDREC_FRONT
    if (wants_full(found, argc - i - skip, argv + i + skip))
        return exec_full(argv);
    cli_cmd_fn fn = found->front;
#else
    cli_cmd_fn fn = found->fn ? found->fn : found->front;
#endif
    /* Configuration errors end every command the same way: exit 2. */
    if (config_load(&cfg, config_path, err, sizeof err) < 0) {
        fprintf(stderr, "aldrec: %s\n", err);
        return 2;
    }
    return fn(&cfg, argc - i - skip, argv + i + skip);
}
