/*
 * cairn repository format, version 1.
 *
 * Grammar (all integers little-endian, no padding, no alignment):
 *
 *   file        := header body check
 *   header      := magic[8] version:u32 flags:u32            (16 bytes)
 *   check       := xxh3_64(header body):u64                  (every file)
 *
 *   config      := header("CAIRNCFG")
 *                  chunk_min:u32 chunk_avg:u32 chunk_max:u32 zstd_level:i32
 *                  secret[32] created_ns:i64  check
 *
 *   pack        := header("CAIRNPAK") blob* directory footer check
 *   blob        := id[32] type:u8 comp:u8 reserved:u16 raw_len:u32 stored_len:u32
 *                  data[stored_len] blob_check:u64
 *                  (blob_check = xxh3_64 of the blob's bytes before it; lets a
 *                   single blob be read and verified with one ranged read)
 *   directory   := dir_entry*
 *   dir_entry   := id[32] type:u8 comp:u8 reserved:u16 raw_len:u32 stored_len:u32
 *                  offset:u32                                  (48 bytes)
 *   footer      := count:u32 dir_offset:u32
 *
 *   index seg   := header("CAIRNIDX", version INDEX_VERSION = 2)
 *                  iblock*nblocks fence*nblocks pack_id[16]*npacks itail
 *                  (no whole-file check: each block and the itail carry
 *                   their own, so a reader verifies just what it reads)
 *   iblock      := ientry*k block_check:u64
 *                  (k = block_entries, the last block the rest (1 to
 *                   block_entries); block_check = xxh3_64 of the block's
 *                   entries seeded with the block's number; block b starts
 *                   at 16 + b * (block_entries * 52 + 8))
 *   ientry      := id[32] pack:u32 offset:u32 raw_len:u32 stored_len:u32
 *                  type:u8 comp:u8 reserved:u16                (52 bytes)
 *                  (entries sorted by id over all blocks, no duplicates;
 *                   pack < npacks)
 *   fence       := prefix[8]  (the first 8 bytes of its block's first id)
 *   itail       := nentries:u32 nblocks:u32 npacks:u32 block_entries:u32
 *                  tail_check:u64                              (24 bytes)
 *                  (tail_check = xxh3_64, seeded with xxh3_64 of the
 *                   header, of fences, pack table and itail before it;
 *                   block_entries = INDEX_BLOCK_ENTRIES (78: a block
 *                   fits 4 KiB; a later layout may change it);
 *                   nblocks = ceil(nentries / block_entries); pack table
 *                   strictly ascending, every pack used, npacks = 0 exactly
 *                   when nentries = 0; the file is exactly as long as these
 *                   counts say. A lookup reads the itail, fences and pack
 *                   table once, then one block per probe. Version 1 (one
 *                   flat table) is refused.)
 *
 *   tree        := header("CAIRNTRE") count:u32 tentry*count check
 *                  (a blob of type TREE; its id is the SHA-256 of these bytes)
 *   tentry      := name_len:u16 name[name_len] type:u8 mode:u32 uid:u32 gid:u32
 *                  mtime_sec:i64 mtime_nsec:u32 ctime_sec:i64 ctime_nsec:u32
 *                  ino:u64 size:u64 rdev_major:u32 rdev_minor:u32 hardlink:u32
 *                  nxattrs:u32 xattr*nxattrs
 *                  payload(type)
 *                  (takes since 0.2 write ctime and ino as 0 and keep them
 *                   in the snapshot's inodes record instead, so a tree
 *                   depends only on what a restore gives back: a copy of a
 *                   tree stores the same trees. Trees of older takes carry
 *                   them; a take compares those when the parent has no
 *                   inodes record.)
 *   xattr       := name_len:u16 name[name_len] value_len:u32 value[value_len]
 *   payload(REG)     := nextents:u32 extent*nextents nchunks:u32 chunk*nchunks
 *   payload(DIR)     := subtree_id[32]
 *   payload(SYMLINK) := target_len:u32 target[target_len]
 *   payload(other)   := (nothing)
 *   extent      := offset:u64 length:u64   (data extents of a sparse file,
 *                  ascending, non-overlapping, inside size; nextents = 0
 *                  means the file is dense: one extent [0, size); a file
 *                  that is all hole has the one empty extent [size, 0))
 *   chunk       := id[32] size:u32         (sum of sizes = sum of extent lengths)
 *
 *   manifest    := header("CAIRNSNP") tree_id[32] parent_id[32] flags:u32
 *                  time_ns:i64 user:str name:str root_path:str hostname:str
 *                  files:u64 dirs:u64 symlinks:u64 specials:u64 hardlinks:u64
 *                  sockets_skipped:u64 bytes:u64 new_bytes:u64 stored_bytes:u64
 *                  pause_ms:u64 duration_ms:u64
 *                  nlabels:u32 (key:str value:str)*nlabels
 *                  [added_bytes:u64]  check
 *   str         := len:u16 bytes[len]
 *                  (header flag SNAPSHOT_HAS_ADDED (1): added_bytes is
 *                   present, what the commit added to the user's usage
 *                   (the quota charge, sharing-blind); every commit writes
 *                   it, manifests of older versions lack it. A reader
 *                   refuses other header flags.)
 *                  (snapshot id = SHA-256 of the whole manifest file; parent_id
 *                   all zero = no parent)
 *                  tree_id names the snapshot's top tree: it holds exactly one
 *                  entry, named "root", a DIR carrying the captured
 *                  directory's own metadata; its subtree is the content.
 *                  pause_ms: how long the instance's cgroup was frozen, from
 *                  the freeze request up to the commit (0 without --cgroup);
 *                  root_path: realpath of the root, or the root as given when
 *                  that resolves elsewhere (/proc/PID/root of a container).
 *
 *   access trace := header("CAIRNTRC") snap_id[32] npaths:u32
 *                  (len:u16 path[len])*npaths  check
 *                  (traces/<snap hex>: the files a mount of the snapshot
 *                   read first, in that order, paths relative to its root
 *                   ("usr/lib/x.so"); a later mount of it or of a child
 *                   hydrates them first (engine/mount/). Advisory: a bad
 *                   or missing one is ignored, and one whose paths do not
 *                   fill it exactly, or hold a NUL, is bad. Codec:
 *                   engine/mount/codec.c)
 *   mount cache log := magic("CAIRNMCL") version:u32 flags:u32
 *                  (content_id[32] nchunks:u32 first:u32 count:u32
 *                   entry_check:u64)*
 *                  (a host's cache, not the repository: <cache>/records,
 *                   one for the whole cache, appended to by every mount of
 *                   it; the data lives in <cache>/files/XX/<content id>,
 *                   sparse files of their content's size; content_id =
 *                   SHA-256 of the entry's size, extents and chunk list;
 *                   each entry names chunks [first, first+count) of that
 *                   content whose bytes were made durable (syncfs) before
 *                   the entry was appended; entry_check = xxh3_64 of the
 *                   entry's bytes before it; flags 0. A header unlike its
 *                   writer's is not trusted at all (the log is started
 *                   over); entries after the first bad one (or one naming
 *                   chunks past nchunks) are not trusted and are cut off.
 *                   Session 15's layout, a record files/XX/<id>.rec beside
 *                   each cache file ("CAIRNMCR"), is ignored: what only it
 *                   names is fetched again. Codec: engine/mount/codec.c)
 *
 *   Per-user accounting (engine/quota.h; U = the user's name, also in every
 *   record as user:str and checked on read; engine/user.h's rule keeps U one
 *   path component that listings show: never ".", ".." or starting with
 *   '.'. Readers take users/U/ for a user only when it holds U's records:
 *   quota, refs/<64 hex>, log/<16 hex>, base/<16 hex>). "stored size" of a
 *   blob is its stored_len in the index (bytes in the pack after
 *   compression).
 *   user quota  := header("CAIRNUQT") user:str limit:u64 check
 *                  (users/U/quota; absent = no quota)
 *   user refs   := header("CAIRNURF", flags) user:str snap_id[32]
 *                  [base_id[32] depth:u32 nremoved:u32 blob_id[32]*nremoved]
 *                  nblobs:u32 (blob_id[32] stored:u32)*nblobs  check
 *                  (users/U/refs/<snap hex>: every distinct chunk and tree
 *                   the snapshot references, ascending by id. flags 0: whole,
 *                   the bracketed part absent. flags 1: a delta, the set of
 *                   base_id's record (same user) without the removed ids,
 *                   plus the blobs listed; ids ascending in both lists, a
 *                   removed id in the base, a listed one not left in it;
 *                   depth 1-8, greater than the base's (whole = 0). A take
 *                   writes a delta on its parent when the parent is charged
 *                   to the same user and the change is at most half the
 *                   set. Before a forgotten snapshot's refs are deleted
 *                   (compaction), the deltas on it are rewritten whole.)
 *   user log    := header("CAIRNULG") user:str seq:u64 op:u8 snap_id[32]
 *                  used_before:u64 used_after:u64 snaps_before:u64
 *                  snaps_after:u64  check
 *                  (users/U/log/<seq as 16 hex>; op 1 = take (add), 2 =
 *                   forget, 3 = checkpoint (written with a base by a rebuild,
 *                   snap_id zero); seq counts from 1 without gaps; each
 *                   entry's "before" equals the state after the one before)
 *   user base   := header("CAIRNUBS") user:str seq:u64 used:u64
 *                  nsnaps:u32 snap_id[32]*nsnaps
 *                  nblobs:u32 (blob_id[32] stored:u32 refs:u32)*nblobs  check
 *                  (users/U/base/<seq as 16 hex>: the state after entry seq:
 *                   charged snapshots and, for each blob with refs >= 1, how
 *                   many of them reference it; ids ascending; used = sum of
 *                   stored)
 *   A user's state = the newest base + the entries after it, each applying
 *   its snapshot's refs with +1 (add) or -1 (forget); usage = sum of stored
 *   over blobs with refs >= 1. An add entry is written before its manifest,
 *   a forget entry before its manifest is deleted: only the last entry can
 *   disagree with the manifests (an add without its manifest is rolled back,
 *   a forget whose manifest remains is finished, by the next operation that
 *   holds the lock "user-U"). Every 16 entries a base is written at the last
 *   entry; older entries and bases and the refs of forgotten snapshots are
 *   deleted, the last entry is kept (`usage` reads only it).
 *
 *   inodes      := header("CAIRNINO") snap_id[32] nitems:u32 comp:u8
 *                  stored_len:u32 stored[stored_len]  check
 *                  (inodes/<snap hex>: per regular file and directory of the
 *                   snapshot's content tree, in tree order depth first (a
 *                   directory before its entries), one item; stored is the
 *                   columns below, zstd-compressed when comp = 1, raw when
 *                   comp = 0 (then stored_len = 21 * nitems):
 *                   kind:u8 * n (1 = regular file, 2 = directory), then
 *                   value:u64 * n, ctime_sec:i64 * n, ctime_nsec:u32 * n.
 *                   A file's value is its inode number minus the previous
 *                   file's (mod 2^64), its ctime_sec the same kind of
 *                   difference (both from 0 for the first file); a
 *                   directory's value counts the items inside it at every
 *                   depth (at most the items after it), its ctimes are 0.
 *                   Written after the manifest, by takes of a root (not
 *                   upper mode, not imports); deleted after a forget
 *                   deletes the manifest, and by gc when its manifest is
 *                   gone. Only an accelerator: a take whose parent's record
 *                   is missing, damaged or does not fit its trees reads the
 *                   files it cannot match.)
 *   restore record := the same bytes as an inodes record, of the restored
 *                  snapshot, with the inode numbers and ctimes a restore
 *                  gave the files it wrote (0 for hardlinked ones: linking
 *                  changes the ctime). Not in the repository: on the host,
 *                  $CAIRN_STATE_DIR/restored/<st_dev hex>-<st_ino hex> of
 *                  the target directory (default /var/lib/cairn), written
 *                  tmp + fsync + rename after the restore's syncfs; used by
 *                  the first take of that directory instead of a parent,
 *                  and deleted when it commits; older than 30 days: deleted
 *                  by the next restore on the host (engine/restored.h).
 *   freeze record := header("CAIRNFRZ") pid:u32 pid_start:u64 guardian:u32
 *                  guardian_start:u64 v2:u8 pidns:u64 time_ns:i64
 *                  boot_id:str cgroup:str  check
 *                  (not in the repository: on the host,
 *                   $CAIRN_STATE_DIR/freezes/<pid>-<pid_start>, written
 *                   tmp + fsync + rename before a take freezes cgroup (an
 *                   absolute cgroup directory; v2 = 1 for cgroup v2),
 *                   deleted after the thaw or the release; *_start: the
 *                   process's start time in /proc (a reused pid is not
 *                   it); boot_id and pidns name the boot and pid namespace
 *                   that wrote it. One left behind by a take that died with
 *                   its guardian is thawed by the next cairn command or by
 *                   cairn recover (engine/freeze/records.c; codec:
 *                   engine/freeze/codec.c). A reader refuses a boot_id of
 *                   64 bytes or more, a cgroup of PATH_MAX or more, a NUL
 *                   in either, a cgroup not starting with '/'.)
 *   session     := header("CAIRNSES") start_ns:i64 expiry_ns:i64 pid:u32
 *                  host:str  check
 *                  (gc/sessions/<32 hex>: a process that opened the repository;
 *                   written before it loads the index, refreshed by a thread,
 *                   deleted at close; docs/operations.md "Garbage collection")
 *   gc marks    := header("CAIRNGCM") time_ns:i64
 *                  nmarks:u32 gcmark*nmarks ncands:u32 gccand*ncands  check
 *   gcmark      := id[32] marked_ns:i64 gone_ns:i64 flags:u8
 *                  (a blob no snapshot references, marked at marked_ns (the
 *                   time the mark was durable; flag 1 = provisional: time not
 *                   known durable, marked again); gone_ns != 0: left the index
 *                   then; kept until no session can still hold it)
 *   gccand      := kind:u8 name:str seen_ns:i64
 *                  (kind 1 = an unindexed pack, 2 = a tmp/ leftover; first
 *                   seen deletable at seen_ns; names only under packs/, tmp/)
 *   damaged     := header("CAIRNDMG") time_ns:i64 reason:str  check
 *                  (damaged/<64 hex>: written by fsck --repair; restore
 *                   refuses the snapshot with exit 4)
 *
 * Rules for readers: check magic, version and check before anything else;
 * bounds-check every length, offset and count against the bytes present;
 * reject tree entry names that are empty, ".", "..", contain '/' or NUL, or
 * are not in strictly ascending memcmp order.
 *
 * Repository layout (dir backend):
 *   config                     the config file
 *   packs/XX/<32 hex>          packs; XX = first two hex digits of the pack id
 *   index/<32 hex>             index segments (one or more per take; merged
 *                              at take commit and by gc, docs/performance.md "Index
 *                              memory, measured")
 *   snapshots/<64 hex>         manifests; a snapshot exists exactly when its
 *                              manifest does (the commit point)
 *   users/U/quota, users/U/refs/<64 hex>, users/U/log/<16 hex>,
 *   users/U/base/<16 hex>      per-user accounting (above)
 *   tmp/                       files being written; leftovers removed by gc
 *   gc/sessions/<32 hex>       sessions of processes using the repository
 *   gc/marks/<32 hex>          gc's marks and candidates (one, two during a swap)
 *   inodes/<64 hex>            inodes records of snapshots (above)
 *   damaged/<64 hex>           snapshots fsck --repair found damaged
 *   quarantine/packs/XX/<32 hex>  damaged packs moved aside by fsck --repair
 *   locks/NAME                 s3 backend: text "token host pid expiry_ms\n"
 *                              (token 32 hex; expiry_ms wall-clock ms since the
 *                              epoch, 0 when released; the object stays);
 *                              locks/create.<32 hex> guards a create-only
 *                              multipart commit (hex: sha256 of the name);
 *                              packs are not committed create-only since
 *                              0.2.1 (fresh random names), so none are made
 *                              for them any more
 */
