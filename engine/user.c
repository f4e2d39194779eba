/* User names: see user.h. */
#include "user.h"

#include <string.h>

#include "cairn.h"
#include "error.h"

int user_name_valid(const char *u)
{
	if (!u) return 0;
	size_t n = strlen(u);
	if (n < 1 || n > USER_NAME_MAX || u[0] == '.') return 0;
	for (size_t i = 0; i < n; i++) {
		char c = u[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

int user_name_check(const char *u)
{
	if (user_name_valid(u)) return 0;
	return error_set(CAIRN_EUSAGE,
	                 "user %s: must be 1-64 characters of [A-Za-z0-9._-], not starting with '.'",
	                 u ? u : "(none)");
}

CAIRN_EXTERN int cairn_user_name_valid(const char *user) { return user_name_valid(user); }
