/*
 * duration.h — Prometheus durations ("1h30m", "2d", "1w", "1y", "500ms", "0").
 *
 * Parsing follows prometheus/common model.ParseDuration: units y w d h m s ms, each at most once,
 * largest first, integer counts; y = 365d, w = 7d; "0" is valid, "" is not. Values are int64 ms.
 * Formatting follows model.Duration.String(): largest units first, zero units omitted, "0s" for 0.
 */
#ifndef STRATA_BASE_DURATION_H
#define STRATA_BASE_DURATION_H

#include <stdint.h>

#include "base/err.h"
#include "base/str.h"

int duration_parse(str_t s, int64_t *ms, err_t *err);
void duration_format(buf_t *b, int64_t ms);

#endif
