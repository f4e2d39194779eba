#!/usr/bin/env python3
# bench/thread-states.py CMD...: run CMD and sample its threads every 4 ms
# (/proc/PID/task/*/stat state and wchan). Prints, by tenths of the run, the
# share of samples with 0, 1 and 2+ threads runnable (R: could use a core,
# given one), a line a thread (the first seven seen, then the rest as
# "ahead") of its usual state by twentieths, and the commonest waits.
# Used for restore (docs/performance.md "Restore's idle and CPU").
import collections, os, subprocess, sys, time
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
samples = []  # (t, nR, [(tid, state, wchan)])
t0 = time.monotonic()
while p.poll() is None:
    t = time.monotonic() - t0
    row = []
    try:
        for tid in os.listdir(f"/proc/{p.pid}/task"):
            try:
                st = open(f"/proc/{p.pid}/task/{tid}/stat").read()
                state = st[st.rindex(')') + 2]
                wc = open(f"/proc/{p.pid}/task/{tid}/wchan").read() if state != 'R' else ''
                row.append((tid, state, wc))
            except OSError:
                pass
    except OSError:
        break
    samples.append((t, row))
    time.sleep(0.004)
wall = time.monotonic() - t0
print(f"wall {wall:.2f} s, {len(samples)} samples")
tot = collections.Counter()
wchans = collections.Counter()
n = len(samples)
for dec in range(10):
    part = samples[dec * n // 10:(dec + 1) * n // 10]
    c = collections.Counter()
    for t, row in part:
        r = sum(1 for _, s, _ in row if s == 'R')
        c[min(r, 2)] += 1
        tot[min(r, 2)] += 1
        for _, s, w in row:
            if s != 'R': wchans[(s, w)] += 1
    k = max(len(part), 1)
    nthr = max((len(row) for _, row in part), default=0)
    print(f"{dec*10:3d}%: threads {nthr:2d}  0R {c[0]/k:4.0%} 1R {c[1]/k:4.0%} 2+R {c[2]/k:4.0%}")
print(f"all: 0R {tot[0]/n:.0%} 1R {tot[1]/n:.0%} 2+R {tot[2]/n:.0%}; cores used of 2 ~ {(tot[1]+2*tot[2])/n/2:.0%}")
order = []
for t, row in samples:
    for tid, _, _ in row:
        if tid not in order: order.append(tid)
named = order[:7]
print("per thread, per twentieth: R runnable, D disk wait (i iomap, f folio, w writeback, j journal), S sleep (futex), . gone")
for tid in named + ["ahead"]:
    line = ""
    for dec in range(20):
        part = samples[dec * n // 20:(dec + 1) * n // 20]
        c = collections.Counter()
        for t, row in part:
            for tt, s_, w in row:
                if (tid == "ahead" and tt not in named) or tt == tid:
                    k = s_
                    if s_ == 'D': k = {'__iomap_dio_rw': 'i', 'folio_wait_bit_common': 'f', 'wb_wait_for_completion': 'w', 'jbd2_log_wait_commit': 'j'}.get(w, 'D')
                    c[k] += 1
        line += c.most_common(1)[0][0] if c else '.'
    tot_t = collections.Counter()
    for t, row in samples:
        for tt, s_, w in row:
            if (tid == "ahead" and tt not in named) or tt == tid: tot_t[s_] += 1
    print(f"  {tid:>8} {line}  R {tot_t['R']/n:.0%} D {tot_t['D']/n:.0%} S {tot_t['S']/n:.0%}")
for (s, w), v in wchans.most_common(15):
    print(f"  {s} {w:30s} {v/n:.2f} threads avg")
