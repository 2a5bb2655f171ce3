/* api_params.c — Prometheus HTTP API parameter parsing; see api_params.h. */
#include "net/api_params.h"

#include <math.h>

#include "base/clock.h"
#include "base/duration.h"

int api_parse_time(str_t s, int64_t *ms, err_t *err)
{
	double f;
	if (str_to_double(s, &f)) {
		if (!isfinite(f) || f > 9.2e15 || f < -9.2e15)
			goto bad;
		double secs;
		double frac = modf(f, &secs);
		*ms = (int64_t)secs * 1000 + (int64_t)llround(frac * 1000);
		return 0;
	}
	if (str_eq_c(s, "-292273086-05-16T16:47:06Z")) {
		*ms = API_MIN_TIME_MS;
		return 0;
	}
	if (str_eq_c(s, "292277025-08-18T07:12:54.999999999Z")) {
		*ms = API_MAX_TIME_MS;
		return 0;
	}
	if (rfc3339_parse_ms(s, ms))
		return 0;
bad:
	return err_set(err, ERR_INVALID, "cannot parse \"%.*s\" to a valid timestamp", STR_ARG(s));
}

int api_parse_duration(str_t s, int64_t *ms, err_t *err)
{
	double f;
	if (str_to_double(s, &f)) {
		double v = f * 1000.0;
		if (!(v < 9.2e15 && v > -9.2e15))
			return err_set(err, ERR_INVALID, "cannot parse \"%.*s\" to a valid duration. It overflows int64",
				       STR_ARG(s));
		*ms = (int64_t)llround(v);
		return 0;
	}
	if (duration_parse(s, ms, NULL) == 0)
		return 0;
	return err_set(err, ERR_INVALID, "cannot parse \"%.*s\" to a valid duration", STR_ARG(s));
}

int api_param_time(str_t s, const char *name, int64_t def, int64_t *ms, err_t *err)
{
	if (s.n == 0) {
		*ms = def;
		return 0;
	}
	if (api_parse_time(s, ms, err))
		return err_wrap(err, "invalid parameter \"%s\": Invalid time value for '%s'", name, name);
	return 0;
}

int api_range_params(str_t start, str_t end, str_t step, int64_t *start_ms, int64_t *end_ms, int64_t *step_ms,
		     err_t *err)
{
	if (api_parse_time(start, start_ms, err))
		return err_wrap(err, "invalid parameter \"start\"");
	if (api_parse_time(end, end_ms, err))
		return err_wrap(err, "invalid parameter \"end\"");
	if (*end_ms < *start_ms)
		return err_set(err, ERR_INVALID,
			       "invalid parameter \"end\": end timestamp must not be before start time");
	if (api_parse_duration(step, step_ms, err))
		return err_wrap(err, "invalid parameter \"step\"");
	if (*step_ms <= 0)
		return err_set(err, ERR_INVALID,
			       "invalid parameter \"step\": zero or negative query resolution step widths are not "
			       "accepted. Try a positive integer");
	/* For safety, limit the number of returned points per timeseries (integer division, as Go). */
	if ((*end_ms - *start_ms) / *step_ms > 11000)
		return err_set(err, ERR_INVALID,
			       "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the "
			       "query resolution (?step=XX)");
	return 0;
}
