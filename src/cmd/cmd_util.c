/*
 * cmd_util.c — helpers shared by subcommands (declared in cmd.h).
 */
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/duration.h"
#include "cmd/cmd.h"

int cmd_time_or_duration(const char *flag, const char *s, int64_t *out, err_t *err)
{
	if (!strcmp(s, "0000-01-01T00:00:00Z")) {
		*out = INT64_MIN;
		return 0;
	}
	if (!strcmp(s, "9999-12-31T23:59:59Z")) {
		*out = INT64_MAX;
		return 0;
	}
	if (rfc3339_parse_ms(str_c(s), out))
		return 0;
	bool neg = s[0] == '-';
	int64_t d;
	err_t e2 = {0};
	if (duration_parse(str_c(neg ? s + 1 : s), &d, &e2) != 0)
		return err_set(err, ERR_INVALID,
		               "--%s: \"%s\" is neither an RFC 3339 time nor a duration like -2d", flag, s);
	*out = clock_now_ms() + (neg ? -d : d);
	return 0;
}
