/* cli.c — helpers shared by the aldrec subcommands; see cli.h. The
 * front program links this file: nothing here needs libpq (cli_db.c). */
#include "cli/cli.h"

#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/ctl.h"

/* "aldrec: MESSAGE" and then tail, on stderr. */
static void say(const char *tail, const char *fmt, va_list ap)
{
    fputs("aldrec: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(tail, stderr);
}

int cli_usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    say("\nTry 'aldrec --help'.\n", fmt, ap);
    va_end(ap);
    return 2;
}

int cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    say("\n", fmt, ap);
    va_end(ap);
    return 1;
}

int cli_ctl(const aldrec_config_t *cfg, const char *line, char *reply, size_t cap,
            int timeout_ms, const char *what)
{
    char err[512];
    int rc = ctl_request(cfg->socket_path, line, reply, cap, timeout_ms, err, sizeof err);
    if (rc == 0)
        return 0;
    const char *why = rc < 0 ? err : reply + 4;   /* after "ERR " */
    fprintf(stderr, "aldrec: %s%s%.*s\n", what ? what : "", what ? ": " : "",
            (int)strcspn(why, "\n"), why);
    return 1;
}

void cli_who_asked(char *buf, size_t cap, const char *by)
{
    char host[64] = "?";
    if (by) {
        snprintf(buf, cap, "%s", by);
        return;
    }
    const struct passwd *pw = getpwuid(geteuid());
    gethostname(host, sizeof host - 1);
    snprintf(buf, cap, "%s@%s via aldrec set", pw ? pw->pw_name : "?", host);
    for (char *s = buf; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            *s = '?';
}
