#!/usr/bin/env python3
"""book/grid-tables.py: fit the Markdown tables of source files into 80 columns.

    python3 book/grid-tables.py FILE...

A pipe table (| a | b |, one row a line) cannot wrap a row, so a table with a
long cell makes lines wider than the 80 columns tests/book-check.sh allows.
This rewrites every pipe table that has a line over 80 columns as a grid
table (pandoc's grid_tables), the same table with its cells wrapped:

    +------+-------------------------------+
    | bits | why                           |
    +======+===============================+
    | 7    | sret enters the guest (V=1);  |
    |      | every trap sets it again      |
    +------+-------------------------------+

Columns keep their natural width while the table fits; otherwise the widest
shrink first, never below their longest word (an inline `code span` counts
as one word). Tables that fit are left alone, and so is everything else in
the file. It prints how many tables it rewrote in each file.
"""
import re
import sys

MAXW = 80


def split_cells(line):
    s = line.strip()
    assert s.startswith('|') and s.endswith('|'), line
    cells, cur, i, code = [], '', 1, False
    while i < len(s) - 1:
        c = s[i]
        if c == '\\' and i + 1 < len(s) - 1:
            cur += s[i:i+2]; i += 2; continue
        if c == '`': code = not code
        if c == '|' and not code:
            cells.append(cur.strip()); cur = ''
        else:
            cur += c
        i += 1
    cells.append(cur.strip())
    return cells


def tokens(text):
    out, cur, code = [], '', False
    for c in text:
        if c == '`': code = not code
        if c == ' ' and not code:
            if cur: out.append(cur)
            cur = ''
        else: cur += c
    if cur: out.append(cur)
    return out


def wrap(text, w):
    lines, cur = [], ''
    for t in tokens(text):
        if not cur: cur = t
        elif len(cur) + 1 + len(t) <= w: cur += ' ' + t
        else: lines.append(cur); cur = t
    lines.append(cur)
    return lines


def grid(rows):
    n = len(rows[0])
    for r in rows: assert len(r) == n, rows
    nat = [max(len(r[i]) for r in rows) for i in range(n)]
    minw = [max(max((len(t) for t in tokens(r[i])), default=1) for r in rows) for i in range(n)]
    A = MAXW - (3 * n + 1)
    w = nat[:]
    while sum(w) > A:
        cand = [i for i in range(n) if w[i] > minw[i]]
        if not cand: raise SystemExit("cannot fit: %r" % rows[0])
        i = max(cand, key=lambda i: w[i]); w[i] -= 1
    sep = '+' + '+'.join('-' * (x + 2) for x in w) + '+'
    hsep = '+' + '+'.join('=' * (x + 2) for x in w) + '+'
    out = [sep]
    for k, r in enumerate(rows):
        cols = [wrap(r[i], w[i]) for i in range(n)]
        h = max(len(c) for c in cols)
        for j in range(h):
            out.append('| ' + ' | '.join((cols[i][j] if j < len(cols[i]) else '').ljust(w[i]) for i in range(n)) + ' |')
        out.append(hsep if k == 0 else sep)
    return out


for path in sys.argv[1:]:
    lines = open(path).read().split('\n')
    out, i, changed = [], 0, 0
    while i < len(lines):
        if lines[i].startswith('|') and i + 1 < len(lines) and re.match(r'^\|[\s:|-]+\|\s*$', lines[i+1]) and '-' in lines[i+1]:
            j = i
            while j < len(lines) and lines[j].startswith('|'): j += 1
            block = lines[i:j]
            if any(len(l) > MAXW for l in block):
                rows = [split_cells(block[0])] + [split_cells(l) for l in block[2:]]
                out.extend(grid(rows)); changed += 1
            else:
                out.extend(block)
            i = j
        else:
            out.append(lines[i]); i += 1
    open(path, 'w').write('\n'.join(out))
    print(path, changed, "tables")
