#!/bin/bash
# e2e_cli_errors: every bad input gets SPEC's exit code and exactly one
# stderr line "cairn: ..."; failed commands commit nothing; --help documents
# every flag.
set -euo pipefail
SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$SRCDIR/tests/lib.sh"
e2e_start cli_errors

R=$W/repo
T=$W/tree
mkdir -p "$T/dir" "$W/empty"
echo hello > "$T/file"
echo world > "$T/dir/inner"
echo "not a repo" > "$W/plainfile"

# snapshot_count: number of snapshots in $R (or "?" when it cannot be read).
snapshot_count() {
	run count "$CAIRN" snapshots --repo "$R" --json
	[ "$RC" = 0 ] || { echo "?"; return; }
	"$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
d = d.get("snapshots", d) if isinstance(d, dict) else d
print(len(d))' "$OUT" 2>/dev/null || echo "?"
}

say "setup: a repository, snapshots 'uniq' and 'dup' (twice, users alice and bob)"
cairn_ok init init --repo "$R" || e2e_finish
cairn_ok take-uniq take --repo "$R" --root "$T" --name uniq --user alice -q || e2e_finish
cairn_ok take-dup1 take --repo "$R" --root "$T" --name dup --user alice -q || e2e_finish
cairn_ok take-dup2 take --repo "$R" --root "$T" --name dup --user bob -q || e2e_finish
n0=$(snapshot_count)
check "three snapshots listed (got $n0)" test "$n0" = 3

say "no repository given (2), and the message says how to give one"
expect_rc 2 norepo-snapshots snapshots
check "the message names --repo or CAIRN_REPO" grep -qE -- '--repo|CAIRN_REPO' "$ERR"
expect_rc 2 norepo-ls ls uniq
expect_rc 2 norepo-take take --root "$T" --name x
CAIRN_REPO=$R expect_rc 0 env-repo snapshots

say "missing or non-repository paths (6)"
expect_rc 6 repo-missing snapshots --repo "$W/nope"
CAIRN_REPO=$W/nope expect_rc 6 env-repo-missing snapshots
expect_rc 6 repo-missing-restore restore --repo "$W/nope" uniq "$W/out-missing"
check "nothing restored from a missing repository" test ! -e "$W/out-missing"
expect_rc 6 repo-empty-dir snapshots --repo "$W/empty"
expect_rc 6 repo-tree-dir ls --repo "$T" uniq
expect_rc 6 repo-plain-file snapshots --repo "$W/plainfile"
check "the empty directory is still empty" test -z "$(ls -A "$W/empty")"

say "init over an existing repository (1)"
expect_rc 1 init-twice init --repo "$R"
check "the repository still lists its snapshots" test "$(snapshot_count)" = 3

say "unknown command or flag, missing arguments (2)"
expect_rc 2 unknown-command frobnicate --repo "$R"
expect_rc 2 unknown-command-only frobnicate
expect_rc 2 unknown-flag snapshots --repo "$R" --bogus
expect_rc 2 unknown-flag-take take --repo "$R" --root "$T" --name x --bogus
expect_rc 2 unknown-short-flag ls --repo "$R" uniq -Z
expect_rc 2 missing-root take --repo "$R" --name x
expect_rc 2 missing-name take --repo "$R" --root "$T"
expect_rc 2 missing-flag-value take --repo "$R" --root "$T" --name
expect_rc 2 restore-no-target restore --repo "$R" uniq
expect_rc 2 restore-no-args restore --repo "$R"
expect_rc 2 cat-no-path cat --repo "$R" uniq
expect_rc 2 extra-argument cat --repo "$R" uniq /file /file
expect_rc 2 bad-label take --repo "$R" --root "$T" --name x --label novalue
expect_rc 2 relative-exclude take --repo "$R" --root "$T" --name x --exclude dir
check "no failed take committed a snapshot" test "$(snapshot_count)" = 3

say "root that does not exist (6); a root that is a file is a bad value (2)"
expect_rc 6 root-missing take --repo "$R" --root "$W/nope" --name x
cairn root-missing-json take --repo "$R" --root "$W/nope" --name x --json
check "take --json, missing root: exit 6 (got $RC)" test "$RC" = 6
check "take --json, missing root: one stderr line 'cairn: ...'" one_error_line "$ERR"
code=$(json_get "$OUT" error code || true)
check "take --json, missing root: an error event with code not_found (got '$code')" test "$code" = not_found
expect_rc 2 root-is-file take --repo "$R" --root "$T/file" --name x

