/* err.c — error values with messages; see err.h. */
#include "base/err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int err_setv(err_t *err, int code, const char *fmt, va_list ap)
{
	if (err) {
		err->code = code;
		vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	}
	return code;
}

int err_set(err_t *err, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	err_setv(err, code, fmt, ap);
	va_end(ap);
	return code;
}

int err_errno(err_t *err, const char *fmt, ...)
{
	int e = errno;
	int code = e == ENOENT ? ERR_NOT_FOUND : (e == EACCES || e == EPERM) ? ERR_ACCESS : ERR_IO;
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < sizeof err->msg)
			snprintf(err->msg + n, sizeof err->msg - (size_t)n, ": %s", strerror(e));
		err->code = code;
	}
	errno = e;
	return code;
}

int err_wrap(err_t *err, const char *fmt, ...)
{
	if (!err)
		return ERR_INTERNAL;
	char old[ERR_MSG_MAX];
	memcpy(old, err->msg, sizeof old);
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof err->msg)
		snprintf(err->msg + n, sizeof err->msg - (size_t)n, ": %s", old);
	if (!err->code)
		err->code = ERR_INTERNAL;
	return err->code;
}

void err_clear(err_t *err)
{
	if (err) {
		err->code = 0;
		err->msg[0] = 0;
	}
}

const char *err_code_name(int code)
{
	switch (code) {
	case ERR_OK: return "ok";
	case ERR_INVALID: return "invalid";
	case ERR_NOT_FOUND: return "not_found";
	case ERR_IO: return "io";
	case ERR_CORRUPT: return "corrupt";
	case ERR_LIMIT: return "limit";
	case ERR_TIMEOUT: return "timeout";
	case ERR_CANCELED: return "canceled";
	case ERR_ACCESS: return "access_denied";
	case ERR_TRANSIENT: return "transient";
	case ERR_UNAVAILABLE: return "unavailable";
	default: return "internal";
	}
}
