#!/usr/bin/env python3
"""benchlib.py: the Python half of bench/run.sh (not meant to be run alone).

  gen-text KIND PATH BYTES SEED     seeded log lines (KIND log) or CSV rows (KIND csv)
  subset SRC DST BYTES              copy a sorted subset of SRC (files, symlinks) of ~BYTES
  change2 ROOT SEED SCALE           first round of user changes (checkpoints, logs, CSV)
  change3 ROOT SEED FRACTION        ~FRACTION of the bytes changed: appends, an insert near
                                    the start of a large file, an in-place rewrite, new
                                    files, deletions (deterministic: same seed, same tree)
  write-floor DIR BYTES [direct]    write BYTES in 32 MiB files, fdatasync each, fsync DIR
                                    (direct: with O_DIRECT, past the page cache)
  time-row STEP TOOL TIMEFILE       one results row from /usr/bin/time -f '%e %U %S %M'
  take-json FILE                    pause_ms new_bytes stored_bytes of a take --json done event
  fidelity TREECMP_OUTPUT           a one-word summary of treecmp's differences by kind
  report RAW OUTDIR TITLE           results.csv, chart.png (gnuplot), the tables on stdout
"""
import csv
import mmap
import os
import random
import re
import stat
import subprocess
import sys

MIB = 1 << 20
WORDS = ("request served handler worker cache miss hit retry timeout upstream batch epoch "
         "loss grad step checkpoint saved loaded tensor shape device cuda stream alloc free "
         "user session token refresh queue job started finished failed ok").split()


def text_chunk(rng, kind, nbytes, t0=1700000000):
    """Roughly nbytes of log lines or CSV rows, from rng."""
    out, n, t = [], 0, t0 + rng.randrange(10 ** 6)
    while n < nbytes:
        t += rng.randrange(3)
        if kind == "log":
            line = "%d.%06d %s [%s] %s %s id=%d took=%.3fms\n" % (
                t, rng.randrange(10 ** 6), rng.choice(("INFO", "INFO", "INFO", "WARN", "DEBUG", "ERROR")),
                rng.choice(("api", "worker", "trainer", "db")), rng.choice(WORDS),
                " ".join(rng.choice(WORDS) for _ in range(rng.randrange(2, 9))),
                rng.randrange(10 ** 7), rng.random() * 500)
        else:
            line = "%d,%d,%s,%.6f,%.6f,%.3f,%d,%s\n" % (
                t, rng.randrange(10 ** 5), rng.choice(("cpu", "gpu", "mem", "net", "disk")),
                rng.gauss(0, 1), rng.random() * 100, rng.lognormvariate(2, 1),
                rng.randrange(2), rng.choice(WORDS))
        out.append(line)
        n += len(line)
    return "".join(out).encode()


def gen_text(kind, path, nbytes, seed):
    rng = random.Random(seed)
    with open(path, "wb") as f:
        if kind == "csv":
            f.write(b"time,sensor,kind,z,pct,value,flag,tag\n")
        left = nbytes
        while left > 0:
            b = text_chunk(rng, kind, min(left, 4 * MIB))
            f.write(b)
            left -= len(b)


def files_of(root, skip=("datadrive",)):
    """Sorted (path, lstat) of regular files below root, /datadrive left out."""
    out = []
    for d, dirs, files in os.walk(root):
        if d == root:
            dirs[:] = [x for x in dirs if x not in skip]
        dirs.sort()
        for f in sorted(files):
            p = os.path.join(d, f)
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                out.append((p, st))
    return out


def subset(src, dst, budget):
    """Every directory and symlink of src, and files in sorted order while the budget lasts;
    the larger files (libraries) are taken first so the subset looks like the whole."""
    files = []
    for d, dirs, names in os.walk(src):
        dirs.sort()
        rel = os.path.relpath(d, src)
        os.makedirs(os.path.join(dst, rel), exist_ok=True)
        for n in sorted(names):
            p = os.path.join(d, n)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(p), os.path.join(dst, rel, n))
            elif stat.S_ISREG(st.st_mode):
                files.append((st.st_size, p, os.path.join(dst, rel, n)))
    files.sort(key=lambda x: (-x[0], x[1]))
    total = 0
    for size, p, q in files:
        if total + size > budget:
            continue
        subprocess.run(["cp", "-a", p, q], check=True)
        total += size
    return total


