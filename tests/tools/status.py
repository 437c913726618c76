#!/usr/bin/env python3
"""status.py — `aldrec status` parsed by its contract (recorder/ops/service.h,
svc_render_status; docs/protocol.md "STATUS"), for the tests.

    aldrec status | status.py check            every line matches its key's form
    aldrec status | status.py KEY              the value of KEY, as printed
    aldrec status | status.py KEY FIELD        one named field of KEY's value
    aldrec status | status.py 'device LABEL' state|requests_per_cycle|...

A line whose value does not have its key's documented form, a key the
contract does not know, or a key asked for that is missing is an error
(exit 2, naming the line): a test that reads STATUS fails when the format
drifts, instead of reading the wrong number.
"""
import re
import sys

N = r"\d+"
F = r"-?\d+\.\d+"


def num(name):
    return r"(?P<%s>%s)" % (name, N)


def dec(name):
    return r"(?P<%s>%s)" % (name, F)


# key -> the form of its value; named groups are the fields tests may ask for.
FORMS = {
    "machine": r"(?P<name>.+)",
    "recorder_id": r"(?P<id>.+)",
    "pid": num("pid"),
    "uptime_s": dec("s"),
    "process": r"(?P<id>\d+|none)",
    "process_rows": num("rows"),
    "idle": num("params") + " params, " + num("rows") + " rows, " + dec("per_s")
    + r" points/s \(last 10 s\)",
    "parameters": num("polled") + " polled, " + num("skipped") + " skipped",
    "devices": num("devices") + r" \(" + num("connected") + r" connected\)",
    "requests_per_cycle": num("requests"),
    "poll_cycles": num("cycles") + r" \(" + num("overruns") + r" overruns\)",
    "requests": num("requests") + r" \(" + num("failed") + r" failed\)",
    "samples": num("polled") + " polled, " + num("stored") + r" stored \(deadband\), "
    + num("dropped") + " dropped",
    "cycle_ms": "p50 " + dec("p50") + ", p99 " + dec("p99") + ", max " + dec("max"),
    "late_ms": "p50 " + dec("p50") + ", p99 " + dec("p99") + ", max " + dec("max"),
    "batch_rows": num("pending") + " pending",
    "spool_append_ms": "last " + dec("last") + ", max " + dec("max"),
    "database_link": r"(?P<state>connecting|up|draining|spooling) \(for " + dec("for_s") + r" s\)",
    "queue": num("batches") + " batches, " + num("rows") + " rows, " + num("bytes")
    + " bytes, oldest " + dec("oldest_s") + " s",
    "drain_rate": num("rows_per_s") + r" rows/s \(last 10 s\)",
    "stored": num("batches") + " batches, " + num("rows") + " rows in "
    + num("transactions") + " transactions",
    "duplicates_skipped": num("batches") + " batches",
    "quarantined": num("batches") + " batches, " + num("rows") + " rows",
    "dropped": num("batches") + " batches, " + num("rows") + " rows"
    + r"(?P<now> \(dropping now: spool full\))?",
    "spool": r"(?P<path>.+) \(id (?P<id>[0-9a-f]{16}), " + num("used") + " of "
    + num("max") + r" bytes\)",
    "last_error": r"(?P<error>.+)",
    "cache_state": r"(?P<state>ok|degraded: .+)",
    "cache_map": "version " + num("version") + ", " + num("parameters")
    + r" parameters, from (?P<source>PostgreSQL|Redis|snapshot|none), read "
    + dec("age_s") + " s ago",
    "cache_links": r"PostgreSQL (?P<postgresql>listening|not watched|down|connecting), "
    r"Redis (?P<redis>up|down)(?P<redis_detail>.*)",
    "cache_l1": num("hits") + " hits, " + num("misses") + " misses, " + num("stale")
    + " stale serves",
    "cache_l2": num("hits") + " hits, " + num("misses") + " misses, " + num("writes")
    + " writes, " + num("errors") + " errors",
    "cache_refresh": num("done") + " done, " + num("failed") + " failed; ms last "
    + dec("last") + ", min " + dec("min") + ", avg " + dec("avg") + ", max " + dec("max"),
    "cache_changes": num("notifications") + " notifications, " + num("swapped")
    + " maps swapped in",
    "cache_snapshot": num("saves") + " saves, " + num("loads") + " loads",
    "health": r"(?P<state>ok|degraded|failing|starting)(?: \((?P<reasons>.*)\))?",
    "alerts": num("active") + r" active(?:: (?P<names>.+))?",
    "metrics": r"(?P<url>http://\S+)|off \((?P<why>.*)\)",
}
DEVICE = (r"(?P<state>up|down); " + num("params") + " params in " + num("groups")
          + " groups, " + num("requests_per_cycle") + r" requests/cycle \(min "
          + num("min_requests") + r"\); cycles " + num("cycles") + r" \(" + num("overruns")
          + r" overruns\); requests " + num("requests") + r" \(" + num("failed")
          + r" failed\); cycle_ms p50 " + dec("cycle_p50") + " p95 " + dec("cycle_p95")
          + " p99 " + dec("cycle_p99") + " max " + dec("cycle_max") + "; late_ms p50 "
          + dec("late_p50") + " p95 " + dec("late_p95") + " p99 " + dec("late_p99")
          + " max " + dec("late_max"))


def fail(msg):
    print("status.py: " + msg, file=sys.stderr)
    sys.exit(2)


def parse(text):
    lines = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = re.match(r"^([a-z_0-9]+|device \S.*?): +(.*)$", line)
        if not m:
            fail("line %d is not 'KEY: VALUE': %r" % (n, line))
        key, value = m.group(1), m.group(2)
        form = DEVICE if key.startswith("device ") else FORMS.get(key)
        if form is None:
            fail("line %d: key %r is not in the STATUS contract" % (n, key))
        fm = re.fullmatch(form, value)
        if not fm:
            fail("line %d: %s: %r does not have the documented form" % (n, key, value))
        lines[key] = (value, fm)
    return lines


def main(argv):
    if len(argv) < 2 or len(argv) > 3:
        fail("usage: status.py check | KEY [FIELD]")
    lines = parse(sys.stdin.read())
    if argv[1] == "check":
        missing = [k for k in FORMS if k not in lines]
        if missing:
            fail("missing keys: " + ", ".join(missing))
        print("%d lines ok" % len(lines))
        return 0
    key = argv[1]
    if key not in lines:
        fail("no %r line in the STATUS answer" % key)
    value, fm = lines[key]
    if len(argv) == 2:
        print(value)
        return 0
    field = argv[2]
    if field not in fm.groupdict():
        fail("%s has no field %r (fields: %s)" % (key, field, ", ".join(fm.groupdict())))
    got = fm.group(field)
    print("" if got is None else got)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
