#!/bin/bash
# e2e_s3_kill: a take into s3:// killed (SIGKILL) while its packs are being
# uploaded in parts leaves nothing visible: no snapshot, no half object;
# only incomplete multipart uploads, which no listing shows and which gc
# aborts once its grace period has passed (a dry run counts them); fsck
# passes, the earlier snapshot restores exactly, a new take works.
# Packs are 32 MiB: CAIRN_S3_MULTIPART_MIN=8 MiB sends them in 8 MiB parts.
# Runs only with CAIRN_TEST_BACKEND=s3.
set -euo pipefail
SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$SRCDIR/tests/lib.sh"
. "$SRCDIR/tests/admin_lib.sh"
if [ "${CAIRN_TEST_BACKEND:-dir}" != s3 ]; then
	echo "SKIP: e2e_s3_kill runs with CAIRN_TEST_BACKEND=s3 only"
	exit 77
fi
e2e_start s3_kill
e2e_seed

R=$(e2e_repo repo)
export CAIRN_REPO=$R CAIRN_S3_MULTIPART_MIN=$((8 << 20))
small_tree "$W/small" "$SEED"
SUM_SMALL=$(tree_sum "$W/small")
mkdir -p "$W/big"
for i in 1 2 3 4 5 6; do head -c $((40 << 20)) /dev/urandom > "$W/big/r$i"; done
cairn_ok init init || e2e_finish
take_json small --root "$W/small" --name small || e2e_finish
SMALL=$SNAP

say "kill -9 the take once a multipart upload is under way"
"$CAIRN" take --root "$W/big" --name big --json > "$LOG/big.out" 2> "$LOG/big.err" &
PID=$!
# An upload seen may complete before the kill lands: stop the take, look
# again, and kill it only while one is still unfinished.
seen=0
for _ in $(seq 1 600); do
	if [ -n "$("$PY" "$STORE_TOOL" uploads "$R")" ]; then
		kill -STOP "$PID" 2>/dev/null || break
		if [ -n "$("$PY" "$STORE_TOOL" uploads "$R")" ]; then seen=1; break; fi
		kill -CONT "$PID"
	fi
	kill -0 "$PID" 2>/dev/null || break
	sleep 0.1
done
kill -KILL "$PID" 2>/dev/null || true
wait "$PID" 2>/dev/null || true
check "a multipart upload was under way when the take was killed" [ "$seen" = 1 ]

say "nothing of it is visible"
cairn_ok snapshots snapshots --json
check "only the earlier snapshot is listed" [ "$(grep -c '"id"' "$OUT" || true)" = 1 ]
check "no snapshot named big" bash -c "! grep -q '\"big\"' '$OUT'"
repo_ls "$R" > "$W/objects"
# a pack is committed once it reaches 32 MiB: at most one chunk (2 MiB,
# 4x the 512 KiB average) and its framing beyond (33 MiB here was a flake)
check "no pack object of size 0 or beyond a committed pack's (32 MiB + one 2 MiB chunk) is listed" \
	"$PY" -c 'import sys
for line in open(sys.argv[1]):
    name, size = line.rsplit(" ", 1)
    if name.startswith("packs/") and not 0 < int(size) <= (34 << 20) + 65536:
        print("    " + line.strip()); sys.exit(1)' "$W/objects"
"$PY" "$STORE_TOOL" uploads "$R" > "$W/uploads"
check "incomplete uploads are left (and only those)" [ -s "$W/uploads" ]
cairn_ok fsck fsck
rm -rf "$W/out"
if cairn_ok restore restore "$SMALL" "$W/out" -q; then
	check "the earlier snapshot restores exactly" [ "$(tree_sum "$W/out")" = "$SUM_SMALL" ]
fi

say "gc aborts them (a dry run only counts them); a new take works"
NUP=$(grep -c '' "$W/uploads")
cairn_ok gc-dry gc --grace 0 --dry-run --json
check "gc --dry-run counts the $NUP unfinished uploads ($(json_get "$OUT" - uploads_aborted))" \
	[ "$(json_get "$OUT" - uploads_aborted)" = "$NUP" ]
check "  ... and leaves them" [ "$("$PY" "$STORE_TOOL" uploads "$R" | grep -c '')" = "$NUP" ]
cairn_ok gc-grace gc --grace 1h --json
check "gc with a grace period longer than their age keeps them" [ "$(json_get "$OUT" - uploads_aborted)" = 0 ]
cairn_ok gc gc --grace 0 --json
check "gc aborts them ($(json_get "$OUT" - uploads_aborted))" [ "$(json_get "$OUT" - uploads_aborted)" = "$NUP" ]
check "no incomplete upload left" [ -z "$("$PY" "$STORE_TOOL" uploads "$R")" ]

say "an upload begun after a live process opened the repository is kept; once that process is gone, gc aborts it"
# a cat blocked on a full fifo holds its session (registered at open) open
BIGF=$(cd "$W/small" && find . -type f -size +70k | sed "s|^\./||" | head -n 1)
check "a file larger than a pipe holds ($BIGF)" [ -n "$BIGF" ]
mkfifo "$W/hold"
exec 3<> "$W/hold"
"$CAIRN" cat "$SMALL" "$BIGF" > "$W/hold" &
HOLD=$!
sleep 1
"$PY" "$STORE_TOOL" start-upload "$R" packs/ff/fake-unfinished
check "the new upload is listed" [ "$("$PY" "$STORE_TOOL" uploads "$R")" = packs/ff/fake-unfinished ]
cairn_ok gc-live gc --grace 0 --json
check "gc kept the upload begun after a live session started ($(json_get "$OUT" - uploads_aborted) aborted)" \
	[ "$(json_get "$OUT" - uploads_aborted)" = 0 ]
kill -KILL "$HOLD" 2>/dev/null || true
wait "$HOLD" 2>/dev/null || true
exec 3<&-
cairn_ok gc-after gc --grace 0 --json
check "with that process gone, gc aborts it ($(json_get "$OUT" - uploads_aborted))" [ "$(json_get "$OUT" - uploads_aborted)" = 1 ]
check "no incomplete upload left" [ -z "$("$PY" "$STORE_TOOL" uploads "$R")" ]

unset CAIRN_S3_MULTIPART_MIN
take_json again --root "$W/small" --name again
cairn_ok fsck-after fsck
e2e_finish
