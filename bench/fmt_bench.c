/*
 * fmt_bench — ns per value of the API's float formatting (src/base/fmt.c), what every point of a query
 * result costs, against the snprintf + strtod formatter it replaced (kept here as "old").
 *
 *     build/bench/fmt_bench [values]      (default 1,000,000 per set)
 *
 * Sets: counters (integers below 2^53), short decimals (n / 10^k, up to 8 digits), query results (ratios
 * and means: 16-17 digits), gauges in bytes (large integers and their 1h averages), random bit patterns
 * (every exponent, subnormals; 'e' layout mostly), long decimals (16-17 digits below 10^7, the point
 * anywhere from before the first digit to after the seventh: what rates, ratios and means print; ~90% of
 * the dashboard bench's points). Each set is formatted with buf_put_prom_value into a
 * buffer reset every 4,096 values; time is the thread's CPU time (so it holds on a shared machine), best
 * of 5. Prints RESULT lines; the floor is <= 60 ns per value.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/fmt.h"

static uint64_t cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t rng_state = 0x2545F4914F6CDD1DULL;

static uint64_t rng(void)
{
	uint64_t x = rng_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

/* The formatter before issue 24: up to three snprintf("%.*e") + strtod rounds per value. */
static int old_shortest_digits(double v, char *d, int *dp)
{
	char tmp[40];
	double a = fabs(v);
	for (int prec = a < 2.2250738585072014e-308 ? 1 : 15; prec <= 17; prec++) {
		snprintf(tmp, sizeof tmp, "%.*e", prec - 1, a);
		if (prec < 17 && strtod(tmp, NULL) != a)
			continue;
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
	return 0;
}

static void old_prom_value(buf_t *b, double v)
{
	if (isnan(v) || isinf(v) || v == 0) {
		buf_put_prom_value(b, v);
		return;
	}
	if (signbit(v))
		buf_putc(b, '-');
	char d[24];
	int dp;
	int nd = old_shortest_digits(v, d, &dp);
	double a = fabs(v);
	if (a < 1e-6 || a >= 1e21) {
		buf_putc(b, d[0]);
		if (nd > 1) {
			buf_putc(b, '.');
			buf_append(b, d + 1, (size_t)nd - 1);
		}
		buf_printf(b, "e%c%02d", dp - 1 < 0 ? '-' : '+', abs(dp - 1));
	} else if (dp <= 0) {
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

static double run(const double *v, size_t n, void (*put)(buf_t *, double), size_t *bytes)
{
	buf_t b = BUF_INIT;
	double best = 1e30;
	for (int round = 0; round < 5; round++) {
		size_t total = 0;
		uint64_t t0 = cpu_ns();
		for (size_t i = 0; i < n; i++) {
			if ((i & 4095) == 0) {
				total += b.n;
				buf_reset(&b);
			}
			put(&b, v[i]);
		}
		double ns = (double)(cpu_ns() - t0) / (double)n;
		if (ns < best)
			best = ns;
		*bytes = total + b.n;
	}
	buf_release(&b);
	return best;
}

int main(int argc, char **argv)
{
	size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
	double *v = xcalloc(n, sizeof *v);
	static const char *const names[] = {"counters",    "short_decimals", "query_results",
	                                    "byte_gauges", "random_bits",    "long_decimals"};
	double worst = 0;
	for (int set = 0; set < 6; set++) {
		for (size_t i = 0; i < n; i++) {
			uint64_t r = rng();
			switch (set) {
			case 0:
				v[i] = (double)(r % 100000000000ULL);
				break;
			case 1:
				v[i] = (double)(r % 100000000) / pow(10, (double)((r >> 40) % 6));
				break;
			case 2:
				v[i] = (double)(r % 1000003) / (double)(1 + (r >> 32) % 997) *
				       ((r >> 20) % 2 ? 1e-3 : 1);
				break;
			case 3:
				v[i] = (double)(r % (64ULL << 30)) / ((r >> 40) % 2 ? 1 : 120);
				break;
			case 4:
				memcpy(&v[i], &r, sizeof r);
				if (!isfinite(v[i]))
					v[i] = 1.5;
				break;
			default:
				v[i] = ldexp((double)(r >> 11), -53) * pow(10, (double)((r >> 3) % 7));
			}
		}
		size_t bytes, old_bytes;
		double ns = run(v, n, buf_put_prom_value, &bytes);
		double old = run(v, n, old_prom_value, &old_bytes);
		if (bytes != old_bytes)
			printf("  %s: output lengths differ (%zu vs %zu bytes)\n", names[set], bytes,
			       old_bytes);
		if (ns > worst)
			worst = ns;
		printf("RESULT fmt_%s_ns %.1f ns/value (old snprintf+strtod: %.1f ns, %.1fx faster)\n",
		       names[set], ns, old, old / ns);
	}
	printf("RESULT fmt_worst_set_ns %.1f ns/value (floor <= 60)\n", worst);
	free(v);
	return 0;
}
