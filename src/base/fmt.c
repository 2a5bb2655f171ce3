/* fmt.c — Go-compatible float formatting; see fmt.h.
 *
 * Shortest round-trip digits: the correctly rounded 15-significant-digit decimal round-trips for every
 * double whose shortest representation has at most 15 digits (decimals that short are spaced more than
 * two ulps apart, so rounding v to 15 digits lands exactly on it); otherwise try 16, then 17 (always
 * enough). The nearest candidate of a given length is what Go's shortest algorithm picks as well. */
#include "base/fmt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int float_shortest_digits(double v, char *d, int *dp)
{
	char tmp[40];
	double a = fabs(v);
	/* Subnormals have fewer significant bits, so short decimals are no longer sparse: search all. */
	for (int prec = a < 2.2250738585072014e-308 ? 1 : 15; prec <= 17; prec++) {
		snprintf(tmp, sizeof tmp, "%.*e", prec - 1, a);
		if (prec < 17 && strtod(tmp, NULL) != a)
			continue;
		/* tmp = "d.ddddde[+-]XX" */
		int nd = 0;
		const char *p = tmp;
		for (; *p && *p != 'e'; p++)
			if (*p != '.')
				d[nd++] = *p;
		int exp = atoi(p + 1);
		while (nd > 1 && d[nd - 1] == '0')
			nd--;
		*dp = exp + 1;
		return nd;
	}
	return 0; /* unreachable */
}

static bool special(buf_t *b, double v)
{
	if (isnan(v)) {
		buf_puts(b, "NaN");
		return true;
	}
	if (isinf(v)) {
		buf_puts(b, v > 0 ? "+Inf" : "-Inf");
		return true;
	}
	return false;
}

static void put_e(buf_t *b, const char *d, int nd, int dp)
{
	buf_putc(b, d[0]);
	if (nd > 1) {
		buf_putc(b, '.');
		buf_append(b, d + 1, (size_t)nd - 1);
	}
	int exp = dp - 1;
	buf_putc(b, 'e');
	buf_putc(b, exp < 0 ? '-' : '+');
	if (exp < 0)
		exp = -exp;
	if (exp < 10)
		buf_putc(b, '0');
	buf_printf(b, "%d", exp);
}

static void put_f(buf_t *b, const char *d, int nd, int dp)
{
	if (dp <= 0) {
		buf_puts(b, "0.");
		for (int i = 0; i < -dp; i++)
			buf_putc(b, '0');
		buf_append(b, d, (size_t)nd);
	} else if (dp >= nd) {
		buf_append(b, d, (size_t)nd);
		for (int i = nd; i < dp; i++)
			buf_putc(b, '0');
	} else {
		buf_append(b, d, (size_t)dp);
		buf_putc(b, '.');
		buf_append(b, d + dp, (size_t)(nd - dp));
	}
}

void buf_put_float(buf_t *b, double v, char fmt)
{
	if (special(b, v))
		return;
	if (signbit(v))
		buf_putc(b, '-');
	if (v == 0) {
		buf_puts(b, fmt == 'e' ? "0e+00" : "0");
		return;
	}
	char d[24];
	int dp;
	int nd = float_shortest_digits(v, d, &dp);
	if (fmt == 'g') {
		int exp = dp - 1;
		fmt = (exp < -4 || exp >= 6) ? 'e' : 'f';
	}
	if (fmt == 'e')
		put_e(b, d, nd, dp);
	else
		put_f(b, d, nd, dp);
}

void buf_put_prom_value(buf_t *b, double v)
{
	double a = fabs(v);
	buf_put_float(b, v, (v != 0 && (a < 1e-6 || a >= 1e21) && !isnan(v) && !isinf(v)) ? 'e' : 'f');
}

void buf_put_prom_ts(buf_t *b, int64_t ms)
{
	uint64_t u = ms < 0 ? (uint64_t)0 - (uint64_t)ms : (uint64_t)ms;
	if (ms < 0)
		buf_putc(b, '-');
	buf_put_u64(b, u / 1000);
	unsigned frac = (unsigned)(u % 1000);
	if (frac) {
		char t[4] = {'.', (char)('0' + frac / 100), (char)('0' + frac / 10 % 10), (char)('0' + frac % 10)};
		buf_append(b, t, 4);
	}
}

void buf_put_json_seconds(buf_t *b, int64_t ms)
{
	/* Go encoding/json: 'f' unless 0 < |v| < 1e-6 or |v| >= 1e21, then 'e' with a minimal exponent
	 * ("1e-07" becomes "1e-7"). */
	double v = (double)ms / 1000.0;
	double a = fabs(v);
	if (v != 0 && (a < 1e-6 || a >= 1e21)) {
		size_t start = b->n;
		buf_put_float(b, v, 'e');
		char *e = strchr(b->p + start, 'e');
		if (e && e[2] == '0' && e[3]) {
			memmove(e + 2, e + 3, strlen(e + 3) + 1);
			b->n--;
		}
		return;
	}
	buf_put_float(b, v, 'f');
}
