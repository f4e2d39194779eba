#!/bin/bash
# e2e_prior_cuts: a changed large file is cut where its parent's version was
# cut (the parent's next chunk tried, its hash checked) instead of running
# the chunker over it: the snapshot is the one the chunker alone gives (the
# same root tree as with CAIRN_PRIOR_CUTS=0, for 1, 2 and 4 threads), the
# path is taken (prior_cut_chunks > 0), the new data is the same, and the
# files restore exactly. Edits: an insert near the start, bytes rewritten in
# place, an append, a deletion, a truncation, content replaced whole, a
# file made sparse, a file that shrank below two chunks, a hardlinked file.
# Live (cgroup v2): a file appended to while the pre-copy reads it is read
# again while frozen, cut where the pre-copy cut it, and the snapshot holds
# a prefix of it.
set -euo pipefail
SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$SRCDIR/tests/lib.sh"
e2e_start prior_cuts
e2e_seed

SRC=$W/src
mkdir -p "$SRC"
"$PY" - "$SRC" "$SEED" <<'EOF'
import os, random, sys
d, seed = sys.argv[1], int(sys.argv[2])
rnd = random.Random(seed)
def data(n):
    # half random, half text-like: the chunker cuts both
    return rnd.randbytes(n // 2) + b"".join(b"line %d of a log\n" % rnd.randrange(10**6) for _ in range(n // 2 // 20))
for name, mib in [("ins", 12), ("rew", 12), ("app", 8), ("del", 12), ("trunc", 12), ("whole", 6), ("sparse", 8), ("small", 6), ("linked", 8)]:
    with open(os.path.join(d, name), "wb") as f:
        f.write(os.urandom(mib << 20) if name != "app" else data(mib << 20))
# two links: read after the walk (not by its early reads), the same way
os.link(os.path.join(d, "linked"), os.path.join(d, "linked2"))
EOF
R=$W/repo
cairn_ok init init --repo "$R" || e2e_finish
take_json first --repo "$R" --root "$SRC" --name first || e2e_finish

say "edit the files (seed $SEED)"
"$PY" - "$SRC" "$SEED" <<'EOF'
import os, random, sys
d, seed = sys.argv[1], int(sys.argv[2])
rnd = random.Random(seed + 1)
def edit(name, fn):
    p = os.path.join(d, name)
    b = bytearray(open(p, "rb").read())
    b = fn(b)
    with open(p, "wb") as f:
        f.write(b)
def ins(b):
    at = rnd.randrange(1000, 9000)
    b[at:at] = os.urandom(4096)
    return b
def rew(b):
    at = rnd.randrange(len(b) // 3, 2 * len(b) // 3)
    b[at:at + 100] = os.urandom(100)
    return b
def delete(b):
    at = rnd.randrange(1 << 20, 2 << 20)
    del b[at:at + 65536]
    return b
edit("ins", ins)
edit("linked", ins) # in place: both links see it
edit("rew", rew)
edit("app", lambda b: b + os.urandom(1 << 20))
edit("del", delete)
edit("trunc", lambda b: b[: 5 << 20])
edit("whole", lambda b: bytearray(os.urandom(len(b))))
edit("small", lambda b: b[:100000])
# sparse: the same bytes with a 2 MiB hole punched in the middle
p = os.path.join(d, "sparse")
b = open(p, "rb").read()
os.unlink(p)
with open(p, "wb") as f:
    f.write(b[: 3 << 20])
    f.seek(5 << 20)
    f.write(b[5 << 20 :])
EOF

cp -a "$R" "$W/repo-base" # holds the first snapshot only
cp -a "$R" "$W/repo-nocuts"
take_json cuts --repo "$R" --root "$SRC" --name second || e2e_finish
cuts=$(done_field "$OUT" prior_cut_chunks)
new=$(done_field "$OUT" new_bytes)
CAIRN_PRIOR_CUTS=0 take_json nocuts --repo "$W/repo-nocuts" --root "$SRC" --name second || e2e_finish
nocuts=$(done_field "$OUT" prior_cut_chunks)
new0=$(done_field "$OUT" new_bytes)
check "chunks cut where the parent's were: $cuts (none with CAIRN_PRIOR_CUTS=0: $nocuts)" \
	bash -c '[ "$1" -gt 20 ] && [ "$2" = 0 ]' _ "$cuts" "$nocuts"
check "the same new data either way ($new / $new0 bytes)" [ "$new" = "$new0" ]

# root_tree of the snapshot named $2 in repository $1
root_tree() {
	"$CAIRN" snapshots --repo "$1" --json | "$PY" -c '
import json, sys
print(next(s["root_tree"] for s in json.load(sys.stdin) if s["name"] == sys.argv[1]))' "$2"
}
T=$(root_tree "$R" second)
T0=$(root_tree "$W/repo-nocuts" second)
check "the same root tree as the chunker alone gives (${T:0:12} / ${T0:0:12})" \
	bash -c '[ "$1" = "$2" ] && [ "${#1}" = 64 ]' _ "$T" "$T0"

for n in 1 4; do
	cp -a "$W/repo-base" "$W/repo-t$n"
	take_json "threads-$n" --repo "$W/repo-t$n" --root "$SRC" --name second --threads "$n" || continue
	check "--threads $n: the same root tree ($(done_field "$OUT" prior_cut_chunks) prior cuts)" [ "$(root_tree "$W/repo-t$n" second)" = "$T" ]
	rm -rf "$W/repo-t$n"
done

rm -rf "$W/out"
cairn_ok restore restore --repo "$R" second "$W/out" -q && treecmp_check "the second snapshot restores exactly" "$SRC" "$W/out"
cairn_ok fsck fsck --repo "$R" --read-data -q

say "live: a file appended to during the pre-copy is read again while frozen, cut where the pre-copy cut it"
V2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
CG=${V2:+$V2/cairn-e2e-$$-prior-cuts}
live_cleanup() {
	[ -n "$CG" ] && [ -d "$CG" ] || return 0
	echo 0 > "$CG/cgroup.freeze" 2>/dev/null || true
	for p in $(cat "$CG/cgroup.procs" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
	sleep 0.2
	rmdir "$CG" 2>/dev/null || true
}
trap 'live_cleanup; e2e_cleanup' EXIT
if [ -n "$CG" ] && mkdir "$CG" 2>/dev/null && [ -e "$CG/cgroup.freeze" ]; then
	LIVE=$W/live
	mkdir -p "$LIVE"
	head -c $((24 << 20)) /dev/urandom > "$LIVE/log"
	bash -c 'echo $$ > "$0/cgroup.procs" && exec bash -c "while :; do head -c 65536 /dev/urandom >> \"\$0\"; done" "$1"' \
		"$CG" "$LIVE/log" > /dev/null 2>&1 &
	sleep 0.3
	# The appender must write between the pre-copy and the freeze; on a
	# loaded machine it may get no CPU in that window (nothing to cut
	# again, no test): up to three takes, each into a new repository.
	for attempt in 1 2 3; do
		rm -rf "$W/repo-live"
		"$CAIRN" init --repo "$W/repo-live" > /dev/null || break
		take_json live --repo "$W/repo-live" --root "$LIVE" --name live --cgroup "$CG" || break
		live_cuts=$(done_field "$OUT" prior_cut_chunks)
		[ "$live_cuts" -gt 0 ] && break
		echo "note: attempt $attempt: the log did not change between the pre-copy and the freeze"
	done
	[ -n "${live_cuts:-}" ] && {
		check "the frozen capture cut the log where the pre-copy did ($live_cuts chunks; no parent, so none before)" \
			[ "$live_cuts" -gt 0 ]
		"$CAIRN" cat --repo "$W/repo-live" live /log > "$W/live-log"
		n=$(stat -c %s "$W/live-log")
		check "the snapshot's log ($n bytes) is a prefix of the live one: one instant" \
			bash -c 'cmp -s -n "$1" "$2" "$3" && [ "$1" -ge $((24 << 20)) ]' _ "$n" "$W/live-log" "$LIVE/log"
		cairn_ok live-fsck fsck --repo "$W/repo-live" --read-data -q
	}
	live_cleanup
else
	echo "note: no cgroup v2 hierarchy with cgroup.freeze here (${V2:-none}): the live part is not run"
fi
e2e_finish
