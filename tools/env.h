/* The CLI's environment, mapped to the engine's options: the library reads
 * no environment variable (cairn.h), the CLI reads these (README
 * "Environment"). Also built into the tests of the remote backends. */
#ifndef CAIRN_TOOLS_ENV_H
#define CAIRN_TOOLS_ENV_H

#include <stddef.h>

#include "cairn.h"

/* Fill o (initialised by the caller) from the environment (--ceph-conf is
 * put there as CEPH_CONF by the option parser). The strings point into the
 * environment. CAIRN_EUSAGE with the message in err for a bad value. */
int env_open_options(cairn_repo_open_options *o, char *err, size_t errlen);

#endif
