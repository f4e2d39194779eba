/* libFuzzer target: the repository config, and gc's records (sessions and
 * marks), chosen by the input's magic. */
#include <string.h>

#include "format.h"
#include "repo.h"
#include "session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	if (len >= 8 && (memcmp(data, MAGIC_SESSION, 8) == 0 || memcmp(data, MAGIC_GCMARKS, 8) == 0)) {
		gc_record_check(data, len);
		return 0;
	}
	repo_config c;
	repo_config_decode(&c, data, len);
	return 0;
}
