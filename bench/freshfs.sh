# bench/freshfs.sh, sourced by the restore benchmarks: a new ext4 for every
# timed run, on a loop device with direct I/O (no page cache of its own
# under the file system's), so that no run pays for an earlier run's
# deletions (ext4's recently_deleted scan on a file system without a
# journal) and all start from the same empty file system.
#
#   freshfs_start IMG BYTES   a loop device over a sparse IMG of BYTES
#   freshfs_new MNT [ARGS]    mkfs.ext4 ARGS on it (itables written now, not
#                             by ext4lazyinit during the run), mounted at MNT
#   freshfs_stop              unmount, detach, remove IMG (an EXIT trap)
freshfs_dev=
freshfs_img=
freshfs_mnt=

freshfs_start() {
	freshfs_img=$1
	truncate -s 0 "$1" && truncate -s "$2" "$1"
	freshfs_dev=$(losetup --direct-io=on --find --show "$1")
}

freshfs_new() {
	freshfs_mnt=$1
	shift
	mountpoint -q "$freshfs_mnt" && umount "$freshfs_mnt"
	mkdir -p "$freshfs_mnt"
	# a mount namespace made meanwhile (unshare -m) keeps its own copy of the
	# last mount until it ends: wait a little for the device to be free
	local try
	for try in 1 2 3 4 5 6 7 8 9 10; do
		mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0,nodiscard "$@" "$freshfs_dev" 2>/dev/null && break
		[ "$try" = 10 ] && { echo "freshfs: mkfs.ext4 $freshfs_dev failed 10 times (still mounted in another namespace?)" >&2; return 1; }
		sleep 1
	done
	mount "$freshfs_dev" "$freshfs_mnt"
}

freshfs_stop() {
	[ -z "$freshfs_mnt" ] || ! mountpoint -q "$freshfs_mnt" || umount "$freshfs_mnt"
	[ -z "$freshfs_dev" ] || losetup -d "$freshfs_dev"
	[ -z "$freshfs_img" ] || rm -f "$freshfs_img"
	freshfs_dev= freshfs_img= freshfs_mnt=
}
