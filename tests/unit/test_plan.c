/* test_plan.c — request grouping: gaps, limits, tables, overlaps. */
#include "plan.h"
#include "t.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const plan_limits_t std = { .max_registers = 125, .max_bits = 2000, .max_gap = 8 };

static void test_demo_map(void)
{
    /* The demo machine (firmware/REGISTERS.md): 32 parameters, 4 requests. */
    static const plan_item_t items[] = {
        { REG_INPUT, 0, 2 }, { REG_HOLDING, 0, 2 }, { REG_INPUT, 2, 2 }, { REG_INPUT, 5, 1 },
        { REG_DISCRETE, 0, 1 }, { REG_HOLDING, 2, 2 }, { REG_INPUT, 4, 1 }, { REG_DISCRETE, 1, 1 },
        { REG_HOLDING, 4, 2 }, { REG_INPUT, 6, 2 }, { REG_HOLDING, 6, 1 }, { REG_INPUT, 8, 1 },
        { REG_HOLDING, 7, 1 }, { REG_INPUT, 9, 1 }, { REG_COIL, 0, 1 }, { REG_COIL, 1, 1 },
        { REG_COIL, 2, 1 }, { REG_HOLDING, 8, 1 }, { REG_HOLDING, 9, 1 }, { REG_INPUT, 10, 2 },
        { REG_INPUT, 12, 2 }, { REG_INPUT, 14, 2 }, { REG_INPUT, 20, 2 }, { REG_INPUT, 22, 4 },
        { REG_INPUT, 30, 1 }, { REG_INPUT, 31, 1 }, { REG_INPUT, 32, 2 }, { REG_INPUT, 34, 2 },
        { REG_INPUT, 36, 2 }, { REG_INPUT, 38, 2 }, { REG_INPUT, 40, 4 }, { REG_INPUT, 44, 1 },
    };
    size_t order[N(items)];
    plan_req_t reqs[N(items)];
    size_t n = plan_build(items, N(items), &std, order, reqs);
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
    /* every item is served exactly once, by a request that covers it */
    size_t served = 0;
    for (size_t r = 0; r < n; r++) {
        for (size_t k = reqs[r].first; k < reqs[r].first + reqs[r].n; k++) {
            const plan_item_t *it = &items[order[k]];
            T_CHECK(it->table == reqs[r].table);
            T_CHECK(it->address >= reqs[r].start);
            T_CHECK(it->address + it->count <= reqs[r].start + reqs[r].count);
            served++;
        }
    }
    T_EQ_INT(served, N(items));
}

static void test_gap(void)
{
    static const plan_item_t items[] = { { REG_HOLDING, 0, 1 }, { REG_HOLDING, 9, 1 },
                                         { REG_HOLDING, 19, 1 } };
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
        items[i] = (plan_item_t){ REG_INPUT, (uint16_t)i, 1 };
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
        pairs[i] = (plan_item_t){ REG_HOLDING, (uint16_t)(2 * i), 2 };
    lim.max_registers = 5;
    n = plan_build(pairs, 20, &lim, order, reqs);
    T_EQ_INT(n, 10);
    for (size_t r = 0; r < n; r++)
        T_EQ_INT(reqs[r].count, 4);
}

static void test_overlap_and_bits(void)
{
    static const plan_item_t items[] = { { REG_INPUT, 10, 2 }, { REG_INPUT, 11, 1 },
                                         { REG_INPUT, 10, 4 }, { REG_COIL, 1999, 1 },
                                         { REG_COIL, 0, 1 } };
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
    static const plan_item_t far[] = { { REG_COIL, 0, 1 }, { REG_COIL, 2000, 1 } };
    T_EQ_INT(plan_build(far, 2, &wide, order, reqs), 2);
}

int main(void)
{
    test_demo_map();
    test_gap();
    test_limit();
    test_overlap_and_bits();
    return t_done("test_plan");
}
