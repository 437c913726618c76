/* test_log.c — logfmt lines: fields, quoting, escaping, levels, and the
 * start/end-of-failure complaints, read back from a pipe as stderr. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "t.h"
#include "tcapture.h"

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void test_format(void)
{
    char line[512];
    log_field_t f[] = { { "device", "10.0.0.7:502" }, { "why", "no answer" },
                        { "empty", "" }, { "q", "a\"b=c" } };
    log_init("aldrecd", LL_INFO);
    size_t n = log_format(line, sizeof line, LL_WARN, "say \"hi\"\\ now\nnext\x01", f, 4);
    T_EQ_INT(n, strlen(line));
    T_CHECK(strncmp(line, "ts=", 3) == 0);
    /* ts=YYYY-MM-DDTHH:MM:SS.mmmZ */
    T_EQ_INT(strlen(line) > 28 && line[13] == 'T' && line[26] == 'Z', 1);
    const char *rest = strstr(line, " level=");
    T_CHECK(rest != NULL);
    char want[512];
    snprintf(want, sizeof want, " level=warn prog=aldrecd pid=%d msg=\"say \\\"hi\\\"\\\\ now\\nnext\\x01\""
             " device=10.0.0.7:502 why=\"no answer\" empty=\"\" q=\"a\\\"b=c\"", (int)getpid());
    T_EQ_STR(rest, want);
    /* truncation keeps the buffer terminated */
    char small[40];
    n = log_format(small, sizeof small, LL_INFO, "x", NULL, 0);
    T_EQ_INT(n, sizeof small - 1);
    T_EQ_INT(strlen(small), sizeof small - 1);
}

static void test_levels_and_complaints(void)
{
    log_init("t", LL_INFO);
    capture_begin();
    log_msg(LL_DEBUG, "hidden");
    log_msg(LL_INFO, "shown %d", 1);
    log_set_level(LL_DEBUG);
    log_msg(LL_DEBUG, "now shown");
    log_set_level(LL_ERROR);
    log_msg(LL_WARN, "hidden again");
    log_set_level(LL_INFO);
    complain_t c = { 0 };
    for (int i = 0; i < 5; i++)
        log_complain(&c, LL_WARN, "device down");
    log_release(&c, LL_INFO, "device back");
    log_release(&c, LL_INFO, "not again");
    log_field_t f[] = { { "alert", "spool_pct" } };
    log_event(LL_WARN, f, 1, "alert %s", "raised");
    const char *out = capture_end();
    T_EQ_INT(count_lines(out), 5);
    T_CHECK(strstr(out, "hidden") == NULL);
    T_CHECK(strstr(out, "level=info prog=t pid=") != NULL);
    T_CHECK(strstr(out, "msg=\"shown 1\"\n") != NULL);
    T_CHECK(strstr(out, "level=debug prog=t") != NULL);
    T_CHECK(strstr(out, "msg=\"device down\"\n") != NULL);
    T_CHECK(strstr(out, "msg=\"device back (after 5 failed attempts)\"\n") != NULL);
    T_CHECK(strstr(out, "msg=\"alert raised\" alert=spool_pct\n") != NULL);
    T_EQ_INT(log_get_level(), LL_INFO);
    enum log_level l;
    T_EQ_INT(log_parse_level("debug", &l), 0);
    T_EQ_INT(l, LL_DEBUG);
    T_EQ_INT(log_parse_level("loud", &l), -1);
    T_EQ_STR(log_level_name(LL_WARN), "warn");
}

int main(void)
{
    test_format();
    test_levels_and_complaints();
    return t_done("test_log");
}
