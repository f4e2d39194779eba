/* The FUSE kernel protocol beyond Debian 12's <linux/fuse.h> (7.38): what
 * passthrough (7.40) added, written from the kernel's uapi header. */
#ifndef CAIRN_FUSE_ABI_H
#define CAIRN_FUSE_ABI_H

#include <linux/fuse.h>
#include <stdint.h>
#include <sys/ioctl.h>

/* the minor version this server speaks (the kernel here speaks 7.45) */
#define CAIRN_FUSE_MINOR 40

#ifndef FUSE_PASSTHROUGH
#define FUSE_PASSTHROUGH (1ULL << 37)
#endif
#ifndef FOPEN_PASSTHROUGH
#define FOPEN_PASSTHROUGH (1 << 7)
#endif

/* fuse_init_out of 7.40: max_stack_depth took the first unused word */
struct cairn_fuse_init_out {
	uint32_t major;
	uint32_t minor;
	uint32_t max_readahead;
	uint32_t flags;
	uint16_t max_background;
	uint16_t congestion_threshold;
	uint32_t max_write;
	uint32_t time_gran;
	uint16_t max_pages;
	uint16_t map_alignment;
	uint32_t flags2;
	uint32_t max_stack_depth;
	uint32_t unused[6];
};

/* fuse_open_out of 7.40: backing_id took the padding */
struct cairn_fuse_open_out {
	uint64_t fh;
	uint32_t open_flags;
	int32_t backing_id;
};

struct cairn_fuse_backing_map {
	int32_t fd;
	uint32_t flags;
	uint64_t padding;
};

#define CAIRN_FUSE_DEV_IOC_BACKING_OPEN _IOW(229, 1, struct cairn_fuse_backing_map)
#define CAIRN_FUSE_DEV_IOC_BACKING_CLOSE _IOW(229, 2, uint32_t)

#endif
