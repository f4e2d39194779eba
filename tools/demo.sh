#!/usr/bin/env bash
# The quick start: install what is missing, build, then take and restore a
# sample tree holding every kind of entry, and show what happened.
# Usage: bash tools/demo.sh   (as root: it makes devices and foreign owners)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
cd "$src"
. .ci/deps.sh
install_deps

[ -d build ] || meson setup build >/dev/null
meson compile -C build >/dev/null
cairn=$src/build/tools/cairn

work=$(mktemp -d /tmp/cairn-demo.XXXX)
export CAIRN_REPO=$work/repo
export CAIRN_STATE_DIR=$work/state # restore records (docs/architecture.md), not /var/lib/cairn
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { step "$*"; "$@"; }

bash fixtures/make-tree.sh "$work/instance" --seed 42 >/dev/null
echo "sample instance: $work/instance ($(find "$work/instance" | wc -l) entries, $(du -sh "$work/instance" | cut -f1))"
run "$cairn" init
run "$cairn" take --root "$work/instance" --name demo-1 --user alice
echo "appended to a log, added a file" && echo "more" >> "$work/instance/files/text" && date > "$work/instance/new-file"
run "$cairn" take --root "$work/instance" --name demo-2 --user alice
run "$cairn" snapshots
run "$cairn" usage
run "$cairn" ls demo-2 / -l
run "$cairn" restore demo-2 "$work/restored"
step "python3 tests/treecmp.py instance restored   # entry by entry"
python3 tests/treecmp.py "$work/instance" "$work/restored" --ignore /datadrive --ignore /special/sock
echo "(/datadrive is kept as an empty directory and sockets are skipped, by design)"
run "$cairn" fsck
printf '\nrepository: %s\nexport CAIRN_REPO=%s to keep exploring with %s\n' "$CAIRN_REPO" "$CAIRN_REPO" "$cairn"
