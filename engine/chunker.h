/* FastCDC content-defined chunking with normalized chunking (Xia et al. 2016/2020).
 * The gear table is derived from the repository secret, so cut points
 * cannot be predicted without it. */
#ifndef CAIRN_CHUNKER_H
#define CAIRN_CHUNKER_H

#include <stddef.h>
#include <stdint.h>

typedef struct chunker_params {
	uint32_t min, avg, max;
	uint64_t mask_s; /* harder mask, used below avg */
	uint64_t mask_l; /* easier mask, used from avg on */
	uint64_t gear[256];
} chunker_params;

/* avg must be a power of two; min = avg/4, max = avg*4 are the usual choice. */
void chunker_init(chunker_params *p, const uint8_t secret[32], uint32_t min, uint32_t avg,
                  uint32_t max);

/* Length of the next chunk at the start of data[0..len). The caller passes
 * len >= p->max unless the stream ends within data (then the whole rest may
 * be returned). Result is in [1, len]; it is < p->min only when len < p->min. */
size_t chunker_cut(const chunker_params *p, const uint8_t *data, size_t len);

#endif
