/* cmd_web.c — aldrec web: serve the trend pages (web/webd.h) until
 * SIGINT or SIGTERM. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "web/webd.h"

#ifndef ALDREC_WEBDIR
#define ALDREC_WEBDIR "/usr/local/share/aldrec/web"
#endif
#ifndef ALDREC_BUILD_WEBDIR
#define ALDREC_BUILD_WEBDIR ALDREC_WEBDIR
#endif

int cmd_web(const aldrec_config_t *cfg, int argc, char **argv)
{
    (void)argv;
    if (argc > 1)
        return cli_usage_error("web takes no arguments (the [web] section sets it up)");
    char host[64];
    int port;
    int lst = config_parse_listen(cfg->web_listen, host, sizeof host, &port);
    if (lst == 1)
        return cli_usage_error("web: [web] listen is off");
    if (lst < 0)
        return cli_usage_error("web: [web] listen: cannot read \"%s\"", cfg->web_listen);
    /* The installed pages, or this build's when running from a checkout. */
    struct stat st;
    const char *root = cfg->web_root[0] ? cfg->web_root
                       : stat(ALDREC_WEBDIR "/index.html", &st) == 0 ? ALDREC_WEBDIR
                                                                    : ALDREC_BUILD_WEBDIR;
    if (stat(root, &st) < 0 || !S_ISDIR(st.st_mode))
        return cli_fail("web: [web] root: %s is not a directory", root);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);   /* the server's threads inherit it */
    webd_opts_t o = {
        .host = host, .port = port, .conninfo = cfg->reader_conninfo,
        .connect_timeout_s = cfg->connect_timeout_s, .pool = cfg->web_pool, .root = root,
    };
    char err[512];
    webd_t *w = webd_start(&o, err, sizeof err);
    if (!w)
        return cli_fail("%s", err);
    fprintf(stderr, "aldrec web: serving %s on http://%s%s%s:%d/\n", root,
            strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", webd_port(w));
    int sig;
    sigwait(&set, &sig);
    webd_stop(w);
    return 0;
}
