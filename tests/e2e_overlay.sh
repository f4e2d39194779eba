#!/bin/bash
# e2e_overlay: take --upper UPPERDIR --base SNAP. A lower tree is taken as the
# base; an overlay is mounted over its restore and changed in every way (new,
# modified and deleted files, deleted dirs -> whiteouts, a dir removed and
# recreated -> opaque, chmod, xattrs); the upper-mode take restores equal,
# entry by entry, to the merged view. Also: redirect xattrs are refused; the
# unprivileged user.overlay.opaque form works (an upper dir made by hand);
# --upper without --base is a usage error; fsck passes.
set -euo pipefail
SRCDIR=${SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$SRCDIR/tests/lib.sh"
e2e_start overlay

R=$W/repo
L=$W/lower
cairn_ok init init --repo "$R" || e2e_finish

say "lower tree"
mkdir -p "$L"/keep/deep "$L"/a/b "$L"/del/sub "$L"/opq/old "$L"/mod
echo keep > "$L"/keep/deep/k
ln "$L"/keep/deep/k "$L"/keep/k2 # a hardlink group the upper leaves alone
ln -s deep/k "$L"/keep/sym
head -c 300000 /dev/urandom > "$L"/a/b/big
echo one > "$L"/a/f1
echo two > "$L"/mod/f2
echo three > "$L"/a/f3
echo gone > "$L"/del/sub/x
echo old > "$L"/opq/old/y
echo o2 > "$L"/opq/z
chmod 640 "$L"/a/f1
setfattr -n user.base -v b "$L"/a/f1
take_json base --repo "$R" --root "$L" --name base || e2e_finish
BASE=$SNAP
cairn_ok restore-base restore --repo "$R" "$BASE" "$W/lowerR" || e2e_finish

say "overlay over the base's restore"
U=$W/upper
WK=$W/work
M=$W/merged
mkdir -p "$U" "$WK" "$M"
if ! mount -t overlay overlay -o "lowerdir=$W/lowerR,upperdir=$U,workdir=$WK" "$M" 2> "$LOG/mount.err"; then
	echo "SKIP: overlayfs cannot be mounted here: $(head -n1 "$LOG/mount.err")"
	exit 77
fi
trap 'umount "$M" 2>/dev/null || true; e2e_cleanup' EXIT

say "change the merged view"
echo new > "$M"/new
mkdir -p "$M"/newdir/x && echo n > "$M"/newdir/x/n
echo changed >> "$M"/mod/f2
rm "$M"/a/f3
rm -rf "$M"/del
rm -rf "$M"/opq && mkdir "$M"/opq && echo fresh > "$M"/opq/fresh
chmod 600 "$M"/a/f1
setfattr -n user.added -v yes "$M"/a/b/big
chmod 700 "$M"/a
ln -s new "$M"/newlink
check "the upper has a whiteout for a/f3" test -c "$U"/a/f3
check "the upper's opq is opaque" sh -c "getfattr -n trusted.overlay.opaque --only-values '$U/opq' 2>/dev/null | grep -q y"

take_json upper --repo "$R" --upper "$U" --base "$BASE" --name up || e2e_finish
UP=$SNAP
UPOUT=$OUT
cairn_ok restore-up restore --repo "$R" "$UP" "$W/r1" || e2e_finish
treecmp_check "upper-mode take restores to the merged view" "$M" "$W/r1"
check "no overlay xattr in the restore" sh -c "! getfattr -R -d -m '.*overlay.*' '$W/r1' 2>/dev/null | grep -q overlay"
check "files counted in the merged tree" test "$(done_field "$UPOUT" files)" = "$(find "$M" -type f | wc -l)"
check "dirs counted in the merged tree" test "$(done_field "$UPOUT" dirs)" = "$(find "$M" -type d | wc -l)"
umount "$M"

say "a redirect is refused"
U2=$W/upper2
mkdir -p "$U2"/moved
setfattr -n trusted.overlay.redirect -v /a "$U2"/moved
expect_rc 2 redirect take --repo "$R" --upper "$U2" --base "$BASE" --name bad
check "the refusal names the path" grep -q "moved" "$ERR"

say "a metacopy is refused"
U3=$W/upper3
mkdir -p "$U3"/a && echo x > "$U3"/a/f1
setfattr -n user.overlay.metacopy -v "" "$U3"/a/f1
expect_rc 2 metacopy take --repo "$R" --upper "$U3" --base "$BASE" --name bad

say "unprivileged form: user.overlay.opaque set by hand, a whiteout by mknod"
U4=$W/upper4
mkdir -p "$U4"/opq "$U4"/a
echo only > "$U4"/opq/only
setfattr -n user.overlay.opaque -v y "$U4"/opq
mknod "$U4"/a/f3 c 0 0
take_json user-opaque --repo "$R" --upper "$U4" --base "$BASE" --name up4 || e2e_finish
cairn_ok restore-up4 restore --repo "$R" "$SNAP" "$W/r4" || e2e_finish
check "opaque dir holds only the upper's child" test "$(ls -A "$W/r4/opq")" = only
check "whiteout deleted a/f3" test ! -e "$W/r4/a/f3"
check "base content kept: a/f1, a/b/big, keep/k2" test -f "$W/r4/a/f1" -a -f "$W/r4/a/b/big" -a -f "$W/r4/keep/k2"
check "base hardlink kept" test "$(stat -c %i "$W/r4/keep/k2")" = "$(stat -c %i "$W/r4/keep/deep/k")"
check "no user.overlay.opaque stored" sh -c "! getfattr -n user.overlay.opaque '$W/r4/opq' 2>/dev/null | grep -q opaque"
mkdir -p "$W/exp4" && cp -a "$W/lowerR/." "$W/exp4/" && rm -rf "$W/exp4/opq" "$W/exp4/a/f3"
cp -a "$U4/opq" "$W/exp4/opq" && setfattr -x user.overlay.opaque "$W/exp4/opq"
touch -r "$U4/a" "$W/exp4/a"; chmod --reference="$U4/a" "$W/exp4/a"; chown --reference="$U4/a" "$W/exp4/a"
touch -r "$U4" "$W/exp4"; chmod --reference="$U4" "$W/exp4"
treecmp_check "hand-made upper applied to the base" "$W/exp4" "$W/r4"

say "touching a hardlinked base entry is refused"
U5=$W/upper5
mkdir -p "$U5"/keep && echo x > "$U5"/keep/k2
expect_rc 2 hardlink take --repo "$R" --upper "$U5" --base "$BASE" --name bad
U6=$W/upper6
mkdir -p "$U6" && echo h > "$U6"/h1 && ln "$U6"/h1 "$U6"/h2
expect_rc 2 upper-hardlinks take --repo "$R" --upper "$U6" --base "$BASE" --name bad

say "usage"
expect_rc 2 upper-alone take --repo "$R" --upper "$U4" --name bad
expect_rc 2 base-alone take --repo "$R" --root "$L" --base "$BASE" --name bad
cairn_ok fsck fsck --repo "$R"
e2e_finish
