/* log.c — logfmt / JSON structured logging; see log.h. */
#include "base/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/str.h"

static _Atomic int min_level = LOG_INFO;
static _Atomic int out_format = LOG_LOGFMT;
static _Atomic int out_fd = 2;

static const char *level_names[] = {"debug", "info", "warn", "error"};

int log_setup(const char *level, const char *format, err_t *err)
{
	int lvl = -1;
	for (int i = 0; i < 4; i++)
		if (level && !strcmp(level, level_names[i]))
			lvl = i;
	if (lvl < 0)
		return err_set(err, ERR_INVALID, "invalid log level \"%s\" (want debug, info, warn or error)",
			       level ? level : "");
	int fmt;
	if (!format || !strcmp(format, "logfmt"))
		fmt = LOG_LOGFMT;
	else if (!strcmp(format, "json"))
		fmt = LOG_JSON;
	else
		return err_set(err, ERR_INVALID, "invalid log format \"%s\" (want logfmt or json)", format);
	min_level = lvl;
	out_format = fmt;
	return 0;
}

void log_set_level(enum log_level lvl)
{
	min_level = lvl;
}

bool log_enabled(enum log_level lvl)
{
	return (int)lvl >= min_level;
}

void log_set_fd(int fd)
{
	out_fd = fd < 0 ? 2 : fd;
}

static void logfmt_value(buf_t *b, const char *v)
{
	if (!v)
		v = "";
	bool quote = !*v;
	for (const char *p = v; *p && !quote; p++)
		if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p == 0x7f)
			quote = true;
	if (!quote) {
		buf_puts(b, v);
		return;
	}
	buf_putc(b, '"');
	for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
		switch (*p) {
		case '"': buf_puts(b, "\\\""); break;
		case '\\': buf_puts(b, "\\\\"); break;
		case '\n': buf_puts(b, "\\n"); break;
		case '\r': buf_puts(b, "\\r"); break;
		case '\t': buf_puts(b, "\\t"); break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				buf_printf(b, "\\u%04x", *p);
			else
				buf_putc(b, (char)*p);
		}
	}
	buf_putc(b, '"');
}

static void field(buf_t *b, bool json, bool first, const char *k, const char *v)
{
	if (json) {
		if (!first)
			buf_putc(b, ',');
		buf_json_str(b, str_c(k));
		buf_putc(b, ':');
		buf_json_str(b, str_c(v ? v : ""));
	} else {
		if (!first)
			buf_putc(b, ' ');
		buf_puts(b, k);
		buf_putc(b, '=');
		logfmt_value(b, v);
	}
}

void log_write(enum log_level lvl, const char *file, int line, const char *msg, ...)
{
	if ((int)lvl < min_level)
		return;
	bool json = out_format == LOG_JSON;
	char tsbuf[40], callerbuf[128];
	buf_t ts = BUF_INIT;
	buf_put_rfc3339_ms(&ts, clock_now_ms());
	snprintf(tsbuf, sizeof tsbuf, "%s", ts.p);
	buf_release(&ts);
	const char *base = strrchr(file, '/');
	snprintf(callerbuf, sizeof callerbuf, "%s:%d", base ? base + 1 : file, line);

	buf_t b = BUF_INIT;
	if (json)
		buf_putc(&b, '{');
	field(&b, json, true, "ts", tsbuf);
	field(&b, json, false, "level", level_names[lvl]);
	field(&b, json, false, "caller", callerbuf);
	field(&b, json, false, "msg", msg);
	va_list ap;
	va_start(ap, msg);
	for (;;) {
		const char *k = va_arg(ap, const char *);
		if (!k)
			break;
		const char *v = va_arg(ap, const char *);
		field(&b, json, false, k, v);
	}
	va_end(ap);
	if (json)
		buf_putc(&b, '}');
	buf_putc(&b, '\n');
	ssize_t w = write(out_fd, b.p, b.n);
	(void)w;
	buf_release(&b);
}
