#!/bin/bash
# e2e_corrupt: damage one repository object at a time (config, packs, an
# index segment, a snapshot manifest; a byte flipped at the start, middle or
# end, truncated, deleted), each on a fresh copy of the repository: restore
# must fail with SPEC's code (4 damage; 6 when the config or the manifest is
# gone) and print one error line; it may exit 0 only when the damaged byte is
# in no blob it reads (a pack's magic or file checksum: blobs are read and
# verified one by one) and every restored byte is right; it never crashes
# and never writes outside its target.
set -euo pipefail
SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$SRCDIR/tests/lib.sh"
e2e_start corrupt
e2e_seed

R=$W/repo
SRC=$W/src
IGN=(--no-root --ignore /datadrive --ignore /special/sock)

say "fixture tree, one snapshot"
make_tree "$SRC"
cairn_ok init init --repo "$R" || e2e_finish
take_json take --repo "$R" --root "$SRC" --name victim || e2e_finish
S=$SNAP

say "control: the undamaged repository restores exactly"
if cairn_ok restore-control restore --repo "$R" "$S" "$W/control"; then
	treecmp_check "control restore equals the source" "$SRC" "$W/control" "${IGN[@]}"
fi

say "the objects to damage"
(cd "$R" && find . -type f ! -path './tmp/*' -printf '%s %P\n' | sort -k2) | tee "$LOG/objects.txt" | sed 's/^/    /'
pick() { # pick DIR largest|smallest: a file under $R/DIR
	local order=-n
	[ "$2" = largest ] && order=-nr
	(cd "$R" && find "$1" -type f -printf '%s %p\n' 2>/dev/null | sort $order | head -n1 | cut -d' ' -f2-)
}
declare -A OBJ
OBJ[config]=config
OBJ[pack-largest]=$(pick packs largest)
OBJ[index-largest]=$(pick index largest)
OBJ[manifest]=snapshots/$S
if [ "$(cd "$R" && find packs -type f | wc -l)" -gt 1 ]; then
	OBJ[pack-smallest]=$(pick packs smallest)
fi
for k in config pack-largest index-largest manifest; do
	if [ -z "${OBJ[$k]}" ] || [ ! -f "$R/${OBJ[$k]}" ]; then
		fail "the repository has a $k object (${OBJ[$k]:-none found})"
		unset "OBJ[$k]"
	fi
done

# damage FILE MODE
damage() {
	"$PY" - "$1" "$2" <<'EOF'
import os, sys
path, mode = sys.argv[1], sys.argv[2]
size = os.path.getsize(path)
if mode == "delete":
    os.unlink(path)
elif mode == "truncate":
    os.truncate(path, size // 2)
else:
    at = {"flip-first": 0, "flip-middle": size // 2, "flip-last": size - 1}[mode]
    with open(path, "r+b") as f:
        f.seek(at)
        b = f.read(1)
        f.seek(at)
        f.write(bytes([b[0] ^ 0xFF]))
EOF
}

# outside_blobs OBJ MODE: the damaged byte lies in a pack's framing, not in a blob.
outside_blobs() {
	case "$1.$2" in pack-*.flip-first|pack-*.flip-last) return 0 ;; esac
	return 1
}

passwd_before=$(stat -c %Y.%s /etc/passwd)
for obj in config pack-largest pack-smallest index-largest manifest; do
	[ -n "${OBJ[$obj]:-}" ] || continue
	for mode in flip-first flip-middle flip-last truncate delete; do
		want=4
		case "$obj.$mode" in config.delete|manifest.delete) want=6 ;; esac
		what="$obj (${OBJ[$obj]}) $mode"
		say "$what: restore must exit $want"
		C=$W/case
		rm -rf "$C"
		mkdir -p "$C/outside"
		echo sentinel > "$C/outside/sentinel"
		cp -a "$R" "$C/repo"
		damage "$C/repo/${OBJ[$obj]}" "$mode"
		touch "$C/stamp"
		sleep 0.01
		label=restore-$obj-$mode
		cairn "$label" restore --repo "$C/repo" "$S" "$C/target"
		if [ "$RC" = "$want" ]; then
			ok "$what: restore exits $want: $(head -c 160 "$ERR" | head -n1)"
			check "$what: exactly one stderr line 'cairn: ...'" one_error_line "$ERR"
		elif [ "$RC" = 0 ]; then
			# Judge the bytes against the undamaged restore, not the source,
			# so that a restore bug seen by the control is not counted twice.
			run "tc-$obj-$mode" "$PY" "$TREECMP" "$W/control" "$C/target" --no-root
			if [ "$RC" = 0 ] && outside_blobs "$obj" "$mode"; then
				# A pack's first byte (its magic) and last byte (its file
				# checksum) belong to no blob: restore reads single blobs by
				# range, each with its own check and SHA-256, so the snapshot's
				# data is intact and exit 0 is right (fsck reports the pack).
				ok "$what: restore exits 0 with every byte right (damage outside every blob)"
			elif [ "$RC" = 0 ]; then
				fail "$what: restore exits $want (got 0: the damage went unnoticed; the restored tree equals the undamaged restore)"
			else
				fail "$what: restore exits $want (got 0 WITH WRONG CONTENT: differs from the undamaged restore)"
				show "$OUT"
			fi
		else
			fail "$what: restore exits $want (got $RC$([ "$RC" -gt 128 ] && echo ", killed by signal $((RC - 128))"))"
			show "$ERR"
		fi
		stray=$(cd "$C" && find . -newer stamp ! -path './target' ! -path './target/*' ! -path './repo' ! -path './repo/*' ! -name . | head -n 5)
		check "$what: nothing written outside the target${stray:+ (found: $stray)}" test -z "$stray"
		check "$what: the sentinel is untouched" test "$(cat "$C/outside/sentinel")" = sentinel
		check "$what: /etc/passwd is untouched" test "$(stat -c %Y.%s /etc/passwd)" = "$passwd_before"
	done
done

say "cat and ls on a damaged pack"
C=$W/case
rm -rf "$C"
cp -a "$R" "$W/case"
damage "$C/${OBJ[pack-largest]}" flip-middle
run cat-all-files bash -c '
	cd "$1" && find files hard sparse -type f | while read -r f; do
		"$2" cat --repo "$3" "$4" "/$f" > /dev/null 2>>"$5" < /dev/null; echo "$? $f"
	done' _ "$SRC" "$CAIRN" "$C" "$S" "$LOG/cat-errors"
check "cat of every file: only exit codes 0 and 4, some 4" \
	bash -c '! grep -qvE "^(0|4) " "$1" && grep -q "^4 " "$1"' _ "$OUT"
bad_files=$(grep '^4 ' "$OUT" | cut -d' ' -f2- | tr '\n' ' ')
echo "    files on the damaged chunk: $bad_files"
run cat-ok-files bash -c '
	cd "$1" && grep "^0 " "$2" | cut -d" " -f2- | while read -r f; do
		"$3" cat --repo "$4" "$5" "/$f" < /dev/null | cmp -s - "$f" || echo "$f"
	done' _ "$SRC" "$OUT" "$CAIRN" "$C" "$S"
check "cat that exits 0 gives the right bytes" test ! -s "$OUT"

e2e_finish
