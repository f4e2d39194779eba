/* libFuzzer target: the repository config (gc's records: fuzz_gc). */
#include "repo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	repo_config c;
	repo_config_decode(&c, data, len);
	return 0;
}
