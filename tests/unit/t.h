/* t.h — minimal unit-test harness. A failed check prints one line "not ok -
 * FILE:LINE: what" and a passing one prints nothing; t_done() prints "NAME: N
 * passed, N failed" and returns the exit status. tests/run.sh adds up those
 * closing lines and requires as many "not ok" lines as failures, so a test
 * that prints "not ok" itself must count it (t_failed++). */
#ifndef ALDREC_T_H
#define ALDREC_T_H

#include <math.h>
#include <stdio.h>
#include <string.h>

static int t_passed, t_failed;

static inline void t_report(int ok, const char *file, int line, const char *what)
{
    if (ok) {
        t_passed++;
    } else {
        t_failed++;
        printf("not ok - %s:%d: %s\n", file, line, what);
    }
}

#define T_CHECK(cond) t_report(!!(cond), __FILE__, __LINE__, #cond)

#define T_EQ_INT(a, b) do { \
    long long t_a_ = (long long)(a), t_b_ = (long long)(b); \
    char t_m_[256]; \
    snprintf(t_m_, sizeof t_m_, "%s == %s (%lld vs %lld)", #a, #b, t_a_, t_b_); \
    t_report(t_a_ == t_b_, __FILE__, __LINE__, t_m_); \
} while (0)

#define T_EQ_DBL(a, b, eps) do { \
    double t_a_ = (a), t_b_ = (b); \
    char t_m_[256]; \
    snprintf(t_m_, sizeof t_m_, "%s ~= %s (%.17g vs %.17g)", #a, #b, t_a_, t_b_); \
    t_report(fabs(t_a_ - t_b_) <= (eps), __FILE__, __LINE__, t_m_); \
} while (0)

#define T_EQ_STR(a, b) do { \
    const char *t_a_ = (a), *t_b_ = (b); \
    char t_m_[512]; \
    snprintf(t_m_, sizeof t_m_, "%s == %s (\"%.200s\" vs \"%.200s\")", #a, #b, \
             t_a_ ? t_a_ : "(null)", t_b_ ? t_b_ : "(null)"); \
    t_report(t_a_ && t_b_ && strcmp(t_a_, t_b_) == 0, __FILE__, __LINE__, t_m_); \
} while (0)

/* Closing line for this program; exit status 1 when anything failed. */
static inline int t_done(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, t_passed, t_failed);
    return t_failed ? 1 : 0;
}

#endif
