/* The take (take.h): cairn_estimate: a dry-run take with the user's usage. */
#include "take.h"

#include <string.h>

#include "cairn.h"
#include "error.h"
#include "user.h"

/* A dry-run take with the user's usage: what a take would add, and whether
 * it fits the quota. */
CAIRN_EXTERN int cairn_estimate(cairn_estimate_result *out, cairn_repo *repo,
                                const cairn_take_options *opts)
{
	cairn_take_result tr;
	memset(out, 0, sizeof(*out));
	if (!opts || opts->version != CAIRN_TAKE_OPTIONS_VERSION)
		return error_set(CAIRN_EUSAGE, "estimate: missing or unsupported options");
	cairn_take_options o = *opts;
	o.dry_run = 1;
	o.cgroup = NULL; /* an estimate never pauses the instance */
	o.release = 0;
	const char *user = o.user ? o.user : "default";
	int rc = user_name_check(user);
	if (rc == 0) rc = cairn_take(&tr, repo, &o);
	if (rc == 0) rc = cairn_usage_get(&out->usage, repo, user);
	if (rc < 0) return rc;
	out->added_bytes = tr.charged_bytes;
	out->files = tr.files;
	out->bytes = tr.bytes;
	out->new_bytes = tr.new_bytes;
	out->stored_bytes = tr.stored_bytes;
	out->fits = !out->usage.has_quota || out->added_bytes == 0 ||
	            out->usage.used_bytes + out->added_bytes <= out->usage.quota_bytes;
	return 0;
}
