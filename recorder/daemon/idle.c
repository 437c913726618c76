/* idle.c — the idle policy (see idle.h): a pure rule per parameter and a
 * table of them sorted by parameter id. */
#include "daemon/idle.h"

#include <errno.h>
#include <stdlib.h>

idle_rule_t idle_rule(int param_ms, int default_ms, int poll_ms, bool deadband)
{
    int ms = param_ms >= 0 ? param_ms : default_ms;
    if (ms <= 0)
        return (idle_rule_t){ 0 };
    int64_t slack = poll_ms > 0 ? (int64_t)poll_ms * 500 : 0;
    if (slack > (int64_t)ms * 500)
        slack = (int64_t)ms * 500;
    uint32_t every = 0;
    if (!deadband && poll_ms > 0) {
        /* rounded: an interval of 1000 ms at 300 ms polls keeps every 3rd */
        every = (uint32_t)((ms + poll_ms / 2) / poll_ms);
        if (every == 0)
            every = 1;
    }
    return (idle_rule_t){ .interval_us = (int64_t)ms * 1000, .slack_us = slack, .every = every };
}

bool idle_keep(const idle_rule_t *rule, idle_state_t *st, const sample_t *s)
{
    if (rule->interval_us <= 0)
        return false;
    st->seen++;
    if (st->kept && s->quality == st->quality &&
        (rule->every ? st->seen < rule->every
                     : s->ts_us - st->at_us < rule->interval_us - rule->slack_us))
        return false;
    *st = (idle_state_t){ .kept = true, .quality = s->quality, .at_us = s->ts_us };
    return true;
}

struct entry {
    int32_t id;
    idle_rule_t rule;
    idle_state_t st;
};

struct idle_policy {
    struct entry *v;     /* sorted by id; only parameters kept while idle */
    size_t n;
};

static int cmp_entry(const void *a, const void *b)
{
    int32_t x = ((const struct entry *)a)->id, y = ((const struct entry *)b)->id;
    return (x > y) - (x < y);
}

static struct entry *find(const idle_policy_t *p, int32_t id)
{
    if (!p || p->n == 0)
        return NULL;
    struct entry key = { .id = id };
    return bsearch(&key, p->v, p->n, sizeof *p->v, cmp_entry);
}

idle_policy_t *idle_policy_new(const pmap_t *map, int default_ms, const idle_policy_t *old)
{
    idle_policy_t *p = calloc(1, sizeof *p);
    size_t n = map ? pmap_count(map) : 0;
    if (!p || (n && !(p->v = calloc(n, sizeof *p->v)))) {
        free(p);
        errno = ENOMEM;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const param_meta_t *pm = pmap_at(map, i);
        if (!pm->valid)
            continue;
        idle_rule_t r = idle_rule(pm->idle_interval_ms, default_ms, pm->poll_ms, pm->has_deadband);
        if (r.interval_us <= 0)
            continue;
        struct entry *e = &p->v[p->n++];
        *e = (struct entry){ .id = pm->id, .rule = r };
        const struct entry *o = find(old, pm->id);
        if (o)
            e->st = o->st;
    }
    qsort(p->v, p->n, sizeof *p->v, cmp_entry);
    return p;
}

void idle_policy_free(idle_policy_t *p)
{
    if (!p)
        return;
    free(p->v);
    free(p);
}

bool idle_policy_keep(idle_policy_t *p, const sample_t *s)
{
    struct entry *e = find(p, s->parameter_id);
    return e && idle_keep(&e->rule, &e->st, s);
}

void idle_policy_reset(idle_policy_t *p)
{
    for (size_t i = 0; p && i < p->n; i++)
        p->v[i].st = (idle_state_t){ 0 };
}

size_t idle_policy_count(const idle_policy_t *p)
{
    return p ? p->n : 0;
}
