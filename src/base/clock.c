/* clock.c — time sources and RFC 3339; see clock.h. */
#include "base/clock.h"

#include <stdio.h>
#include <time.h>

int64_t clock_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t clock_now_ms(void)
{
	return clock_now_ns() / 1000000;
}

uint64_t clock_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double clock_since_s(uint64_t start)
{
	return (double)(clock_mono_ns() - start) / 1e9;
}

/* Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

void buf_put_rfc3339_ms(buf_t *b, int64_t ms)
{
	int64_t secs = floor_div(ms, 1000);
	int64_t msr = ms - secs * 1000;
	int64_t days = floor_div(secs, 86400);
	int64_t sod = secs - days * 86400;
	int64_t y;
	unsigned m, d;
	civil_from_days(days, &y, &m, &d);
	buf_printf(b, "%04lld-%02u-%02uT%02d:%02d:%02d.%03dZ", (long long)y, m, d, (int)(sod / 3600),
		   (int)(sod / 60 % 60), (int)(sod % 60), (int)msr);
}

static bool digits(const char *p, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (p[i] - '0');
	}
	*out = v;
	return true;
}

bool rfc3339_parse_ms(str_t s, int64_t *ms)
{
	/* YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM) */
	const char *p = s.p;
	size_t n = s.n;
	int Y, M, D, h, mi, sec;
	if (n < 20 || !digits(p, 4, &Y) || p[4] != '-' || !digits(p + 5, 2, &M) || p[7] != '-' ||
	    !digits(p + 8, 2, &D) || (p[10] != 'T' && p[10] != 't') || !digits(p + 11, 2, &h) || p[13] != ':' ||
	    !digits(p + 14, 2, &mi) || p[16] != ':' || !digits(p + 17, 2, &sec))
		return false;
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (M < 1 || M > 12 || D < 1 || D > mdays[M - 1] || h > 23 || mi > 59 || sec > 59)
		return false;
	bool leap = (Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0;
	if (M == 2 && D == 29 && !leap)
		return false;
	size_t i = 19;
	int64_t frac_ns = 0;
	if (i < n && p[i] == '.') {
		i++;
		size_t start = i;
		int64_t scale = 100000000;
		while (i < n && p[i] >= '0' && p[i] <= '9') {
			frac_ns += (p[i] - '0') * scale;
			scale /= 10;
			i++;
		}
		if (i == start || i - start > 9)
			return false;
	}
	int64_t off = 0;
	if (i < n && (p[i] == 'Z' || p[i] == 'z')) {
		i++;
	} else if (i + 6 == n && (p[i] == '+' || p[i] == '-')) {
		int oh, om;
		if (!digits(p + i + 1, 2, &oh) || p[i + 3] != ':' || !digits(p + i + 4, 2, &om) || oh > 23 || om > 59)
			return false;
		off = (oh * 3600 + om * 60) * (p[i] == '-' ? -1 : 1);
		i += 6;
	} else {
		return false;
	}
	if (i != n)
		return false;
	int64_t secs = days_from_civil(Y, (unsigned)M, (unsigned)D) * 86400 + h * 3600 + mi * 60 + sec - off;
	*ms = secs * 1000 + frac_ns / 1000000;
	return true;
}
