#!/usr/bin/env python3
"""Summarise a Spin trail of the model: read `spin -t -p` output on stdin
and print only the steps that read or write a shared word (or kill a
process), one line each: step number, process (owner id), the model's
inline function and the C line its comment cites, and the statement.

    spin [-DOLDn] -t -p f1_reclaim.pml | python3 trail.py [distreg.pml]
"""
import os
import re
import sys

SHARED = re.compile(r'\b(st|nxt|e_name|e_owner|r_ep|r_own)\[|\b(bucket|epoch|hwm)\b|'
                    r'\balive\[\w+\] = 0')
# The checks' scratch and the ghosts are not shared memory.
SKIP = re.compile(r'\bc_(cur|steps|i|names|own)\b|chain_acyclic|linked_entry_allocated|'
                  r'one_owner_per_name|registration_visible|no_reuse_under_reader|'
                  r'model_bounds|all_entries_free|owned_slot_below_hwm|no_slot_lost|'
                  r'\brt_ep = 0\]|\bheld\[|\breg\[|alive\[me\] = 0|assert')
LINE = re.compile(r'^\s*(\d+):\s+proc\s+(\d+) \((\w+):\d+\) (\S+):(\d+) \(state \d+\)\s+\[(.*)\]$')
CREF = re.compile(r'/\*\s*((?:old )?(?:table|rcu|registry|proc)\.c:[0-9, -]+|dri\.h:[0-9-]+)')


def index(model):
    """Line number -> (inline name, C reference of that line or None)."""
    where = {}
    fn = None
    last, last_n = None, 0
    try:
        lines = open(model).read().split('\n')
    except OSError:
        return where
    for n, text in enumerate(lines, 1):
        m = re.match(r'(inline|proctype)\s+(\w+)', text)
        if m:
            fn = m.group(2)
            last = None
        c = CREF.search(text)
        if c:
            last, last_n = c.group(1).strip(), n
        # A statement inside a d_step cites the C on the d_step's line.
        where[n] = (fn, c.group(1).strip() if c else (last if n - last_n <= 4 else None))
    return where


def main():
    model = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), 'distreg.pml')
    where = index(model)
    last = None
    for raw in sys.stdin:
        m = LINE.match(raw)
        if not m:
            if 'assertion violated' in raw or raw.startswith('spin: trail ends'):
                print(raw.rstrip())
            continue
        step, pid, name, path, line, stmt = m.groups()
        if not SHARED.search(stmt) or SKIP.search(stmt):
            continue
        if name == 'crash':
            who, fn, cref = 'crash', '', ''
            stmt = 'kill: ' + stmt
        else:
            who = 'P%s' % pid
            fn, cref = where.get(int(line), (None, None)) if path.endswith('distreg.pml') \
                else (None, None)
            fn = fn or ''
            cref = cref or ''
        key = (step, pid, stmt)
        if key == last:
            continue
        last = key
        print('%5s  %-6s %-16s %-22s %s' % (step, who, fn, cref, stmt))


if __name__ == '__main__':
    main()
