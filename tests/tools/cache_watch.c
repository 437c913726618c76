/* cache_watch.c — runs the metadata cache the way aldrecd does
 * (cache/pcache.h): start-up load PostgreSQL → Redis → snapshot, then the
 * refresher thread (LISTEN, bulk refresh, Redis L2 + live key, snapshot).
 * Integration tests use it to exercise the refresher with real servers
 * until aldrecd itself runs one.
 *
 *   cache_watch CONFIG     logs on stderr; SIGUSR1 prints the counters on
 *                          stdout; SIGTERM/SIGINT prints them and exits 0.
 * Exit 1 when no map could be loaded, 2 on a bad config. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "pcache.h"

static void on_change(void *arg, pmap_t *m)
{
    (void)arg;
    log_msg(LL_INFO, "change callback: version %lld, %zu parameters", (long long)pmap_version(m),
            pmap_count(m));
    pmap_free(m);
}

static void print_stats(pcache_t *c)
{
    pcache_stats_t st;
    char buf[2048] = "";
    pcache_get_stats(c, &st);
    pcache_format_stats(&st, buf, sizeof buf);
    fputs(buf, stdout);
    fputs("--\n", stdout);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    aldrec_config_t cfg;
    char err[1024];
    if (argc != 2) {
        fprintf(stderr, "usage: cache_watch CONFIG\n");
        return 2;
    }
    if (config_load(&cfg, argv[1], err, sizeof err) < 0) {
        fprintf(stderr, "cache_watch: %s\n", err);
        return 2;
    }
    log_init("cache_watch", LL_INFO);
    /* Signals are taken with sigwait: block them before any thread starts. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    pcache_opts_t o;
    pcache_opts_from_config(&o, &cfg);
    o.app_name = "cache_watch";
    o.write_snapshot = true;
    o.on_change = on_change;
    pcache_t *c = pcache_new(&o);
    if (!c || pcache_load(c, PCACHE_PG_FIRST, err, sizeof err) == PCACHE_SRC_NONE) {
        log_msg(LL_ERROR, "%s", c ? err : "out of memory");
        pcache_free(c);
        return 1;
    }
    if (pcache_start(c, err, sizeof err) < 0) {
        log_msg(LL_ERROR, "%s", err);
        pcache_free(c);
        return 1;
    }
    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0 || sig != SIGUSR1)
            break;
        print_stats(c);
    }
    print_stats(c);
    pcache_free(c);
    return 0;
}