say "bad user names (2); 64 characters are fine"
expect_rc 2 user-slash take --repo "$R" --root "$T" --name x --user 'bad/name'
expect_rc 2 user-empty take --repo "$R" --root "$T" --name x --user ''
expect_rc 2 user-space take --repo "$R" --root "$T" --name x --user 'sp ace'
expect_rc 2 user-65 take --repo "$R" --root "$T" --name x --user "$(printf 'u%.0s' $(seq 65))"
expect_rc 2 user-utf8 take --repo "$R" --root "$T" --name x --user $'h\xc3\xa9'
expect_rc 2 user-ls ls --repo "$R" uniq --user 'bad/name'
check "no take with a bad user committed a snapshot" test "$(snapshot_count)" = 3
expect_rc 0 user-64 take --repo "$R" --root "$T" --name u64 --user "$(printf 'u%.0s' $(seq 64))" -q
expect_rc 0 user-chars take --repo "$R" --root "$T" --name uchars --user 'A-z.0_9' -q

say "snapshots that match nothing (6)"
expect_rc 6 snap-none-ls ls --repo "$R" nosuch
expect_rc 6 snap-none-cat cat --repo "$R" nosuch /file
expect_rc 6 snap-none-restore restore --repo "$R" nosuch "$W/out-none"
check "nothing restored for a missing snapshot" test ! -e "$W/out-none"
expect_rc 6 snap-none-hex ls --repo "$R" 0000000000
expect_rc 6 snap-none-parent take --repo "$R" --root "$T" --name x --parent nosuch
expect_rc 6 snap-user-mismatch ls --repo "$R" uniq --user bob
uniq_id=$("$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
d = d.get("snapshots", d) if isinstance(d, dict) else d
print([s["id"] for s in d if s.get("name") == "uniq"][0])' "$LOG/count.out" 2>/dev/null || true)
if [ "${#uniq_id}" = 64 ]; then
	expect_rc 0 snap-by-prefix8 ls --repo "$R" "${uniq_id:0:8}"
	expect_rc 0 snap-by-full-id ls --repo "$R" "$uniq_id"
	expect_rc 6 snap-prefix7 ls --repo "$R" "${uniq_id:0:7}"
else
	fail "snapshots --json gives the id of 'uniq'"
fi

say "paths that do not exist in a snapshot (6)"
expect_rc 6 path-none-ls ls --repo "$R" uniq /nope
expect_rc 6 path-none-cat cat --repo "$R" uniq /nope
expect_rc 6 path-none-cat-deep cat --repo "$R" uniq /dir/nope/deeper

say "ambiguous name (2); --user narrows it"
expect_rc 2 snap-ambiguous ls --repo "$R" dup
expect_rc 2 snap-ambiguous-restore restore --repo "$R" dup "$W/out-amb"
check "nothing restored for an ambiguous name" test ! -e "$W/out-amb"
expect_rc 0 snap-narrowed ls --repo "$R" dup --user alice

say "bad sizes and levels for init (2), and no repository is left behind"
for v in abc 12Q '' -1 1.5K 0x10 0 1; do
	expect_rc 2 "chunk-avg-'$v'" init --repo "$W/r-bad" --chunk-avg "$v"
done
check "--chunk-avg 0: the message gives the allowed range" grep -q "from 1 KiB to 4096 KiB" "$LOG/chunk-avg-'0'.err"
expect_rc 2 zstd-level-99 init --repo "$W/r-bad" --zstd-level 99
expect_rc 2 zstd-level-abc init --repo "$W/r-bad" --zstd-level abc
check "no repository made by a failed init" bash -c '[ ! -e "$1/config" ]' _ "$W/r-bad"
expect_rc 6 r-bad-not-repo snapshots --repo "$W/r-bad"
expect_rc 0 chunk-avg-64K init --repo "$W/r-64k" --chunk-avg 64K

say "options after positional arguments"
expect_rc 0 options-after ls uniq / --repo "$R"
expect_rc 0 options-after-cat cat uniq /file --repo "$R"
check "cat uniq /file gives the file" cmp -s "$OUT" "$T/file"

say "help and version (0)"
expect_rc 0 help --help
check "cairn --help prints usage on stdout" test -s "$OUT"
for c in init take restore snapshots ls cat; do
	check "cairn --help mentions '$c'" grep -qw "$c" "$OUT"
done
expect_rc 0 take-help take --help
cp "$OUT" "$LOG/take-help.txt"
for f in --repo --root --name --user --exclude --parent --no-parent --cgroup --release --label --json -q; do
	check "cairn take --help mentions $f" grep -qE -- "(^|[^a-z-])$f([^a-z-]|\$)" "$LOG/take-help.txt"
done
expect_rc 0 help-take help take
check "cairn help take prints the same flags" grep -q -- --no-parent "$OUT"
expect_rc 0 restore-help restore --help
check "cairn restore --help mentions --force" grep -q -- --force "$OUT"
expect_rc 0 version version
WANT="cairn $(sed -n "s/^ *version : '\(.*\)',/\1/p" "$SRCDIR/meson.build" | head -n1) (format 1)"
check "cairn version prints '$WANT' (got '$(head -c 80 "$OUT")')" [ "$(cat "$OUT")" = "$WANT" ]
expect_rc 0 version-option --version
check "cairn --version prints the same (got '$(head -c 80 "$OUT")')" [ "$(cat "$OUT")" = "$WANT" ]

e2e_finish
