/* libFuzzer target: gc's records, sessions and marks, chosen by the input's
 * magic, as given and with its checksum made right (check.h). Decode must
 * never crash; a session it accepts must encode back to
 * the same bytes; a marks record re-encodes to a fixed point (decoding
 * merges repeated ids and names), and to the same bytes when nothing
 * repeats. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "format.h"
#include "session.h"

static void session(const uint8_t *data, size_t len)
{
	session_rec s;
	uint8_t *again;
	size_t alen;
	/* the reader ignores the flags word; the writer puts 0 */
	if (gc_session_decode(&s, data, len, "session") < 0 || get_u32(data + 12) != 0) return;
	/* a host name holding a NUL encodes shorter (start, expiry, pid, then its length) */
	if (strlen(s.host) != get_u16(data + FORMAT_HEADER_LEN + 20)) return;
	if (session_encode(&s, &again, &alen) < 0) return;
	if (alen != len || memcmp(again, data, len) != 0) abort();
	free(again);
}

static void gc_marks(const uint8_t *data, size_t len)
{
	marks ms, ms2;
	int64_t t;
	uint8_t *e1 = NULL, *e2 = NULL;
	size_t l1, l2;
	if (marks_init(&ms) < 0) return;
	if (marks_init(&ms2) < 0) {
		marks_free(&ms);
		return;
	}
	if (marks_decode(&ms, data, len, "marks", &t) < 0 || marks_encode(&ms, t, &e1, &l1) < 0) goto done;
	if (marks_decode(&ms2, e1, l1, "marks again", NULL) < 0) abort();
	if (marks_encode(&ms2, t, &e2, &l2) < 0) goto done;
	if (l2 != l1 || memcmp(e1, e2, l1) != 0) abort();
	/* nothing merged (the counts as written) and flags 0: the same bytes */
	uint32_t n = get_u32(data + FORMAT_HEADER_LEN + 8);
	uint32_t nc = get_u32(data + FORMAT_HEADER_LEN + 12 + (size_t)n * (OID_LEN + 17));
	if (ms.n == n && ms.nc == nc && get_u32(data + 12) == 0 && (l1 != len || memcmp(e1, data, len) != 0)) abort();
done:
	free(e1);
	free(e2);
	marks_free(&ms);
	marks_free(&ms2);
}

static void one(const uint8_t *data, size_t len)
{
	if (len >= 8 && memcmp(data, MAGIC_SESSION, 8) == 0) session(data, len);
	else gc_marks(data, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	one(data, len);
	fuzz_with_check(data, len, one);
	return 0;
}
