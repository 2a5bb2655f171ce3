/*
 * fmt.h — number formatting exactly as Go (and therefore Prometheus) prints it.
 *
 * buf_put_float(b, v, 'f'|'e'|'g') is strconv.FormatFloat(v, fmt, -1, 64): the shortest decimal that
 * round-trips, in Go's layout ("1e-07", "1e+21", "0.30000000000000004", "NaN", "+Inf", "-Inf", "-0").
 * Go's 'g' with shortest precision uses exponent form when exp < -4 || exp >= 6 ("1e+06", "123456").
 * No snprintf/strtod: an integer fast path, then Dragonbox (see fmt.c); ~7-35 ns a value
 * (bench/fmt_bench.c).
 */
#ifndef STRATA_BASE_FMT_H
#define STRATA_BASE_FMT_H

#include <stddef.h>
#include <stdint.h>

#include "base/str.h"

/* Longest outputs: any double in any format (-0.000...0001 has 327 bytes), an API sample value, an API
 * timestamp. */
#define FMT_FLOAT_MAX      344
#define FMT_PROM_VALUE_MAX 32
#define FMT_PROM_TS_MAX    24

void buf_put_float(buf_t *b, double v, char fmt);
/* Sample value in API vectors/matrices: 'e' if v != 0 and (|v| < 1e-6 or |v| >= 1e21), else 'f'. */
void buf_put_prom_value(buf_t *b, double v);
/* Vector/matrix timestamp: seconds, and if ms != 0 a '.' and exactly 3 digits ("1.500", "-1.500"). */
void buf_put_prom_ts(buf_t *b, int64_t ms);
/* Go encoding/json float64 of ms/1000 (scalar/string results): "1700000600.5". */
void buf_put_json_seconds(buf_t *b, int64_t ms);
/* The same into out (at least FMT_*_MAX bytes, not NUL-terminated); return the length. Reentrant, no
 * allocation, no locale. */
size_t fmt_float(char *out, double v, char fmt);
size_t fmt_prom_value(char *out, double v);
size_t fmt_prom_ts(char *out, int64_t ms);
/* Shortest decimal digits of |v| (finite, non-zero): digits into d (no dot, >= 18 bytes), returns
 * count; *dp is the decimal point position (value = 0.d * 10^dp). */
int float_shortest_digits(double v, char *d, int *dp);

#endif
