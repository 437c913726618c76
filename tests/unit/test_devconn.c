/* test_devconn.c — acq/devconn.h: a component's settings win, the
 * [modbus] defaults fill what it leaves NULL (an RTU component without
 * parity gets [modbus]'s, not 8N1: the framing aldrec get/set and aldrecd
 * share), keys and labels, and the errors of opening what is not there. */
#include <errno.h>
#include <string.h>

#include "acq/devconn.h"
#include "t.h"

static const devconn_defaults_t def = {
    .response_timeout_ms = 500, .baud = 19200, .parity = 'E', .data_bits = 8, .stop_bits = 1,
};

static param_meta_t rtu(void)
{
    param_meta_t p;
    memset(&p, 0, sizeof p);
    p.transport = TR_RTU;
    snprintf(p.serial_port, sizeof p.serial_port, "/dev/ttyS7");
    p.unit_id = 3;
    p.dev_max_gap = -1;
    return p;
}

static void test_rtu_defaults(void)
{
    param_meta_t p = rtu();
    devconn_t c;
    devconn_resolve(&c, &p, &def);
    T_EQ_INT(c.transport, TR_RTU);
    T_EQ_STR(c.serial_port, "/dev/ttyS7");
    T_EQ_INT(c.baud, 19200);
    T_EQ_INT(c.parity, 'E');          /* NULL parity: [modbus], never a fixed 'N' */
    T_EQ_INT(c.data_bits, 8);
    T_EQ_INT(c.stop_bits, 1);
    T_EQ_INT(c.response_timeout_ms, 500);
    char b[400];
    devconn_label(&c, p.unit_id, b, sizeof b);
    T_EQ_STR(b, "/dev/ttyS7 (rtu 19200 8E1)");
    devconn_key(&p, b, sizeof b);
    T_EQ_STR(b, "/dev/ttyS7");        /* every unit of a line shares it */

    /* other [modbus] defaults are followed too */
    devconn_defaults_t d2 = { .response_timeout_ms = 200, .baud = 9600, .parity = 'O',
                              .data_bits = 7, .stop_bits = 2 };
    devconn_resolve(&c, &p, &d2);
    devconn_label(&c, p.unit_id, b, sizeof b);
    T_EQ_STR(b, "/dev/ttyS7 (rtu 9600 7O2)");
    T_EQ_INT(c.response_timeout_ms, 200);
}

static void test_component_wins(void)
{
    param_meta_t p = rtu();
    p.baud = 38400;
    p.parity = 'N';
    p.data_bits = 7;
    p.stop_bits = 2;
    p.dev_response_timeout_ms = 1500;
    devconn_t c;
    devconn_resolve(&c, &p, &def);
    char b[400];
    devconn_label(&c, p.unit_id, b, sizeof b);
    T_EQ_STR(b, "/dev/ttyS7 (rtu 38400 7N2)");
    T_EQ_INT(c.response_timeout_ms, 1500);
    T_EQ_INT(devconn_timeout_ms(&p, &def), 1500);
    p.dev_response_timeout_ms = 0;
    T_EQ_INT(devconn_timeout_ms(&p, &def), 500);
}

static void test_tcp(void)
{
    param_meta_t p;
    memset(&p, 0, sizeof p);
    p.transport = TR_TCP;
    snprintf(p.host, sizeof p.host, "10.0.0.7");
    p.port = 502;
    p.unit_id = 1;
    p.parity = 'O';                    /* meaningless over TCP: ignored */
    devconn_t c, again;
    devconn_resolve(&c, &p, &def);
    T_EQ_STR(c.host, "10.0.0.7");
    T_EQ_INT(c.port, 502);
    T_EQ_INT(c.baud, 0);
    T_EQ_INT(c.parity, 0);
    char b[400];
    devconn_label(&c, p.unit_id, b, sizeof b);
    T_EQ_STR(b, "10.0.0.7:502 unit 1");
    devconn_key(&p, b, sizeof b);
    T_EQ_STR(b, "10.0.0.7:502 unit 1");   /* one connection per endpoint and unit */
    /* a plain value: resolving twice gives the same bytes */
    memset(&again, 0x5a, sizeof again);
    devconn_resolve(&again, &p, &def);
    T_CHECK(memcmp(&c, &again, sizeof c) == 0);
}

static void test_open_errors(void)
{
    param_meta_t p = rtu();
    snprintf(p.serial_port, sizeof p.serial_port, "/nonexistent/tty");
    devconn_t c;
    char err[300];
    devconn_resolve(&c, &p, &def);
    errno = 0;
    T_CHECK(devconn_open(&c, err, sizeof err) == NULL);
    T_CHECK(errno != 0);
    T_CHECK(strncmp(err, "cannot open /nonexistent/tty: ", 30) == 0);
    /* TCP: nothing listens on port 1 of loopback */
    memset(&p, 0, sizeof p);
    p.transport = TR_TCP;
    snprintf(p.host, sizeof p.host, "127.0.0.1");
    p.port = 1;
    devconn_resolve(&c, &p, &def);
    T_CHECK(devconn_open(&c, err, sizeof err) == NULL);
    T_CHECK(strncmp(err, "cannot connect to 127.0.0.1:1: ", 31) == 0);
    devconn_close(NULL);
}

int main(void)
{
    test_rtu_defaults();
    test_component_wins();
    test_tcp();
    test_open_errors();
    return t_done("test_devconn");
}
