/* duration.c — Prometheus duration syntax; see duration.h. */
#include "base/duration.h"

#include <limits.h>

static const struct {
	const char *unit;
	int64_t ms;
} units[] = {
	{"y", 365LL * 24 * 3600 * 1000}, {"w", 7LL * 24 * 3600 * 1000}, {"d", 24LL * 3600 * 1000},
	{"h", 3600LL * 1000},            {"m", 60LL * 1000},            {"s", 1000},
	{"ms", 1},
};
enum { NUNITS = sizeof units / sizeof units[0] };

int duration_parse(str_t s, int64_t *out, err_t *err)
{
	if (s.n == 1 && s.p[0] == '0') {
		*out = 0;
		return 0;
	}
	if (s.n == 0)
		return err_set(err, ERR_INVALID, "empty duration string");
	int64_t total = 0;
	size_t i = 0;
	int next_unit = 0; /* units must appear in order, each at most once */
	while (i < s.n) {
		if (s.p[i] < '0' || s.p[i] > '9')
			goto bad;
		uint64_t v = 0;
		while (i < s.n && s.p[i] >= '0' && s.p[i] <= '9') {
			v = v * 10 + (uint64_t)(s.p[i] - '0');
			if (v > (uint64_t)INT64_MAX)
				goto bad;
			i++;
		}
		size_t us = i;
		while (i < s.n && (s.p[i] < '0' || s.p[i] > '9'))
			i++;
		str_t unit = {s.p + us, i - us};
		int u = -1;
		for (int k = next_unit; k < NUNITS; k++) {
			if (str_eq_c(unit, units[k].unit)) {
				u = k;
				break;
			}
		}
		if (u < 0)
			goto bad;
		next_unit = u + 1;
		if (v > (uint64_t)(INT64_MAX - total) / (uint64_t)units[u].ms)
			return err_set(err, ERR_INVALID, "duration out of range: \"%.*s\"", STR_ARG(s));
		total += (int64_t)v * units[u].ms;
	}
	*out = total;
	return 0;
bad:
	return err_set(err, ERR_INVALID, "not a valid duration string: \"%.*s\"", STR_ARG(s));
}

void duration_format(buf_t *b, int64_t ms)
{
	if (ms == 0) {
		buf_puts(b, "0s");
		return;
	}
	uint64_t u = ms < 0 ? (uint64_t)0 - (uint64_t)ms : (uint64_t)ms;
	if (ms < 0)
		buf_putc(b, '-');
	for (int k = 0; k < NUNITS; k++) {
		uint64_t unit = (uint64_t)units[k].ms;
		/* Years and weeks only when exact: "90d" reads better than "12w6d". */
		if (k < 2 && u % unit)
			continue;
		if (u >= unit) {
			buf_put_u64(b, u / unit);
			buf_puts(b, units[k].unit);
			u %= unit;
		}
	}
}
