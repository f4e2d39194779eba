/* User names (SPEC's USER): the one rule, used by every command and the API.
 * A user's records live under users/U/ (format.h), so a name must be one
 * path component that every backend lists: no "." or "..", and no leading
 * '.' (the directory backend hides dot-entries, so such a user's records
 * would be missing from listings such as `usage`). */
#ifndef CAIRN_USER_H
#define CAIRN_USER_H

#define USER_NAME_MAX 64

/* 1 when u is 1 to 64 characters of [A-Za-z0-9._-] not starting with '.'. */
int user_name_valid(const char *u);
/* 0, or CAIRN_EUSAGE with the rule in the message, naming u. */
int user_name_check(const char *u);

#endif
