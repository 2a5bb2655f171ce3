/*
 * err.h — errors that carry a message.
 *
 * Functions that can fail return int: 0 on success, a negative ERR_* code on failure, and fill an
 * err_t the caller passes in (may be NULL when the caller does not care about the message). The
 * message says what failed and where ("index: /data/01H.../index: offset 4096: bad CRC32C").
 *
 *     err_t err = {0};
 *     if (index_reader_open(&r, path, &err)) { log_error("open failed", "err", err.msg); ... }
 */
#ifndef STRATA_BASE_ERR_H
#define STRATA_BASE_ERR_H

#include <stdarg.h>

enum {
	ERR_OK = 0,
	ERR_INVALID = -1,     /* bad input: parse error, bad argument, bad config */
	ERR_NOT_FOUND = -2,   /* object, file, series, key does not exist */
	ERR_IO = -3,          /* system call failed (errno in message) */
	ERR_CORRUPT = -4,     /* on-disk or on-wire data is malformed */
	ERR_LIMIT = -5,       /* a configured limit was exceeded */
	ERR_TIMEOUT = -6,     /* deadline exceeded */
	ERR_CANCELED = -7,    /* caller cancelled */
	ERR_ACCESS = -8,      /* permission / credentials denied */
	ERR_TRANSIENT = -9,   /* retryable remote failure */
	ERR_UNAVAILABLE = -10, /* peer not ready / down */
	ERR_INTERNAL = -11,   /* anything else */
};

#define ERR_MSG_MAX 2048 /* room for PromQL errors that quote two whole label sets */

typedef struct err {
	int code;
	char msg[ERR_MSG_MAX];
} err_t;

/* Set code and message; returns code so callers can `return err_set(err, ERR_INVALID, ...)`.
 * err may be NULL. */
int err_set(err_t *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int err_setv(err_t *err, int code, const char *fmt, va_list ap);
/* Set from errno: "<what>: strerror(errno)". Returns ERR_IO (or ERR_NOT_FOUND for ENOENT,
 * ERR_ACCESS for EACCES/EPERM). */
int err_errno(err_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefix the existing message: "<prefix>: <old msg>". Returns err->code. */
int err_wrap(err_t *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void err_clear(err_t *err);
const char *err_code_name(int code);

#endif