#ifndef CAIRN_FORMAT_H
#define CAIRN_FORMAT_H

#include <stdint.h>

#define FORMAT_VERSION 1
#define FORMAT_HEADER_LEN 16
#define FORMAT_CHECK_LEN 8

#define MAGIC_CONFIG "CAIRNCFG"
#define MAGIC_PACK "CAIRNPAK"
#define MAGIC_INDEX "CAIRNIDX"
#define MAGIC_TREE "CAIRNTRE"
#define MAGIC_SNAPSHOT "CAIRNSNP"
#define MAGIC_SESSION "CAIRNSES"
#define MAGIC_FREEZE "CAIRNFRZ"
#define MAGIC_GCMARKS "CAIRNGCM"
#define MAGIC_DAMAGED "CAIRNDMG"
#define MAGIC_INODES "CAIRNINO"
#define MAGIC_MOUNT_LOG "CAIRNMCL"
#define MAGIC_TRACE "CAIRNTRC"
#define GCMARK_PROVISIONAL 1
#define MAGIC_USER_QUOTA "CAIRNUQT"
#define MAGIC_USER_REFS "CAIRNURF"
#define MAGIC_USER_LOG "CAIRNULG"
#define MAGIC_USER_BASE "CAIRNUBS"

/* manifest header flags */
#define SNAPSHOT_HAS_ADDED 1