def append_text(path, rng, kind, nbytes):
    with open(path, "ab") as f:
        f.write(text_chunk(rng, kind, nbytes))


def rand_bytes(rng, n):
    return rng.randbytes(n)


def change2(root, seed, scale):
    """New checkpoints, log growth and rotation, CSV rows (packages are added by run.sh)."""
    rng = random.Random(seed)
    ck = os.path.join(root, "root/checkpoints")
    n = len(os.listdir(ck))
    for i in range(2):
        with open(os.path.join(ck, "ckpt-%04d.pt" % (n + i + 1)), "wb") as f:
            left = int(64 * MIB * scale)
            while left > 0:
                b = rand_bytes(rng, min(left, 8 * MIB))
                f.write(b)
                left -= len(b)
    logs = os.path.join(root, "var/log/app")
    for name in sorted(os.listdir(logs)):
        p = os.path.join(logs, name)
        if name.endswith(".log"):
            os.rename(p, p + ".1")
            gen_text("log", p, int(4 * MIB * scale), rng.randrange(1 << 30))
    append_text(os.path.join(root, "srv/data/measurements.csv"), rng, "csv", int(8 * MIB * scale))
    cfg = os.path.join(root, "srv/app/config")
    os.makedirs(cfg, exist_ok=True)
    for i in range(200):
        with open(os.path.join(cfg, "job-%03d.json" % i), "w") as f:
            f.write('{"job": %d, "lr": %.5f, "batch": %d}\n' % (i, rng.random() / 100, rng.choice((32, 64, 128))))


