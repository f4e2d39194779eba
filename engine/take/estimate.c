/* The take (take.h): cairn_estimate: a dry-run take with the user's usage. */
#include "take.h"

#include <string.h>

#include "cairn.h"
#include "error.h"
#include "options.h"
#include "user.h"

/* A dry-run take with the user's usage: what a take would add, and whether
 * it fits the quota. */
CAIRN_EXTERN int cairn_estimate(cairn_estimate_result *out, cairn_repo *repo,
                                const cairn_take_options *opts)
{
	static const size_t result_sizes[] = {sizeof(cairn_estimate_result)};
	cairn_take_result tr = CAIRN_TAKE_RESULT_INIT;
	cairn_estimate_result r = CAIRN_ESTIMATE_RESULT_INIT;
	cairn_take_options o;
	int rc = result_check(out, CAIRN_ESTIMATE_RESULT_VERSION, "estimate");
	if (rc == 0) rc = take_options_load(&o, opts, "estimate");
	if (rc < 0) return rc;
	o.dry_run = 1;
	o.cgroup = NULL; /* an estimate never pauses the instance */
	o.release = 0;
	const char *user = o.user ? o.user : "default";
	rc = user_name_check(user);
	if (rc == 0) rc = cairn_take(&tr, repo, &o);
	if (rc == 0) rc = cairn_usage_get(&r.usage, repo, user);
	if (rc < 0) return rc;
	r.added_bytes = tr.charged_bytes;
	r.files = tr.files;
	r.bytes = tr.bytes;
	r.new_bytes = tr.new_bytes;
	r.stored_bytes = tr.stored_bytes;
	r.fits = !r.usage.has_quota || r.added_bytes == 0 || r.usage.used_bytes + r.added_bytes <= r.usage.quota_bytes;
	result_copy(out, &r, result_sizes);
	return 0;
}
