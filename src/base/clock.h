/*
 * clock.h — wall and monotonic time, and RFC 3339 formatting/parsing.
 * Timestamps in Strata are int64 milliseconds since the Unix epoch (as in Prometheus) unless a name says
 * otherwise.
 */
#ifndef STRATA_BASE_CLOCK_H
#define STRATA_BASE_CLOCK_H

#include <stdbool.h>
#include <stdint.h>

#include "base/str.h"

int64_t clock_now_ms(void);   /* wall clock, ms since epoch */
int64_t clock_now_ns(void);   /* wall clock, ns since epoch */
uint64_t clock_mono_ns(void); /* monotonic, arbitrary origin */
static inline uint64_t clock_mono_ms(void)
{
	return clock_mono_ns() / 1000000u;
}
double clock_since_s(uint64_t mono_start_ns); /* seconds elapsed since a clock_mono_ns() value */

/* "2026-11-21T08:48:00.123Z" (ms precision, always 3 digits, UTC). */
void buf_put_rfc3339_ms(buf_t *b, int64_t ms);
/* Parse RFC 3339 / RFC 3339 nano ("2006-01-02T15:04:05.999999999Z07:00") into ms (sub-ms truncated
 * toward the earlier instant like Prometheus rounds). false if malformed. */
bool rfc3339_parse_ms(str_t s, int64_t *ms);

#endif