def change3(root, seed, fraction):
    """About fraction of the tree's bytes changed, five ways. Files with several links are
    left alone (an overlay upper layer may not replace a hardlinked base entry)."""
    rng = random.Random(seed)
    files = files_of(root)
    # allocated bytes: a sparse image's holes are not data to change
    total = sum(min(st.st_size, st.st_blocks * 512) for _, st in files)
    target = int(total * fraction)
    single = [(p, st) for p, st in files if st.st_nlink == 1]
    big = sorted(single, key=lambda x: (-x[1].st_size, x[0]))
    done = {}
    # 1. appends: logs and the CSV (25%)
    logs = [p for p, _ in single if "/var/log/app/" in p and p.endswith(".log")]
    for p in logs:
        append_text(p, rng, "log", target // (8 * max(1, len(logs))))
    append_text(os.path.join(root, "srv/data/measurements.csv"), rng, "csv", target // 8)
    done["appended"] = target // 4
    # 2. an insert of 4 KiB at 64 KiB into the largest library (the whole file shifts)
    lib = next((p for p, st in big if "/opt/" in p and st.st_size > MIB), big[0][0])
    with open(lib, "rb") as f:
        data = f.read()
    with open(lib, "wb") as f:
        f.write(data[:65536] + rand_bytes(rng, 4096) + data[65536:])
    done["insert_into"] = len(data)
    # 3. bytes rewritten in place in the middle of the largest checkpoint (25%)
    ck = next(p for p, st in big if "/checkpoints/" in p)
    size = os.path.getsize(ck)
    with open(ck, "r+b") as f:
        n = min(target // 4, size // 2)
        f.seek(size // 3)
        f.write(rand_bytes(rng, n))
    done["rewritten"] = n
    # 4. new files: a checkpoint shard (40%) and 100 small files
    new = os.path.join(root, "root/checkpoints/ckpt-delta.pt")
    with open(new, "wb") as f:
        f.write(rand_bytes(rng, target * 2 // 5))
    d = os.path.join(root, "srv/app/data/batch-%d" % seed)
    os.makedirs(d, exist_ok=True)
    for i in range(100):
        with open(os.path.join(d, "part-%03d.txt" % i), "wb") as f:
            f.write(text_chunk(rng, "log", 2048 + rng.randrange(8192)))
    # 5. deletions: 1 in 50 of node_modules' files and 20 libraries' headers
    gone = [p for p, _ in single if "/node_modules/" in p and rng.randrange(50) == 0]
    gone += [p for p, _ in single if "/opt/cuda/" in p and p.endswith(".h")][:20]
    for p in gone:
        os.unlink(p)
    done["deleted"] = len(gone)
    print("change3: %d bytes in %d files; target %d bytes changed: %s" % (total, len(files), target, done))


def write_floor(d, nbytes, direct=False):
    """Durable write of nbytes: what a take must at least spend storing its packs.

    Buffered (write, then fdatasync each 32 MiB file), or direct (O_DIRECT:
    the page cache left out, so only the device is timed). On this VM the
    buffered copy into the page cache cost 0.35-2.3 s for the same 760 MB,
    by the memory's state: pages the host took back (free page reporting)
    are slow to touch again. O_DIRECT does not touch them."""
    os.makedirs(d, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | (os.O_DIRECT if direct else 0)
    block = mmap.mmap(-1, 4 * MIB)  # page-aligned, as O_DIRECT needs
    block.write(os.urandom(4 * MIB))
    view = memoryview(block)
    i, left = 0, nbytes
    while left > 0:
        fd = os.open(os.path.join(d, "p%05d" % i), flags, 0o644)
        n = min(left, 32 * MIB)
        w = 0
        while w < n:
            # O_DIRECT writes whole 4 KiB blocks: the tail is rounded up, then cut
            part = min(len(block), n - w)
            w += os.write(fd, view[: (part + 4095) // 4096 * 4096 if direct else part])
        if direct:
            os.ftruncate(fd, n)
        os.fdatasync(fd)
        os.close(fd)
        left -= n
        i += 1
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    os.fsync(fd)
    os.close(fd)


def take_json(path):
    for line in open(path):
        try:
            e = __import__("json").loads(line)
        except ValueError:
            continue
        if e.get("event") == "done":
            print(e.get("pause_ms", ""), e.get("new_bytes", ""), e.get("stored_bytes", ""))
            return
    print("- - -")


def fidelity(path):
    """treecmp output -> 'exact' or 'kind:count,...'."""
    kinds = {}
    pats = (("holes", "data extents"), ("content", "content sha256"), ("xattr", "xattr "),
            ("hardlinks", "hardlink group"), ("mtime", "mtime_ns"), ("mode", "mode "),
            ("owner", "uid "), ("owner", "gid "), ("missing", "only in A"), ("extra", "only in B"),
            ("size", "size "), ("type", "type "), ("symlink", "symlink target"), ("rdev", "rdev "))
    summary = None
    for line in open(path, errors="replace"):
        m = re.match(r"compared (\d+) entries, (\d+) differences", line)
        if m:
            summary = int(m.group(2))
            continue
        for k, p in pats:
            if ": " + p in line:
                kinds[k] = kinds.get(k, 0) + 1
                break
    if summary is None:
        print("failed")
    elif summary == 0:
        print("exact")
    else:
        print(";".join("%s:%d" % kv for kv in sorted(kinds.items())) or "diffs:%d" % summary)


STEPS = [("1", "first take"), ("2", "take after user changes"), ("3", "incremental ~1%"),
         ("4", "restore"), ("4f", "restore, page cache full"), ("4d", "restore after drop_caches"),
         ("5", "take of a copy")]
SHORT = {"1": "1 first", "2": "2 changes", "3": "3 incr. 1%", "4": "4 restore", "4f": "4f full cache",
         "4d": "4d dropped", "5": "5 copy"}
TOOLS = ["cairn", "restic", "borg", "casync", "tar"]


def human(n):
    n = float(n)
    for u in ("B", "K", "M", "G", "T"):
        if abs(n) < 1024 or u == "T":
            return ("%.0f%s" if u in "BK" else "%.1f%s") % (n, u)
        n /= 1024


def report(raw, outdir, title):
    rows = list(csv.DictReader(open(raw), delimiter="\t"))
    os.makedirs(outdir, exist_ok=True)
    fields = ["step", "tool", "wall_s", "cpu_s", "rss_mib", "user_s", "repo_bytes", "pause_ms", "new_bytes", "note"]
    with open(os.path.join(outdir, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)
    by = {(r["step"], r["tool"]): r for r in rows}
    tools = [t for t in TOOLS if any(k[1] == t for k in by)]
    peers = [t for t in tools if t != "cairn"]

    def val(step, tool, k):
        r = by.get((step, tool))
        try:
            return float(r[k])
        except (TypeError, ValueError, KeyError):
            return None

    lines = ["# " + title, "", "Summary: wall seconds (CPU seconds) per step; repository after step 5; peak RSS "
             "over all steps; restore check.", "",
             "| tool | " + " | ".join(SHORT[s] for s, _ in STEPS) + " | repo | peak RSS | restore |",
             "| --- |" + " --- |" * (len(STEPS) + 3)]
    for t in tools:
        cells = []
        for s, _ in STEPS:
            w, c = val(s, t, "wall_s"), val(s, t, "cpu_s")
            cells.append("-" if w is None else "%.1f (%.1f)" % (w, c or 0))
        repo = [val(s, t, "repo_bytes") for s in ("5", "3", "2", "1") if val(s, t, "repo_bytes")]
        rss = [val(s, t, "rss_mib") for s, _ in STEPS if val(s, t, "rss_mib")]
        note = (by.get(("4", t)) or {}).get("note") or "-"
        lines.append("| %s | %s | %s | %s | %s |" % (t, " | ".join(cells), human(repo[0]) if repo else "-",
                                                 "%.0f MiB" % max(rss) if rss else "-", note))
    lines += ["", "All rows, with cairn's ratio to each peer (cairn/peer: below 1 cairn takes less):", ""]
    head = "| step | metric | " + " | ".join(tools) + " | " + " | ".join("cairn/" + p for p in peers) + " |"
    lines += [head, "|" + " --- |" * (2 + len(tools) + len(peers))]
    for s, name in STEPS:
        for k, label, fmt in (("wall_s", "wall s", "%.1f"), ("cpu_s", "CPU s", "%.1f"),
                              ("rss_mib", "peak RSS MiB", "%.0f"), ("repo_bytes", "repo after", None)):
            if k == "repo_bytes" and s.startswith("4"):
                continue
            vals = [val(s, t, k) for t in tools]
            if all(v is None for v in vals):
                continue
            cells = ["-" if v is None else (human(v) if fmt is None else fmt % v) for v in vals]
            c = val(s, "cairn", k)
            rat = []
            for p in peers:
                v = val(s, p, k)
                rat.append("%.2f" % (c / v) if c is not None and v else "-")
            lines.append("| %s %s | %s | %s | %s |" % (s, name, label, " | ".join(cells), " | ".join(rat)))
    fid = [(t, (by.get(("4", t)) or {}).get("note", "-")) for t in tools]
    lines += ["", "Restore check (treecmp, /datadrive and the roots' own metadata ignored): " +
              ", ".join("%s %s" % x for x in fid)]
    floors = [(r["tool"], float(r["wall_s"])) for r in rows if r["step"] == "floor"]
    if floors:
        lines.append("Floors (same run, same cache state): " +
                     ", ".join("%s %.2f s" % f for f in floors))
    pauses = [(s, val(s, "cairn", "pause_ms")) for s, _ in STEPS] + [("3u", val("3u", "cairn", "pause_ms"))]
    lines.append("cairn pause (take --cgroup, ms): " +
                 ", ".join("step %s %.0f" % (s, p) for s, p in pauses if p is not None))
    # targets
    lines += ["", "| target | measured | met |", "| --- | --- | --- |"]

    def tgt(name, measured, ok):
        lines.append("| %s | %s | %s |" % (name, measured, "-" if ok is None else ("yes" if ok else "**no**")))

    def spd(step, peer, k="wall_s"):
        c, p = val(step, "cairn", k), val(step, peer, k)
        return p / c if c and p else None

    def both(x, step, peers):
        xs = [spd(step, p, "cpu_s") for p in peers if spd(step, p, "cpu_s")]
        return "%.2fx (CPU time: %.2fx)" % (x, min(xs)) if xs else "%.2fx" % x

    for peer in ("borg", "restic"):
        x = spd("1", peer)
        tgt("first take >= 2.5x faster than %s" % peer, both(x, "1", [peer]) if x else "-", x >= 2.5 if x else None)
    # the floor is the faster of the two durable writes of the same bytes
    wf = min((w for t, w in floors if t in ("write floor", "device floor")), default=None)
    c1, u1 = val("1", "cairn", "wall_s"), val("1", "cairn", "cpu_s")
    if wf and c1:
        tgt("first take <= 1.2x the durable-write floor", "%.2fx (%.2f s vs %.2f s)" % (c1 / wf, c1, wf),
            c1 / wf <= 1.2)
    # restated (issue 21): within 1.2x of max(device floor, the minimum CPU time / cores), the
    # minimum being read + SHA-256 + zstd of the same bytes (bench/cpu_floor.c, one thread)
    df = next((w for t, w in floors if t == "device floor"), None)
    fr = by.get(("floor", "cpu floor"))
    mc = float(fr["cpu_s"]) / os.cpu_count() if fr and fr.get("cpu_s") not in (None, "") else None
    if c1 and (df or mc):
        fl = max(x for x in (df, mc) if x is not None)
        tgt("first take <= 1.2x max(device floor, read+SHA-256+zstd CPU / cores)",
            "%.2fx (%.2f s vs %.2f s: device %s, CPU %s)" % (
                c1 / fl, c1, fl, "%.2f s" % df if df else "-", "%.2f s" % mc if mc else "-"), c1 / fl <= 1.2)
    if c1 and u1:
        # not a target: how far the first take is from its own CPU time spread on every core
        tgt("first take vs its CPU time on %d cores" % os.cpu_count(), "%.2fx" % (c1 / (u1 / os.cpu_count())), None)
    for s, name in (("3", "incremental take"), ("5", "take of a copy")):
        xs = [x for x in (spd(s, "borg"), spd(s, "restic")) if x]
        x = min(xs) if xs else None
        tgt("%s >= 4x faster than the faster of borg, restic" % name, both(x, s, ["borg", "restic"]) if x else "-",
            x >= 4 if x else None)
    g = None
    if val("5", "cairn", "repo_bytes") and val("3", "cairn", "repo_bytes"):
        g = val("5", "cairn", "repo_bytes") - val("3", "cairn", "repo_bytes")
        tgt("take of a copy adds < 1 MiB", human(g), g < MIB)
    x = spd("4", "restic")
    tgt("restore >= 2x faster than restic", both(x, "4", ["restic"]) if x else "-", x >= 2 if x else None)
    # restore against its floor: the device writing the data bytes, or the least
    # CPU a verifying restore spends, zstd decompress + SHA-256 of the same bytes
    # (bench/cpu_floor.c --restore), spread on every core; runs before that row
    # existed used the restore's own user CPU
    rf = next((w for t, w in floors if t == "restore device floor"), None)
    rc = next((w for t, w in floors if t == "restore cpu floor"), None)
    for s, name in (("4f", "page cache full"), ("4d", "after drop_caches")):
        x = spd(s, "restic")
        tgt("restore (%s) >= 3x faster than restic" % name, both(x, s, ["restic"]) if x else "-",
            x >= 3 if x else None)
        c, u = val(s, "cairn", "wall_s"), val(s, "cairn", "cpu_s")
        cpu_floor, what = None, "decompress+verify CPU"
        r = by.get((s, "cairn"))
        if rc is not None:
            cpu_floor = rc / os.cpu_count()
        elif r and r.get("user_s") not in (None, ""):
            cpu_floor, what = float(r["user_s"]) / os.cpu_count(), "user CPU"
        fl = max(x for x in (rf, cpu_floor) if x is not None) if rf or cpu_floor else None
        if c and fl:
            tgt("restore (%s) <= 1.5x max(device floor, %s / cores)" % (name, what),
                "%.2fx (%.2f s vs %.2f s: device %s, CPU %s)" % (
                    c / fl, c, fl, "%.2f s" % rf if rf else "-", "%.2f s" % cpu_floor if cpu_floor else "-"),
                c / fl <= 1.5)
    tgt("restore exact (holes kept)", dict(fid).get("cairn", "-"), dict(fid).get("cairn") == "exact")
    last = max((s for s, _ in STEPS if val(s, "cairn", "repo_bytes")), default=None)
    if last and val(last, "borg", "repo_bytes"):
        c, b = val(last, "cairn", "repo_bytes"), val(last, "borg", "repo_bytes")
        tgt("repository after all steps <= borg's", "%s vs %s" % (human(c), human(b)), c <= b)
    cr = [val(s, "cairn", "rss_mib") for s, _ in STEPS if val(s, "cairn", "rss_mib")]
    br = [val(s, "borg", "rss_mib") for s, _ in STEPS if val(s, "borg", "rss_mib")]
    if cr and br:
        tgt("peak RSS <= borg's", "%.0f vs %.0f MiB" % (max(cr), max(br)), max(cr) <= max(br))
    p3 = val("3", "cairn", "pause_ms")
    tgt("pause at step 3 <= 1 s (full walk)", "%.0f ms" % p3 if p3 is not None else "-",
        p3 <= 1000 if p3 is not None else None)
    p3u = val("3u", "cairn", "pause_ms")
    tgt("pause at step 3 <= 0.3 s (overlay upper mode)", "%.0f ms" % p3u if p3u is not None else "-",
        p3u <= 300 if p3u is not None else None)
    text = "\n".join(lines) + "\n"
    open(os.path.join(outdir, "results.md"), "w").write(text)
    sys.stdout.write(text)
    chart(by, tools, outdir, title)


def chart(by, tools, outdir, title):
    dat = os.path.join(outdir, "chart.dat")
    with open(dat, "w") as f:
        f.write("step " + " ".join(tools) + "\n")
        for s, name in STEPS:
            f.write('"%s" ' % SHORT[s] + " ".join(
                (by.get((s, t)) or {}).get("wall_s") or "NaN" for t in tools) + "\n")
        f.write("\n\n")
        f.write("step " + " ".join(tools) + "\n")
        for s, name in STEPS:
            if s == "4":
                continue
            f.write('"after %s" ' % s + " ".join(
                "%.3f" % (float(by[(s, t)]["repo_bytes"]) / (1 << 30))
                if (s, t) in by and by[(s, t)].get("repo_bytes") not in (None, "", "-") else "NaN"
                for t in tools) + "\n")
    gp = os.path.join(outdir, "chart.gp")
    n = len(tools)
    with open(gp, "w") as f:
        f.write("""set terminal pngcairo size 1300,520 font "sans,11" noenhanced
set output "%s"
set multiplot layout 1,2 title "%s"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key top left
set grid ytics
set xtics scale 0
set title "wall time per step (s, log scale; lower is better)"
set logscale y
plot for [i=2:%d] "%s" index 0 using i:xtic(1) title columnheader(i)
unset logscale y
set title "repository size after each step (GiB)"
set yrange [0:*]
plot for [i=2:%d] "%s" index 1 using i:xtic(1) title columnheader(i)
unset multiplot
""" % (os.path.join(outdir, "chart.png"), title.replace('"', "'"), n + 1, dat, n + 1, dat))
    try:
        subprocess.run(["gnuplot", gp], check=True)
        os.remove(gp)
        os.remove(dat)
    except (OSError, subprocess.CalledProcessError) as e:
        print("chart: gnuplot failed (%s is kept): %s" % (gp, e), file=sys.stderr)


def time_row(step, tool, path):
    wall, user, sys_, rss = open(path).read().split()[-4:]
    # user seconds alone too: the restore's CPU floor
    print("%s\t%s\t%.2f\t%.2f\t%.1f\t%.2f" % (step, tool, float(wall), float(user) + float(sys_),
                                             int(rss) / 1024, float(user)))


def main(a):
    cmd = a[0] if a else ""
    if cmd == "gen-text":
        gen_text(a[1], a[2], int(a[3]), int(a[4]))
    elif cmd == "subset":
        print(subset(a[1], a[2], int(a[3])))
    elif cmd == "change2":
        change2(a[1], int(a[2]), float(a[3]))
    elif cmd == "change3":
        change3(a[1], int(a[2]), float(a[3]))
    elif cmd == "write-floor":
        write_floor(a[1], int(a[2]), a[3:] == ["direct"])
    elif cmd == "time-row":
        time_row(a[1], a[2], a[3])
    elif cmd == "take-json":
        take_json(a[1])
    elif cmd == "fidelity":
        fidelity(a[1])
    elif cmd == "report":
        report(a[1], a[2], a[3])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
