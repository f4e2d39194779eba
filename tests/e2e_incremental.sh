#!/bin/bash
# e2e_incremental: take, change the tree in every way (append, insert near
# the start of a large file, rewrite in place, rewrite in place keeping the
# mtime, add, delete, chmod, chown, touch, xattr, fill a hole), take again
# with the parent found automatically (same --user and --root): unchanged
# files are reused unread, only the changes are new data; both snapshots
# restore to the matching state of the source.
set -euo pipefail
SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$SRCDIR/tests/lib.sh"
e2e_start incremental
e2e_seed

R=$(e2e_repo repo)
SRC=$W/src
IGN=(--ignore /datadrive --ignore /special/sock)
MiB=1048576

say "fixture tree plus a 64 MiB file"
make_tree "$SRC"
"$PY" -c '
import random, sys
r = random.Random(int(sys.argv[2]) + 1)
open(sys.argv[1], "wb").write(r.randbytes(64 * 1024 * 1024))' "$SRC/big.bin" "$SEED"
cairn_ok init init --repo "$R" || e2e_finish

say "first take (user alice)"
take_json take1 --repo "$R" --root "$SRC" --user alice --name inc1 || e2e_finish
S1=$SNAP
say "keep the first state: cp -a --preserve=all"
cp -a --preserve=all "$SRC" "$W/state1"

say "change the tree"
cd "$SRC"
"$PY" -c 'import sys, random; open("files/text", "ab").write(b"appended line\n" * 7000)'
"$PY" - "$SEED" <<'EOF'
# Insert 100 bytes near the start of big.bin, in place (same inode).
import os, random, sys
r = random.Random(int(sys.argv[1]) + 2)
with open("big.bin", "r+b") as f:
    data = f.read()
    f.seek(0)
    f.write(data[:1000] + r.randbytes(100) + data[1000:])
EOF
# Rewrite 4 KiB in place, then put the mtime back: only the ctime tells.
printf 'REWRITTEN-IN-PLACE-%.0s' $(seq 200) | dd of=files/random bs=1 seek=$((3 * MiB)) conv=notrunc status=none
touch -r "$W/state1/files/random" files/random
check "files/random: same size and mtime as before, other content" bash -c '
	[ "$(stat -c %s.%y "$1/files/random")" = "$(stat -c %s.%y "$2/files/random")" ] &&
	! cmp -s "$1/files/random" "$2/files/random"' _ "$SRC" "$W/state1"
printf 'X' | dd of=files/64k bs=1 seek=30000 conv=notrunc status=none
"$PY" -c 'import random,sys; open("files/new-1m","wb").write(random.Random(int(sys.argv[1])+3).randbytes(1048576))' "$SEED"
mkdir newdir
echo "new file in a new directory" > newdir/file
ln -s ../files/new-1m newdir/link
rm files/one dirs/bigdir/f00007 hard/h2
chmod 0604 modes/m0640
chown 1234:1234 owners/nobody
touch -d '2001-02-03 04:05:06.070809101' files/small
setfattr -n user.comment -v "changed" xattr/file
printf 'data in the former hole' | dd of=sparse/holes bs=1 seek=$((12 * MiB)) conv=notrunc status=none
cd "$W"

say "second take (alice, same root: the parent is found)"
take_json take2 --repo "$R" --root "$SRC" --user alice --name inc2 && {
	S2=$SNAP
	bytes=$(done_field "$OUT" bytes || true)
	new=$(done_field "$OUT" new_bytes || true)
	reused=$(done_field "$OUT" reused_files || true)
	check "the done event reports reused_files ($reused)" is_uint "$reused"
	if is_uint "$reused"; then
		check "reused_files ($reused) >= 4900: the unchanged files of bigdir were not read" test "$reused" -ge 4900
	fi
	if is_uint "$new" && is_uint "$bytes"; then
		check "new_bytes ($new) >= 1 MiB: the new file is new data" test "$new" -ge $MiB
		check "new_bytes ($new) <= bytes ($bytes) / 4: only the changes are new" test "$new" -le $((bytes / 4))
	else
		fail "the done event has numeric bytes ($bytes) and new_bytes ($new)"
	fi
}

say "restore both snapshots and compare with the matching states"
if cairn_ok restore1 restore --repo "$R" "$S1" "$W/r1"; then
	treecmp_check "inc1 restored equals the first state" "$W/state1" "$W/r1" "${IGN[@]}"
fi
if [ -n "${S2:-}" ] && cairn_ok restore2 restore --repo "$R" "$S2" "$W/r2"; then
	treecmp_check "inc2 restored equals the changed tree" "$SRC" "$W/r2" "${IGN[@]}"
	cmp_check "inc2: files/random has the in-place rewrite (same size and mtime, new ctime)" \
		"$SRC/files/random" "$W/r2/files/random"
