/*
 * s3xml.c — see s3xml.h.
 */
#include "objstore/s3xml.h"

#include <stdio.h>
#include <string.h>

static long find(str_t doc, size_t from, const char *needle, size_t nn)
{
	if (from > doc.n || nn > doc.n - from)
		return -1;
	const char *p = memmem(doc.p + from, doc.n - from, needle, nn);
	return p ? (long)(p - doc.p) : -1;
}

bool s3xml_next(str_t doc, size_t *pos, const char *tag, str_t *inner)
{
	size_t tn = strlen(tag);
	if (tn == 0 || tn > 64)
		return false;
	char open[70], empty[70], close[70];
	int on = snprintf(open, sizeof open, "<%s>", tag);
	int en = snprintf(empty, sizeof empty, "<%s/>", tag);
	int cn = snprintf(close, sizeof close, "</%s>", tag);
	long o = find(doc, *pos, open, (size_t)on);
	long e = find(doc, *pos, empty, (size_t)en);
	if (e >= 0 && (o < 0 || e < o)) {
		*inner = (str_t){doc.p + e, 0};
		*pos = (size_t)e + (size_t)en;
		return true;
	}
	if (o < 0)
		return false;
	size_t start = (size_t)o + (size_t)on;
	long c = find(doc, start, close, (size_t)cn);
	if (c < 0)
		return false;
	*inner = (str_t){doc.p + start, (size_t)c - start};
	*pos = (size_t)c + (size_t)cn;
	return true;
}

bool s3xml_get(str_t doc, const char *tag, buf_t *out)
{
	size_t pos = 0;
	str_t in;
	if (!s3xml_next(doc, &pos, tag, &in))
		return false;
	s3xml_decode(in, out);
	return true;
}

static void put_utf8(buf_t *b, unsigned long cp)
{
	if (cp < 0x80) {
		buf_putc(b, (char)cp);
	} else if (cp < 0x800) {
		buf_putc(b, (char)(0xC0 | (cp >> 6)));
		buf_putc(b, (char)(0x80 | (cp & 0x3F)));
	} else if (cp < 0x10000) {
		buf_putc(b, (char)(0xE0 | (cp >> 12)));
		buf_putc(b, (char)(0x80 | ((cp >> 6) & 0x3F)));
		buf_putc(b, (char)(0x80 | (cp & 0x3F)));
	} else {
		buf_putc(b, (char)(0xF0 | (cp >> 18)));
		buf_putc(b, (char)(0x80 | ((cp >> 12) & 0x3F)));
		buf_putc(b, (char)(0x80 | ((cp >> 6) & 0x3F)));
		buf_putc(b, (char)(0x80 | (cp & 0x3F)));
	}
}

bool s3xml_decode(str_t raw, buf_t *out)
{
	static const struct {
		const char *name;
		char c;
	} ents[] = {{"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}};
	bool ok = true;
	for (size_t i = 0; i < raw.n; i++) {
		char c = raw.p[i];
		if (c != '&') {
			buf_putc(out, c);
			continue;
		}
		size_t j = i + 1;
		while (j < raw.n && j - i <= 10 && raw.p[j] != ';')
			j++;
		if (j >= raw.n || raw.p[j] != ';') {
			ok = false;
			buf_putc(out, c);
			continue;
		}
		str_t name = {raw.p + i + 1, j - i - 1};
		bool done = false;
		for (size_t k = 0; k < sizeof ents / sizeof ents[0]; k++) {
			if (str_eq_c(name, ents[k].name)) {
				buf_putc(out, ents[k].c);
				done = true;
				break;
			}
		}
		if (!done && name.n >= 2 && name.p[0] == '#') {
			unsigned long cp = 0;
			bool hexa = name.p[1] == 'x' || name.p[1] == 'X';
			size_t k = hexa ? 2 : 1;
			bool digits = k < name.n;
			for (; k < name.n && digits; k++) {
				char d = name.p[k];
				int v = d >= '0' && d <= '9' ? d - '0'
					: hexa && d >= 'a' && d <= 'f' ? d - 'a' + 10
					: hexa && d >= 'A' && d <= 'F' ? d - 'A' + 10
								     : -1;
				if (v < 0)
					digits = false;
				else
					cp = cp * (hexa ? 16 : 10) + (unsigned long)v;
			}
			if (digits && cp > 0 && cp <= 0x10FFFF) {
				put_utf8(out, cp);
				done = true;
			}
		}
		if (!done) {
			ok = false;
			buf_append(out, raw.p + i, j - i + 1);
		}
		i = j;
	}
	return ok;
}

void s3xml_escape(buf_t *out, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&': buf_puts(out, "&amp;"); break;
		case '<': buf_puts(out, "&lt;"); break;
		case '>': buf_puts(out, "&gt;"); break;
		case '"': buf_puts(out, "&quot;"); break;
		case '\'': buf_puts(out, "&apos;"); break;
		default: buf_putc(out, *s);
		}
	}
}
