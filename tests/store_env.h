/* Tests of the remote backends open their store as the CLI does: with the
 * settings of the environment (tools/env.h), which the library never reads. */
#ifndef CAIRN_TEST_STORE_ENV_H
#define CAIRN_TEST_STORE_ENV_H

#include "cairn.h"
#include "env.h"
#include "error.h"
#include "store.h"

static inline int env_store(store **out, const char *address, int create)
{
	cairn_repo_open_options o = CAIRN_REPO_OPEN_OPTIONS_INIT;
	char err[256];
	*out = NULL;
	if (env_open_options(&o, err, sizeof(err)) < 0) return error_set(CAIRN_EUSAGE, "%s", err);
	return create ? store_create(out, address, &o) : store_open(out, address, &o);
}

#endif
