/* test_plan.c — request grouping: gaps, limits, tables, overlaps,
 * no_bridge ranges, isolated items, range parsing. */
#include "acq/plan.h"
#include "t.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define I(t, a, c) { .table = (t), .address = (a), .count = (c) }

static const plan_limits_t std = { .max_registers = 125, .max_bits = 2000, .max_gap = 8 };

/* Every item served exactly once by a request covering it, no request
 * over the limit or touching a no_bridge address; returns the plan size. */
static size_t plan_checked(const plan_item_t *items, size_t n, const plan_limits_t *lim,
                           plan_req_t *reqs)
{
    size_t order[256];
    size_t nreq = plan_build(items, n, lim, order, reqs);
    size_t served = 0;
    for (size_t r = 0; r < nreq; r++) {
        int max = reqs[r].table <= REG_DISCRETE ? lim->max_bits : lim->max_registers;
        T_CHECK(reqs[r].count <= max);
        T_CHECK(!plan_excluded(lim, reqs[r].table, reqs[r].start,
                               (long)reqs[r].start + reqs[r].count));
        for (size_t k = reqs[r].first; k < reqs[r].first + reqs[r].n; k++) {
            const plan_item_t *it = &items[order[k]];
            T_CHECK(it->table == reqs[r].table);
            T_CHECK(it->address >= reqs[r].start);
            T_CHECK(it->address + it->count <= reqs[r].start + reqs[r].count);
            if (it->alone)
                T_EQ_INT(reqs[r].n, 1);
            served++;
        }
    }
    T_EQ_INT(served, n);
    return nreq;
}

static void test_demo_map(void)
{
    /* The demo machine (firmware/REGISTERS.md): 32 parameters, 4 requests. */
    static const plan_item_t items[] = {
        I(REG_INPUT, 0, 2), I(REG_HOLDING, 0, 2), I(REG_INPUT, 2, 2), I(REG_INPUT, 5, 1),
        I(REG_DISCRETE, 0, 1), I(REG_HOLDING, 2, 2), I(REG_INPUT, 4, 1), I(REG_DISCRETE, 1, 1),
        I(REG_HOLDING, 4, 2), I(REG_INPUT, 6, 2), I(REG_HOLDING, 6, 1), I(REG_INPUT, 8, 1),
        I(REG_HOLDING, 7, 1), I(REG_INPUT, 9, 1), I(REG_COIL, 0, 1), I(REG_COIL, 1, 1),
        I(REG_COIL, 2, 1), I(REG_HOLDING, 8, 1), I(REG_HOLDING, 9, 1), I(REG_INPUT, 10, 2),
        I(REG_INPUT, 12, 2), I(REG_INPUT, 14, 2), I(REG_INPUT, 20, 2), I(REG_INPUT, 22, 4),
        I(REG_INPUT, 30, 1), I(REG_INPUT, 31, 1), I(REG_INPUT, 32, 2), I(REG_INPUT, 34, 2),
        I(REG_INPUT, 36, 2), I(REG_INPUT, 38, 2), I(REG_INPUT, 40, 4), I(REG_INPUT, 44, 1),
    };
    plan_req_t reqs[N(items)];
    size_t n = plan_checked(items, N(items), &std, reqs);
    T_EQ_INT(n, 4);
    T_EQ_INT(reqs[0].table, REG_COIL);
    T_EQ_INT(reqs[0].count, 3);
    T_EQ_INT(reqs[1].table, REG_DISCRETE);
    T_EQ_INT(reqs[2].table, REG_HOLDING);
    T_EQ_INT(reqs[2].start, 0);
    T_EQ_INT(reqs[2].count, 10);
    T_EQ_INT(reqs[3].table, REG_INPUT);
    T_EQ_INT(reqs[3].start, 0);
    T_EQ_INT(reqs[3].count, 45);
    T_EQ_INT(reqs[3].n, 20);
}