/* blob types */
#define BLOB_DATA 1
#define BLOB_TREE 2

/* blob compression */
#define COMP_NONE 0
#define COMP_ZSTD 1

#define BLOB_HEADER_LEN 44   /* id type comp reserved raw_len stored_len */
#define BLOB_OVERHEAD (BLOB_HEADER_LEN + 8)
#define PACK_DIR_ENTRY_LEN 48
#define PACK_FOOTER_LEN 8
#define INDEX_ENTRY_LEN 52
#define INDEX_VERSION 2         /* index segments' own layout version */
#define INDEX_BLOCK_ENTRIES 78  /* 78 * 52 + 8 = 4064: a block fits 4 KiB */
#define INDEX_FENCE_LEN 8
#define INDEX_TAIL_LEN 24
#define PACK_ID_LEN 16

/* tree entry types */
#define TREE_REG 1
#define TREE_DIR 2
#define TREE_SYMLINK 3
#define TREE_FIFO 4
#define TREE_CHR 5
#define TREE_BLK 6

/* Limits enforced by writers and readers. */
#define MAX_NAME_LEN 255
#define MAX_XATTR_NAME_LEN 255
#define MAX_XATTR_VALUE_LEN (64u * 1024u)
#define MAX_SYMLINK_LEN 4095
#define MAX_CHUNK_LEN (16u * 1024u * 1024u)  /* largest chunk_max accepted */
#define MAX_TREE_LEN (1024u * 1024u * 1024u) /* largest tree object */
#define MAX_PACK_LEN 0xF0000000u             /* offsets are u32 */
#define MAX_STR_LEN 4096

/* Defaults; see docs/architecture.md "Choosing the defaults". */
#define DEFAULT_CHUNK_AVG (512u * 1024u)
#define DEFAULT_ZSTD_LEVEL 3
#define PACK_TARGET_LEN (32u * 1024u * 1024u) /* a directory's and S3's; RADOS: 4 MiB (rados/internal.h) */

/* Little-endian field access. */
static inline void put_u16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t get_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t get_u64(const uint8_t *p)
{
	return (uint64_t)get_u32(p) | ((uint64_t)get_u32(p + 4) << 32);
}

#endif
