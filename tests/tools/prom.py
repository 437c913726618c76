#!/usr/bin/env python3
"""prom.py — read aldrecd's Prometheus exposition in tests.

  prom.py get SOURCE NAME [LABEL=VALUE ...]   print the sample's value ("" if absent)
  prom.py check SOURCE                        validate the format; print the sample count
  prom.py health URL                          print "HTTP_STATUS first-line" of /health

SOURCE is an http:// URL or "-" (stdin, e.g. from `aldrec metrics`).
The parser is strict: every sample after its family's TYPE, label values
with only \\\\ \\" \\n escapes, numeric values; a violation exits 1."""
import re
import sys
import urllib.error
import urllib.request

NAME = r'[a-zA-Z_][a-zA-Z0-9_]*'
SAMPLE = re.compile(r'^(' + NAME + r')(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'(' + NAME + r')="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')


def fetch(src):
    if src == '-':
        return sys.stdin.read()
    with urllib.request.urlopen(src, timeout=10) as r:
        return r.read().decode()


def parse(text):
    types, samples = {}, []
    if text and not text.endswith('\n'):
        raise ValueError('no final newline')
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith('#'):
            m = re.match(r'^# (HELP|TYPE) (' + NAME + r') (.*)$', line)
            if not m:
                raise ValueError('bad comment: ' + line)
            if m.group(1) == 'TYPE':
                if m.group(3) not in ('counter', 'gauge', 'summary', 'histogram', 'untyped'):
                    raise ValueError('bad type: ' + line)
                if m.group(2) in types:
                    raise ValueError('TYPE twice: ' + line)
                types[m.group(2)] = m.group(3)
            continue
        m = SAMPLE.match(line)
        if not m:
            raise ValueError('bad sample: ' + line)
        name, labels = m.group(1), {}
        rest = m.group(3) or ''
        while rest:
            lm = LABEL.match(rest)
            if not lm:
                raise ValueError('bad labels: ' + line)
            labels[lm.group(1)] = lm.group(2).replace('\\n', '\n').replace('\\"', '"').replace('\\\\', '\\')
            rest = rest[lm.end():]
        fam = name
        if fam not in types:
            for suffix in ('_sum', '_count'):
                if name.endswith(suffix) and types.get(name[:-len(suffix)]) == 'summary':
                    fam = name[:-len(suffix)]
        if fam not in types:
            raise ValueError('sample before its TYPE: ' + line)
        value = float(m.group(4))   # accepts NaN, +Inf
        samples.append((name, labels, value))
    return samples


def main():
    cmd, src = sys.argv[1], sys.argv[2]
    if cmd == 'health':
        try:
            with urllib.request.urlopen(src, timeout=10) as r:
                print(r.status, r.read().decode().splitlines()[0])
        except urllib.error.HTTPError as e:
            print(e.code, e.read().decode().splitlines()[0])
        except OSError as e:
            print('000', e)
        return 0
    try:
        samples = parse(fetch(src))
    except (ValueError, OSError) as e:
        print('prom.py: %s' % e, file=sys.stderr)
        return 1
    if cmd == 'check':
        print(len(samples))
        return 0
    want = dict(a.split('=', 1) for a in sys.argv[4:])
    for name, labels, value in samples:
        if name == sys.argv[3] and labels == want:
            print('%d' % value if value == value and abs(value) < 1e18 and value == int(value) else value)
            return 0
    print('')
    return 0


sys.exit(main())
