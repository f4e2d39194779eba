#include "env.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *env(const char *name)
{
	const char *v = getenv(name);
	return v && *v ? v : NULL;
}

/* 1 when the variable is exactly "1". */
static int env_flag(const char *name)
{
	const char *v = env(name);
	return v && strcmp(v, "1") == 0;
}

/* A number within [lo, hi]; 0 (the engine's default) when unset. */
static int env_num(const char *name, unsigned long long lo, unsigned long long hi, unsigned long long *out,
                   char *err, size_t errlen)
{
	const char *v = env(name);
	*out = 0;
	if (!v) return 0;
	char *e;
	errno = 0;
	unsigned long long x = strtoull(v, &e, 10);
	if (errno || *e || v[0] == '-' || x < lo || x > hi) {
		snprintf(err, errlen, "%s=%s: must be a number from %llu to %llu", name, v, lo, hi);
		return CAIRN_EUSAGE;
	}
	*out = x;
	return 0;
}

int env_open_options(cairn_repo_open_options *o, char *err, size_t errlen)
{
	unsigned long long tries, stall, mpmin;
	o->state_dir = env("CAIRN_STATE_DIR");
	o->no_uring = env_flag("CAIRN_NO_URING");
	const char *pc = env("CAIRN_PRIOR_CUTS");
	o->no_prior_cuts = pc && strcmp(pc, "0") == 0;
	o->fault = env("CAIRN_FAULT");
	o->test_uring_always = env_flag("CAIRN_URING_ALWAYS");
	o->test_no_xattrat = env_flag("CAIRN_NO_XATTRAT");
	o->rados.client_id = env("CEPH_CLIENT_ID");
	o->rados.conf = env("CEPH_CONF");
	o->rados.timeout_s = env("CAIRN_RADOS_TIMEOUT");
	o->s3.endpoint = env("CAIRN_S3_ENDPOINT");
	o->s3.region = env("AWS_REGION") ? env("AWS_REGION") : env("AWS_DEFAULT_REGION");
	o->s3.access_key_id = env("AWS_ACCESS_KEY_ID");
	o->s3.secret_access_key = env("AWS_SECRET_ACCESS_KEY");
	o->s3.session_token = env("AWS_SESSION_TOKEN");
	if (env_num("CAIRN_S3_TRIES", 1, 20, &tries, err, errlen) < 0 ||
	    env_num("CAIRN_S3_STALL_S", 1, 3600, &stall, err, errlen) < 0 ||
	    env_num("CAIRN_S3_MULTIPART_MIN", 8ull << 20, 5ull << 30, &mpmin, err, errlen) < 0)
		return CAIRN_EUSAGE;
	o->s3.tries = (unsigned)tries;
	o->s3.stall_s = (unsigned)stall;
	o->s3.multipart_min = mpmin;
	return 0;
}
