/* fuzz_config.c — libFuzzer target: config_parse() (common/config.c) on
 * arbitrary bytes.
 *
 * The input is the config text itself, in a buffer of exactly its size (no
 * NUL after it), so a read past len is an ASan report. Whatever the bytes,
 * config_parse() must return 0 or -1; on -1 the message must be a C string
 * within the error buffer that starts with the file name (config.h: errors
 * name the file and line); on 0 every string setting must be terminated
 * within its field, the required ones set, and the request limits within
 * the ranges config.h documents, the enums one of their values, and the
 * reload diff against the defaults within its buffers. Run the config over
 * the defaults twice to cover a second parse over a filled structure
 * (config_load does one). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "common/config.h"

#define NAME "fuzz.conf"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void must(int ok, const char *what, const char *err)
{
    if (!ok) {
        fprintf(stderr, "fuzz: config_parse broke a promise: %s (err \"%.200s\")\n", what, err);
        abort();
    }
}

static int terminated(const char *field, size_t size)
{
    return memchr(field, '\0', size) != NULL;
}

/* A password as libpq reads the conninfo ("host=dspassword=" has none). */
static int conninfo_has_password(const char *conninfo)
{
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &msg);
    int found = 0;
    if (!opts) {
        PQfreemem(msg);
        return strcasestr(conninfo, "password") != NULL;   /* config.c is as strict */
    }
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (strcmp(o->keyword, "password") == 0 && o->val && o->val[0])
            found = 1;
    PQconninfoFree(opts);
    return found;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    aldrec_config_t cfg;
    char err[256];

    for (int pass = 0; pass < 2; pass++) {
        if (pass == 0)
            config_defaults(&cfg);
        memset(err, 'x', sizeof err);
        int rc = config_parse(&cfg, (const char *)data, size, NAME, err, sizeof err);
        must(rc == 0 || rc == -1, "returns 0 or -1", "");
        if (rc < 0) {
            must(terminated(err, sizeof err), "error message terminated", "");
            must(strncmp(err, NAME ":", strlen(NAME) + 1) == 0, "error names the file", err);
            return 0;
        }
        must(terminated(cfg.conninfo, sizeof cfg.conninfo) && cfg.conninfo[0] != '\0',
             "conninfo set", "");
        must(terminated(cfg.admin_conninfo, sizeof cfg.admin_conninfo) &&
             cfg.admin_conninfo[0] != '\0', "admin_conninfo set (defaults to conninfo)", "");
        must(terminated(cfg.machine, sizeof cfg.machine) && cfg.machine[0] != '\0',
             "machine set", "");
        must(terminated(cfg.recorder_id, sizeof cfg.recorder_id) && cfg.recorder_id[0] != '\0',
             "id set", "");
        must(terminated(cfg.socket_path, sizeof cfg.socket_path), "socket terminated", "");
        must(cfg.log_level >= LL_ERROR && cfg.log_level <= LL_DEBUG, "log_level an enum value", "");
        must(cfg.parity == CONFIG_PARITY_NONE || cfg.parity == CONFIG_PARITY_EVEN ||
             cfg.parity == CONFIG_PARITY_ODD, "parity N, E or O", "");
        must(strcmp(config_partition_name(cfg.partition_interval), "?") != 0,
             "partition_interval an enum value", "");
        must(cfg.spool_full_policy == CONFIG_DROP_OLDEST ||
             cfg.spool_full_policy == CONFIG_DROP_NEWEST, "full_policy an enum value", "");
        /* The reload diff prints every changed value; it must stay in its buffers. */
        aldrec_config_t def;
        char applied[512], restart[256];
        config_defaults(&def);
        memset(applied, 'x', sizeof applied);
        memset(restart, 'x', sizeof restart);
        int changed = config_diff_summary(&def, &cfg, applied, sizeof applied, restart,
                                          sizeof restart);
        must(changed >= 0, "config_diff_summary counts", "");
        must(terminated(applied, sizeof applied) && terminated(restart, sizeof restart),
             "diff summary terminated", "");
        must(config_diff(&cfg, &cfg, NULL, NULL) == 0, "a config does not differ from itself", "");
        must(cfg.max_registers >= 1 && cfg.max_registers <= 125, "max_registers 1..125", "");
        must(cfg.max_bits >= 1 && cfg.max_bits <= 2000, "max_bits 1..2000", "");
        must(cfg.response_timeout_ms > 0, "response_timeout_ms > 0", "");
        must(!conninfo_has_password(cfg.conninfo), "no password in conninfo", "");
    }
    return 0;
}
