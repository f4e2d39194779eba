/* Does clang's libFuzzer runtime link here? (tests/meson.build, run-fuzz.sh) */
#include <stddef.h>
#include <stdint.h>
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	(void)data;
	(void)len;
	return 0;
}