fi

say "a take for another user does not reuse alice's snapshot as parent"
take_json take-bob --repo "$R" --root "$SRC" --user bob --name inc-bob && {
	new=$(done_field "$OUT" new_bytes || true)
	reused=$(done_field "$OUT" reused_files || true)
	check "bob's first take: reused_files == 0 (got $reused)" test "$reused" = 0
	check "bob's first take: new_bytes == 0, the data is shared (got $new)" test "$new" = 0
	bytes_bob=$(done_field "$OUT" bytes || true)
}

say "an explicit --parent (the first snapshot) over the changed tree"
take_json take3 --repo "$R" --root "$SRC" --user alice --name inc3 --parent inc1 && {
	new=$(done_field "$OUT" new_bytes || true)
	reused=$(done_field "$OUT" reused_files || true)
	check "take --parent inc1: new_bytes == 0 (got $new)" test "$new" = 0
	bytes3=$(done_field "$OUT" bytes || true)
	check "the same tree counts the same bytes whether files are reused or read (inc3 $bytes3, inc-bob ${bytes_bob:-?})" \
		test "$bytes3" = "${bytes_bob:-?}"
	if is_uint "$reused"; then
		check "take --parent inc1: reused_files >= 4900 (got $reused)" test "$reused" -ge 4900
	else
		fail "take --parent inc1: the done event reports reused_files ($reused)"
	fi
	if cairn_ok restore3 restore --repo "$R" "$SNAP" "$W/r3"; then
		treecmp_check "inc3 restored equals the changed tree" "$SRC" "$W/r3" "${IGN[@]}"
	fi
}

say "with a parent, the walk lists the xattrs of changed entries only; unchanged ones come from its trees"
# The procfs route (CAIRN_NO_XATTRAT=1) makes every listing an llistxattr strace can count.
nfiles=$(find "$SRC" -path "$SRC/datadrive" -prune -o -print | wc -l)
count_lists() { # VAR LABEL TAKE-ARGS...: VAR gets the llistxattr calls of a take into $R
	local var=$1 label=$2
	shift 2
	# LeakSanitizer cannot run under ptrace: off for these two (sanitizer builds)
	run "$label" strace -f -qq -c -o "$LOG/$label.strace" -e trace=llistxattr \
		env CAIRN_NO_XATTRAT=1 ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
		"$CAIRN" take --repo "$R" --root "$SRC" --user alice "$@"
	if [ "$RC" != 0 ]; then
		fail "take ($label) under strace exits 0 (got $RC)"
		show "$ERR"
		return 1
	fi
	printf -v "$var" '%s' "$(awk '$NF == "llistxattr" {print $4}' "$LOG/$label.strace")"
}
# The walk is the same on every backend: checked on dir: only. The change is
# made there only too: the copy below must find every tree stored already.
if e2e_local; then
	setfattr -n user.after -v "set after inc3" "$SRC/acl/file" # changed: listed again
fi
if e2e_local && count_lists lists_full xattr-noparent --no-parent --name xattr-full &&
	count_lists lists_inc xattr-parent --name xattr-inc; then
	check "without a parent every entry's xattrs are listed ($lists_full >= $nfiles - 10)" \
		test "${lists_full:-0}" -ge $((nfiles - 10))
	check "with the parent only directories, symlinks and changed files are listed ($lists_inc <= $nfiles / 5)" \
		test "${lists_inc:-999999}" -le $((nfiles / 5))
	if cairn_ok restore-xattr-inc restore --repo "$R" xattr-inc "$W/r-xattr"; then
		treecmp_check "the take whose xattrs came from its parent restores to the tree" "$SRC" "$W/r-xattr" "${IGN[@]}"
	fi
fi

say "a take of a cp -a copy (new inodes and ctimes, same content) stores nothing: trees hold neither"
cp -a "$SRC" "$W/copy"
take_json take-copy --repo "$R" --root "$W/copy" --user carol --name copy && {
	check "take of the copy: new_bytes == 0 (got $(done_field "$OUT" new_bytes))" test "$(done_field "$OUT" new_bytes)" = 0
	check "take of the copy: stored_bytes == 0, no new tree (got $(done_field "$OUT" stored_bytes))" \
		test "$(done_field "$OUT" stored_bytes)" = 0
}
take_json take-copy2 --repo "$R" --root "$W/copy" --user carol --name copy && {
	reused=$(done_field "$OUT" reused_files || true)
	check "the copy's next take reuses its files through the inodes record (reused_files $reused >= 4900)" \
		test "$reused" -ge 4900
	COPY2=$SNAP
}

