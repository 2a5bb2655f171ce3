/*
 * log.h — structured logging in logfmt (default) or JSON, one line per event, to stderr.
 *
 *     log_info("msg", "starting", "component", "query", "addr", addr);
 *     log_error("upload failed", "block", ulid, "err", err.msg);
 *
 * Arguments after the message are key/value pairs of C strings (a NULL value prints as empty).
 * Lines look like: ts=2026-11-21T08:48:00.123Z level=info caller=query.c:42 msg=starting addr=:10902
 * Values with spaces, quotes, '=' or control characters are quoted and escaped. Thread-safe (one
 * write(2) per line). Secrets must never be passed in.
 */
#ifndef STRATA_BASE_LOG_H
#define STRATA_BASE_LOG_H

#include <stdbool.h>

#include "base/err.h"

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };
enum log_format { LOG_LOGFMT = 0, LOG_JSON = 1 };

/* Parse "debug|info|warn|error" / "logfmt|json"; ERR_INVALID with a message otherwise. */
int log_setup(const char *level, const char *format, err_t *err);
void log_set_level(enum log_level lvl);
bool log_enabled(enum log_level lvl);
/* Redirect output (tests); fd -1 restores stderr. */
void log_set_fd(int fd);

void log_write(enum log_level lvl, const char *file, int line, const char *msg, ...);

#define log_debug(msg, ...) log_write(LOG_DEBUG, __FILE__, __LINE__, (msg), ##__VA_ARGS__, (const char *)0)
#define log_info(msg, ...) log_write(LOG_INFO, __FILE__, __LINE__, (msg), ##__VA_ARGS__, (const char *)0)
#define log_warn(msg, ...) log_write(LOG_WARN, __FILE__, __LINE__, (msg), ##__VA_ARGS__, (const char *)0)
#define log_error(msg, ...) log_write(LOG_ERROR, __FILE__, __LINE__, (msg), ##__VA_ARGS__, (const char *)0)

#endif
