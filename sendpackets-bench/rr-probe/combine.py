#!/usr/bin/env python3
"""Medians over the per-run lines of several `rr` runs (their stderr), and the two ratio tables
of BENCHMARKS.md: `serve` over the best limit mode, and over the ceiling for file data (the best
limit mode at 1 and 16 KiB, the limit's MSG_MORE + sendfile from 64 KiB). 1,000 x 8 MiB cells go
by bytes/s (few responses complete) and are left out of the counts.

    python3 combine.py run1.err run2.err
"""
import collections
import re
import statistics
import sys

LINE = re.compile(r'rr (\S+) (\S+) c(\d+) round \d+/\d+\s+([\d.]+ [KM]iB) (\S+)\s+'
                  r'([\d.]+) req/s\s+([\d.]+) µs/req\s+([\d.]+) MB/s')
SIZES = ['1 KiB', '16 KiB', '64 KiB', '256 KiB', '1 MiB', '8 MiB']
RPS, CPU, MBS = 0, 1, 2

runs = collections.defaultdict(list)
for name in sys.argv[1:]:
    for line in open(name):
        m = LINE.search(line)
        if m:
            path, cc, conns, size, who, rps, cpu, mbs = m.groups()
            runs[(path, cc, int(conns), size, who)].append((float(rps), float(cpu), float(mbs)))


def med(path, cc, conns, size, who, i):
    return statistics.median(x[i] for x in runs[(path, cc, conns, size, who)])


def cells():
    """Every (path, cc, conns) row and its sizes, with whether the cell goes by bytes/s."""
    for path in ['loopback', 'veth']:
        for cc in ['bbr', 'reno']:
            for conns in [1, 64, 1000]:
                yield path, cc, conns, [(s, conns == 1000 and s == '8 MiB') for s in SIZES]


counts = collections.Counter()
best_rows, file_rows = [], []
for path, cc, conns, sizes in cells():
    best_cells, file_cells = [], []
    for size, by_bytes in sizes:
        at = lambda who, i=(MBS if by_bytes else RPS): med(path, cc, conns, size, who, i)
        mem, more, lib, serve, nginx, sws = (at(w) for w in
                                             ['limit-mem', 'limit-more', 'lib', 'serve', 'nginx', 'sws'])
        best = max(mem, more)
        ceiling = best if size in ('1 KiB', '16 KiB') else more
        best_cells.append(f'{serve / best:.2f}')
        file_cells.append(f'{serve / ceiling:.2f}')
        if by_bytes:
            continue
        cpu = lambda who: med(path, cc, conns, size, who, CPU)
        counts['cells'] += 1
        counts['serve >= 0.9 best limit'] += serve / best >= 0.9
        counts['serve >= 0.9 file-data ceiling'] += serve / ceiling >= 0.9
        counts['lib >= 0.9 best limit'] += lib / best >= 0.9
        counts['serve >= nginx (rate)'] += serve >= nginx
        counts['serve >= sws (rate)'] += serve >= sws
        counts['serve CPU < nginx'] += cpu('serve') < cpu('nginx')
        counts['serve CPU < sws'] += cpu('serve') < cpu('sws')
    head = f'| {path}, {cc} | {conns:,} | '
    best_rows.append(head + ' | '.join(best_cells) + ' |')
    file_rows.append(head + ' | '.join(file_cells) + ' |')

print('serve / best limit mode:')
print('\n'.join(best_rows))
print('\nserve / ceiling for file data:')
print('\n'.join(file_rows))
print()
for k, v in counts.items():
    print(f'{k}: {v}')
print('rounds per cell:', dict(collections.Counter(len(v) for v in runs.values())))
