#!/bin/bash
# tests/fuzz/replay-corpus.sh BUILD_DIR TARGET...: replay the seed corpus
# (fixtures/make-fuzz-corpus.sh, made from a real repository by $CAIRN) and
# the committed regression inputs (tests/fuzz/regressions/TARGET/) through
# each target's replay driver (BUILD_DIR/fuzz_replay_TARGET, tests/fuzz/replay.c),
# in the plain and the sanitizer build alike. A crash fails.
set -euo pipefail
SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=$1
shift
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
bash "$SRCDIR/fixtures/make-fuzz-corpus.sh" "$W/corpus"
failed=0
for t in "$@"; do
	inputs=("$W/corpus/$t")
	[ -d "$SRCDIR/tests/fuzz/regressions/$t" ] && inputs+=("$SRCDIR/tests/fuzz/regressions/$t")
	if "$BUILD/fuzz_replay_$t" "${inputs[@]}"; then
		echo "ok - fuzz_$t corpus"
	else
		echo "FAIL - fuzz_$t corpus"
		failed=1
	fi
done
exit $failed