static void test_gap(void)
{
    static const plan_item_t items[] = { I(REG_HOLDING, 0, 1), I(REG_HOLDING, 9, 1),
                                         I(REG_HOLDING, 19, 1) };
    size_t order[3];
    plan_req_t reqs[3];
    /* 0 -> 9 leaves 8 unused registers (1..8): bridged; 9 -> 19 leaves 9: not */
    T_EQ_INT(plan_build(items, 3, &std, order, reqs), 2);
    T_EQ_INT(reqs[0].count, 10);
    T_EQ_INT(reqs[1].start, 19);
    plan_limits_t nogap = std;
    nogap.max_gap = 0;
    T_EQ_INT(plan_build(items, 3, &nogap, order, reqs), 3);
}

static void test_limit(void)
{
    /* 200 consecutive u16 with a 16-register device limit: 13 requests. */
    plan_item_t items[200];
    size_t order[200];
    plan_req_t reqs[200];
    for (int i = 0; i < 200; i++)
        items[i] = (plan_item_t)I(REG_INPUT, (uint16_t)i, 1);
    plan_limits_t lim = std;
    lim.max_registers = 16;
    size_t n = plan_build(items, 200, &lim, order, reqs);
    T_EQ_INT(n, 13);
    for (size_t r = 0; r < n; r++)
        T_CHECK(reqs[r].count <= 16);
    T_EQ_INT(plan_build(items, 200, &std, order, reqs), 2);   /* 125 + 75 */
    /* a 32-bit value never straddles two requests */
    plan_item_t pairs[20];
    for (int i = 0; i < 20; i++)
        pairs[i] = (plan_item_t)I(REG_HOLDING, (uint16_t)(2 * i), 2);
    lim.max_registers = 5;
    n = plan_build(pairs, 20, &lim, order, reqs);
    T_EQ_INT(n, 10);
    for (size_t r = 0; r < n; r++)
        T_EQ_INT(reqs[r].count, 4);
}

static void test_overlap_and_bits(void)
{
    static const plan_item_t items[] = { I(REG_INPUT, 10, 2), I(REG_INPUT, 11, 1),
                                         I(REG_INPUT, 10, 4), I(REG_COIL, 1999, 1),
                                         I(REG_COIL, 0, 1) };
    size_t order[5];
    plan_req_t reqs[5];
    size_t n = plan_build(items, 5, &std, order, reqs);
    T_EQ_INT(n, 3);   /* the coil hole 1..1998 is wider than max_gap */
    plan_limits_t wide = std;
    wide.max_gap = 2000;
    n = plan_build(items, 5, &wide, order, reqs);
    T_EQ_INT(n, 2);   /* coils 0..1999 fit in one 2000-bit read */
    T_EQ_INT(reqs[0].table, REG_COIL);
    T_EQ_INT(reqs[0].count, 2000);
    T_EQ_INT(reqs[1].start, 10);
    T_EQ_INT(reqs[1].count, 4);
    T_EQ_INT(reqs[1].n, 3);
    T_EQ_INT(plan_build(items, 0, &std, order, reqs), 0);
    /* 2001 bits would exceed max_bits: split again */
    static const plan_item_t far[] = { I(REG_COIL, 0, 1), I(REG_COIL, 2000, 1) };
    T_EQ_INT(plan_build(far, 2, &wide, order, reqs), 2);
}

