#!/bin/bash
# tests/fuzz/run-fuzz.sh [BUILD_DIR]: build every libFuzzer target (clang,
# -fsanitize=fuzzer,address,undefined) against the engine's sources, make
# the seed corpus (fixtures/make-fuzz-corpus.sh, needs a built cairn in
# $CAIRN), and run each target for a bounded time: FUZZ_SECONDS in all
# (default 60), split evenly. Exit 77, saying why, when clang's fuzzer
# runtime does not link here. A crash, leak or sanitizer report fails.
set -euo pipefail
SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
OUT=${1:-${TMPDIR:-/tmp}/cairn-fuzz}
CLANG=${CLANG:-clang}
TOTAL=${FUZZ_SECONDS:-60}
TARGETS=(tree snapshot index pack config inodes damaged quota gc mount freeze)
mkdir -p "$OUT/obj"

if ! command -v "$CLANG" >/dev/null; then
	echo "SKIP: no $CLANG: the fuzz targets need clang's libFuzzer"; exit 77
fi
if ! "$CLANG" -fsanitize=fuzzer,address,undefined "$SRCDIR/tests/fuzz/probe.c" -o "$OUT/probe" 2> "$OUT/probe.err"; then
	echo "SKIP: $CLANG cannot link -fsanitize=fuzzer here (Debian: apt-get install libclang-rt-14-dev):"
	head -n3 "$OUT/probe.err"
	exit 77
fi

CFLAGS=(-std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -g -O1 -fno-omit-frame-pointer
        -I"$SRCDIR/include" -I"$SRCDIR/engine" -DCAIRN_VERSION_STRING='"fuzz"')
LIBS=(-lzstd -lxxhash -lcrypto -luring -larchive -lpthread)
echo "building the engine for fuzzing in $OUT"
objs=()
# every engine source, in subfolders too (engine/take/take.c -> take_take.o)
while IFS= read -r src; do
	# the remote backends need their client libraries; the decoders don't
	rel=${src#"$SRCDIR"/engine/}
	case $rel in rados/* | s3/*) continue ;; esac
	o=$OUT/obj/${rel//\//_}
	o=${o%.c}.o
	if [ ! -f "$o" ] || [ "$src" -nt "$o" ]; then
		"$CLANG" "${CFLAGS[@]}" -fsanitize=fuzzer-no-link,address,undefined -c "$src" -o "$o" &
		while [ "$(jobs -rp | wc -l)" -ge "$(nproc)" ]; do wait -n; done
	fi
	objs+=("$o")
done < <(find "$SRCDIR/engine" -name '*.c' | sort)
wait
for t in "${TARGETS[@]}"; do
	"$CLANG" "${CFLAGS[@]}" -fsanitize=fuzzer,address,undefined "$SRCDIR/tests/fuzz/fuzz_$t.c" \
		"${objs[@]}" "${LIBS[@]}" -o "$OUT/fuzz_$t"
done

echo "seed corpus"
bash "$SRCDIR/fixtures/make-fuzz-corpus.sh" "$OUT/corpus"

per=$(( TOTAL / ${#TARGETS[@]} ))
[ "$per" -ge 1 ] || per=1
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
failed=0
for t in "${TARGETS[@]}"; do
	mkdir -p "$OUT/work/$t" "$OUT/artifacts/$t"
	echo "== fuzz_$t for ${per}s (corpus $(ls "$OUT/corpus/$t" | wc -l) files)"
	if "$OUT/fuzz_$t" -max_total_time="$per" -max_len=262144 -timeout=10 -rss_limit_mb=2048 \
		-artifact_prefix="$OUT/artifacts/$t/" -print_final_stats=1 \
		"$OUT/work/$t" "$OUT/corpus/$t" > "$OUT/fuzz_$t.log" 2>&1; then
		echo "ok - fuzz_$t: $(grep -E '^stat::number_of_executed_units' "$OUT/fuzz_$t.log" | awk '{print $2}') runs, no crash"
	else
		echo "FAIL - fuzz_$t (log: $OUT/fuzz_$t.log; artifacts: $OUT/artifacts/$t)"
		tail -n 40 "$OUT/fuzz_$t.log"
		failed=1
	fi
done
exit $failed