say "without its parent's inodes record, or with a damaged one, a take reads every file and is exact"
if [ -n "${COPY2:-}" ]; then
	repo_get "$R" "inodes/$COPY2" > "$W/inodes.orig"
	check "the inodes record of the copy's snapshot is there" test -s "$W/inodes.orig"
	echo "Garbage" >> "$W/inodes.orig.bad"
	head -c 100 "$W/inodes.orig" >> "$W/inodes.orig.bad"
	for how in missing damaged; do
		if [ $how = missing ]; then repo_rm "$R" "inodes/$COPY2"; else repo_put "$R" "inodes/$COPY2" < "$W/inodes.orig.bad"; fi
		echo "$how" >> "$W/copy/changed-$how"
		take_json take-no-inodes-$how --repo "$R" --root "$W/copy" --user carol --name copy --parent "$COPY2" && {
			check "record $how: the take succeeds and reuses nothing (reused_files $(done_field "$OUT" reused_files))" \
				test "$(done_field "$OUT" reused_files)" = 0
			check "record $how: new_bytes is only the new file's ($(done_field "$OUT" new_bytes) <= 8)" \
				test "$(done_field "$OUT" new_bytes)" -le 8
			if cairn_ok restore-$how restore --repo "$R" "$SNAP" "$W/r-$how"; then
				treecmp_check "record $how: the snapshot restores to the copy" "$W/copy" "$W/r-$how" "${IGN[@]}"
			fi
		}
	done
	cairn_ok forget-copy forget --repo "$R" "$COPY2" &&
		check "forget removes the snapshot's inodes record" test -z "$(repo_ls "$R" inodes | grep "$COPY2" || true)"
fi

# The name of a restored directory's record (restored.h): its st_dev-st_ino in hex.
record_of() { printf '%x-%x' $(stat -c '%d %i' "$1"); }

say "a take of a restored tree (a new instance from a snapshot) reads only what changed since the restore"
if [ -n "${S2:-}" ] && cairn_ok restore-inst restore --repo "$R" "$S2" "$W/inst"; then
	rec=$CAIRN_STATE_DIR/restored/$(record_of "$W/inst")
	check "the restore kept a record: $rec" test -f "$rec"
	cp -a --preserve=all "$W/inst/files/random" "$W/random.restored"
	printf 'REWRITTEN-AFTER-RESTORE' | dd of="$W/inst/files/random" bs=1 seek=$MiB conv=notrunc status=none
	touch -r "$W/random.restored" "$W/inst/files/random" # same size and mtime: only the ctime tells
	echo "written after the restore" >> "$W/inst/files/text"
	echo "new after the restore" > "$W/inst/new-after-restore"
	mv "$W/inst" "$W/inst-moved" # the record is the directory's, not its path's
	take_json take-inst --repo "$R" --root "$W/inst-moved" --user dave --name inst && {
		reused=$(done_field "$OUT" reused_files)
		check "take of the restored tree: reused_files ($reused) >= 4900, through the restore record" \
			test "$reused" -ge 4900
		new=$(done_field "$OUT" new_bytes)
		check "take of the restored tree: new_bytes ($new) <= 4 MiB, only the chunks that changed" \
			test "$new" -le $((4 * MiB))
		check "the take used the record up" test ! -e "$rec"
		if cairn_ok restore-inst2 restore --repo "$R" "$SNAP" "$W/r-inst"; then
			treecmp_check "the restored instance's snapshot restores to it" "$W/inst-moved" "$W/r-inst" "${IGN[@]}"
			cmp_check "it has the rewrite that kept size and mtime" "$W/inst-moved/files/random" "$W/r-inst/files/random"
		fi
	}
fi

say "a damaged restore record is a notice: the take reads every file and is exact"
if [ -n "${S2:-}" ] && cairn_ok restore-bad restore --repo "$R" "$S2" "$W/inst-bad"; then
	rec=$CAIRN_STATE_DIR/restored/$(record_of "$W/inst-bad")
	check "a record for the new target" test -f "$rec"
	"$PY" -c 'import sys; p=sys.argv[1]; b=bytearray(open(p,"rb").read()); b[len(b)//2]^=1; open(p,"wb").write(b)' "$rec"
	echo "new" > "$W/inst-bad/new-file"
	take_json take-bad --repo "$R" --root "$W/inst-bad" --user dave --name inst-bad && {
		check "damaged record: reused_files == 0 (got $(done_field "$OUT" reused_files))" test "$(done_field "$OUT" reused_files)" = 0
		check "damaged record: a notice says it was not used" grep -q 'restore record not used' "$ERR"
		if cairn_ok restore-bad2 restore --repo "$R" "$SNAP" "$W/r-bad"; then
			treecmp_check "damaged record: the snapshot restores to the tree" "$W/inst-bad" "$W/r-bad" "${IGN[@]}"
		fi
	}