static void test_no_bridge(void)
{
    /* the demo's input registers 0..44 fit one request; with 16-19 and
     * 26-29 (the unmapped holes) excluded they need three */
    static const plan_item_t items[] = {
        I(REG_INPUT, 0, 2), I(REG_INPUT, 14, 2), I(REG_INPUT, 20, 2), I(REG_INPUT, 22, 4),
        I(REG_INPUT, 30, 1), I(REG_INPUT, 44, 1), I(REG_HOLDING, 16, 1), I(REG_HOLDING, 20, 1),
    };
    plan_req_t reqs[N(items)];
    plan_range_t nb[4];
    size_t nnb;
    char err[200];
    T_EQ_INT(plan_parse_ranges(" input:16-19 , input : 26 - 29,coil:5", nb, 4, &nnb, err,
                               sizeof err), 0);
    T_EQ_INT(nnb, 3);
    T_EQ_INT(nb[1].table, REG_INPUT);
    T_EQ_INT(nb[1].first, 26);
    T_EQ_INT(nb[1].last, 29);
    T_EQ_INT(nb[2].table, REG_COIL);
    T_EQ_INT(nb[2].first, 5);
    T_EQ_INT(nb[2].last, 5);
    plan_limits_t lim = std;
    lim.max_gap = 20;
    T_EQ_INT(plan_checked(items, N(items), &lim, reqs), 2);
    lim.no_bridge = nb;
    lim.n_no_bridge = nnb;
    /* input: [0..15], [20..25], [30..44]; holding 16..20 (other table) */
    T_EQ_INT(plan_checked(items, N(items), &lim, reqs), 4);
    T_EQ_INT(reqs[1].start, 0);
    T_EQ_INT(reqs[1].count, 16);
    T_EQ_INT(reqs[2].start, 20);
    T_EQ_INT(reqs[2].count, 6);
    T_EQ_INT(reqs[3].start, 30);
    T_EQ_INT(reqs[3].count, 15);
    /* an item inside a range is refused by the check, with its reason */
    plan_item_t inside = I(REG_INPUT, 17, 2);
    const char *why = plan_item_check(&inside, &lim, err, sizeof err);
    T_CHECK(why && strstr(why, "no_bridge"));
    plan_item_t wide = I(REG_INPUT, 0, 4);
    lim.max_registers = 2;
    why = plan_item_check(&wide, &lim, err, sizeof err);
    T_CHECK(why && strstr(why, "limit of 2"));
    T_CHECK(plan_item_check(&items[0], &std, err, sizeof err) == NULL);
    /* parse errors name the item */
    T_EQ_INT(plan_parse_ranges("holding:5,inputs:3", nb, 4, &nnb, err, sizeof err), -1);
    T_CHECK(strstr(err, "\"inputs:3\"") != NULL);
    T_EQ_INT(plan_parse_ranges("holding:9-3", nb, 4, &nnb, err, sizeof err), -1);
    T_EQ_INT(plan_parse_ranges("holding:70000", nb, 4, &nnb, err, sizeof err), -1);
    T_EQ_INT(plan_parse_ranges("holding:1-2x", nb, 4, &nnb, err, sizeof err), -1);
    T_EQ_INT(plan_parse_ranges("coil:1,coil:2,coil:3,coil:4,coil:5", nb, 4, &nnb, err,
                               sizeof err), -1);
    T_EQ_INT(plan_parse_ranges("", nb, 4, &nnb, err, sizeof err), 0);
    T_EQ_INT(nnb, 0);
}

static void test_alone(void)
{
    /* 10 consecutive registers; isolating the 5th splits 1 request into 3 */
    plan_item_t items[10];
    plan_req_t reqs[10];
    for (int i = 0; i < 10; i++)
        items[i] = (plan_item_t)I(REG_HOLDING, (uint16_t)i, 1);
    T_EQ_INT(plan_checked(items, 10, &std, reqs), 1);
    items[4].alone = true;
    T_EQ_INT(plan_checked(items, 10, &std, reqs), 3);
    T_EQ_INT(reqs[1].start, 4);
    T_EQ_INT(reqs[1].count, 1);
    items[5].alone = true;   /* two neighbours isolated: each alone */
    T_EQ_INT(plan_checked(items, 10, &std, reqs), 4);
}

int main(void)
{
    test_no_bridge();
    test_alone();
    test_demo_map();
    test_gap();
    test_limit();
    test_overlap_and_bits();
    return t_done("test_plan");
}