fi

# tree_of VAR SNAP: VAR set to the "root_tree" of snapshot SNAP in $R
tree_of() {
	cairn "info-${2:0:12}" info --repo "$R" "$2" --json
	printf -v "$1" '%s' "$(grep -o '"root_tree":"[0-9a-f]*"' "$OUT")"
}

say "a parent with identical directories (one tree, met twice): both reused, the trees the same as without a parent"
TW=$W/twins
mkdir -p "$TW/a/deep"
for i in $(seq 1 40); do echo "file $i" > "$TW/a/f$i"; echo "deep $i" > "$TW/a/deep/g$i"; done
cp -a "$TW/a" "$TW/b"
cp -a "$TW/a" "$TW/c"
if take_json twins1 --repo "$R" --root "$TW" --user erin --name twins1; then
	echo "changed" > "$TW/c/f1"
	take_json twins2 --repo "$R" --root "$TW" --user erin --name twins2 && {
		T2=$SNAP
		check "identical directories: reused_files == 239 (got $(done_field "$OUT" reused_files))" \
			test "$(done_field "$OUT" reused_files)" = 239
		take_json twins3 --repo "$R" --root "$TW" --user erin --name twins3 --no-parent && {
			T3=$SNAP
			tree_of t2 "$T2"
			tree_of t3 "$T3"
			check "identical directories: the incremental take's tree is the full take's ($t2, $t3)" \
				test -n "$t2" -a "$t2" = "$t3"
		}
		if cairn_ok restore-twins restore --repo "$R" "$T2" "$W/r-twins"; then
			treecmp_check "identical directories: the incremental snapshot restores to the tree" "$TW" "$W/r-twins"
		fi
	}
fi

say "a take with a parent builds unchanged directories as the walk completes them: the same trees and inodes record"
TS=$W/streamed
mkdir -p "$TS/a/x/y" "$TS/a/empty" "$TS/b" "$TS/c" "$TS/d" "$TS/e"
for i in $(seq 1 30); do echo "a $i" > "$TS/a/f$i"; echo "x $i" > "$TS/a/x/g$i"; echo "y $i" > "$TS/a/x/y/h$i"; done
ln -s f1 "$TS/a/link"
mkfifo "$TS/a/fifo"
for i in $(seq 1 10); do echo "b $i" > "$TS/b/f$i"; echo "c $i" > "$TS/c/f$i"; echo "top $i" > "$TS/top$i"; done
ln "$TS/b/f1" "$TS/b/f1-link" # a hardlink group: its directory built at the end
for i in $(seq 1 5); do echo "d $i" > "$TS/d/f$i"; setfattr -n user.k -v "v$i" "$TS/d/f$i" 2> /dev/null || true; done
head -c 600000 /dev/urandom > "$TS/e/large"
nfiles=$(find "$TS" -type f | wc -l)
if take_json streamed1 --repo "$R" --root "$TS" --user sam --name streamed1; then
	echo "changed" > "$TS/c/f1"
	take_json streamed2 --repo "$R" --root "$TS" --user sam --name streamed2 && {
		S2=$SNAP
		check "streamed take: every file reused but the changed one and the link (got $(done_field "$OUT" reused_files) of $nfiles)" \
			test "$(done_field "$OUT" reused_files)" = $((nfiles - 2))
		# the inodes record it wrote fits its trees: the next take reuses every file
		take_json streamed3 --repo "$R" --root "$TS" --user sam --name streamed3 &&
			check "after a streamed take: every file reused (got $(done_field "$OUT" reused_files) of $nfiles)" \
				test "$(done_field "$OUT" reused_files)" = $((nfiles - 1))
		take_json streamed4 --repo "$R" --root "$TS" --user sam --name streamed4 --no-parent && {
			S4=$SNAP
			tree_of s2 "$S2"
			tree_of s4 "$S4"
			check "streamed take: its tree is a take's without a parent ($s2, $s4)" test -n "$s2" -a "$s2" = "$s4"
		}
		if cairn_ok restore-streamed restore --repo "$R" "$S2" "$W/r-streamed"; then
			treecmp_check "streamed take: the snapshot restores to the tree" "$TS" "$W/r-streamed"
		fi
		cairn_ok fsck-streamed fsck --repo "$R"
	}
fi

e2e_finish
