/*
 * ui.c — serving the embedded UI bundle (ui.h).
 */
#include "ui/ui.h"

#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include "net/api_compress.h"
#include "base/alloc.h"
#include "base/log.h"
#include "base/str.h"

struct ui {
	buf_t index_gz; /* index.html with the config, gzipped */
	buf_t index_raw;
	char etag[64];
	char *home; /* "/graph" */
	const ui_asset_t **statics;
	size_t nstatics;
};

static const char *const PAGE_ALIASES[][2] = {
    {"/classic/graph", "graph"}, {"/new/graph", "graph"},     {"/classic/alerts", "alerts"},
    {"/classic/rules", "rules"}, {"/classic/flags", "flags"}, {"/classic/status", "status"},
};

/* If-None-Match carries etag (or "*"): answer 304. */
static bool not_modified(http_req_t *r, const char *etag)
{
	str_t inm;
	if (!http_req_header(r, "If-None-Match", &inm))
		return false;
	if (str_eq(inm, STR("*")))
		return true;
	size_t n = strlen(etag);
	for (size_t i = 0; i + n <= inm.n; i++)
		if (memcmp(inm.p + i, etag, n) == 0)
			return true;
	return false;
}

/* Send gz (a gzip member) as it is when the client takes gzip, else inflated. */
static void send_gz(http_req_t *r, const char *type, const void *gz, size_t n, size_t raw_len)
{
	str_t ae = {0};
	http_req_header(r, "Accept-Encoding", &ae);
	http_add_header(r, "Vary", "Accept-Encoding");
	if (api_encoding_negotiate(ae) == API_ENC_GZIP) {
		http_add_header(r, "Content-Encoding", "gzip");
		http_respond(r, 200, type, gz, n);
		return;
	}
	char *raw = arena_alloc(&r->arena, raw_len + 1);
	uLongf out = raw_len;
	z_stream z = {0};
	int ok = inflateInit2(&z, 16 + MAX_WBITS) == Z_OK;
	if (ok) {
		z.next_in = (Bytef *)gz;
		z.avail_in = (uInt)n;
		z.next_out = (Bytef *)raw;
		z.avail_out = (uInt)out;
		ok = inflate(&z, Z_FINISH) == Z_STREAM_END && z.total_out == raw_len;
		inflateEnd(&z);
	}
	if (!ok) {
		log_error("ui: embedded asset does not inflate", "type", type);
		http_error(r, 500, "embedded asset is corrupt");
		return;
	}
	http_respond(r, 200, type, raw, raw_len);
}

static void h_static(http_req_t *r, void *arg)
{
	ui_t *ui = arg;
	for (size_t i = 0; i < ui->nstatics; i++) {
		const ui_asset_t *a = ui->statics[i];
		if (!str_eq_c(r->path, a->path))
			continue;
		http_add_header(r, "Cache-Control", "public, max-age=31536000, immutable");
		http_add_header(r, "ETag", a->etag);
		if (not_modified(r, a->etag)) {
			http_respond(r, 304, NULL, NULL, 0);
			return;
		}
		send_gz(r, a->content_type, a->data, a->len, a->raw_len);
		return;
	}
	http_error(r, 404, "404 page not found");
}

static void h_page(http_req_t *r, void *arg)
{
	ui_t *ui = arg;
	http_add_header(r, "Cache-Control", "no-cache");
	http_add_header(r, "ETag", ui->etag);
	if (not_modified(r, ui->etag)) {
		http_respond(r, 304, NULL, NULL, 0);
		return;
	}
	send_gz(r, "text/html; charset=utf-8", ui->index_gz.p, ui->index_gz.n, ui->index_raw.n);
}

static void h_root(http_req_t *r, void *arg)
{
	ui_t *ui = arg;
	if (r->path.n != 1) {
		http_error(r, 404, "404 page not found");
		return;
	}
	http_add_header(r, "Location", ui->home);
	http_respond(r, 302, "text/html; charset=utf-8", "", 0);
}

static void config_json(buf_t *b, const ui_config_t *cfg)
{
	buf_puts(b, "{\"component\":");
	buf_json_str(b, str_c(cfg->component));
	buf_puts(b, ",\"prefix\":");
	buf_json_str(b, str_c(cfg->prefix ? cfg->prefix : ""));
	buf_puts(b, ",\"version\":\"" STRATA_VERSION "\",\"adminDisabled\":");
	buf_puts(b, cfg->admin_disabled ? "true" : "false");
	buf_puts(b, ",\"pages\":[");
	for (size_t i = 0; i < ARRAY_LEN(cfg->pages) && cfg->pages[i]; i++) {
		if (i)
			buf_putc(b, ',');
		buf_json_str(b, str_c(cfg->pages[i]));
	}
	buf_putc(b, ']');
	if (cfg->tenant_header) {
		buf_puts(b, ",\"tenancy\":{\"header\":");
		buf_json_str(b, str_c(cfg->tenant_header));
		buf_puts(b, ",\"defaultTenant\":");
		buf_json_str(b, str_c(cfg->default_tenant ? cfg->default_tenant : ""));
		buf_putc(b, '}');
	}
	buf_putc(b, '}');
}

/* prefix without trailing '/' into *out (malloc'd), or an error naming flag. */
static int prefix_check(const char *flag, const char *prefix, char **out, err_t *err)
{
	size_t n = strlen(prefix);
	while (n && prefix[n - 1] == '/')
		n--;
	if (n && prefix[0] != '/')
		return err_set(err, ERR_INVALID, "%s %s must start with '/'", flag, prefix);
	for (size_t i = 0; i < n; i++)
		if (strchr("\"'<>&\\?#%*", prefix[i]) || (unsigned char)prefix[i] <= ' ')
			return err_set(err, ERR_INVALID, "%s %s: '%c' is not allowed in it", flag, prefix, prefix[i]);
	*out = xstrndup(prefix, n);
	return 0;
}

int ui_web_prefixes(const char *external_prefix, const char *route_prefix, char **route_out, char **link_out,
		    err_t *err)
{
	*route_out = *link_out = NULL;
	if (prefix_check("--web.external-prefix", external_prefix, link_out, err))
		return ERR_INVALID;
	if (prefix_check("--web.route-prefix", *route_prefix ? route_prefix : *link_out, route_out, err)) {
		free(*link_out);
		*link_out = NULL;
		return ERR_INVALID;
	}
	if (!**link_out) {
		free(*link_out);
		*link_out = xstrdup(*route_out);
	} else if (strcmp(*link_out, *route_out) != 0) {
		log_warn("different values for --web.route-prefix and --web.external-prefix: the web UI works only "
			 "behind a reverse proxy that maps one to the other",
			 "route_prefix", *route_out, "external_prefix", *link_out);
	}
	return 0;
}

ui_t *ui_new(http_server_t *srv, const ui_config_t *cfg)
{
	ui_t *ui = xcalloc(1, sizeof *ui);
	ui->statics = xcalloc(ui_nassets, sizeof *ui->statics);
	buf_init(&ui->index_raw);
	buf_init(&ui->index_gz);
	const ui_asset_t *index = NULL;
	for (size_t i = 0; i < ui_nassets; i++) {
		if (ui_assets[i].template)
			index = &ui_assets[i];
		else
			ui->statics[ui->nstatics++] = &ui_assets[i];
	}
	if (!index)
		die("ui: the embedded bundle has no index.html");

	/* index.html with the config and the link prefix in place of their placeholders; '<' in the JSON
	 * is written as \u003c so no value can close the <script> element that holds it (the prefix has
	 * no characters HTML or JSON would need escaped: ui_prefix_check). */
	const char *tpl = (const char *)index->data;
	if (!strstr(tpl, "__STRATA_CONFIG__"))
		die("ui: index.html has no config placeholder");
	buf_t js = BUF_INIT;
	config_json(&js, cfg);
	for (const char *p = tpl; *p;) {
		if (strncmp(p, "__STRATA_CONFIG__", 17) == 0) {
			for (size_t i = 0; i < js.n; i++) {
				if (js.p[i] == '<')
					buf_puts(&ui->index_raw, "\\u003c");
				else
					buf_putc(&ui->index_raw, js.p[i]);
			}
			p += 17;
		} else if (strncmp(p, "__PREFIX__", 10) == 0) {
			buf_puts(&ui->index_raw, cfg->prefix ? cfg->prefix : "");
			p += 10;
		} else {
			buf_putc(&ui->index_raw, *p++);
		}
	}
	buf_release(&js);
	err_t err = {0};
	if (api_compress(API_ENC_GZIP, ui->index_raw.p, ui->index_raw.n, &ui->index_gz, &err))
		die("ui: %s", err.msg);
	uLong crc = crc32(0, (const Bytef *)ui->index_raw.p, (uInt)ui->index_raw.n);
	snprintf(ui->etag, sizeof ui->etag, "\"%08lx-%zx\"", crc, ui->index_raw.n);
	if (!cfg->pages[0])
		die("ui: no pages configured");
	buf_t home = BUF_INIT;
	buf_printf(&home, "%s/%s", cfg->prefix ? cfg->prefix : "", cfg->pages[0]);
	ui->home = buf_detach(&home, NULL);

	unsigned get = HTTP_M_GET | HTTP_M_HEAD;
	http_handle(srv, get, "/", h_root, ui);
	http_handle(srv, get, "/static/*", h_static, ui);
	for (size_t i = 0; i < ARRAY_LEN(cfg->pages) && cfg->pages[i]; i++) {
		char path[64];
		snprintf(path, sizeof path, "/%s", cfg->pages[i]);
		http_handle(srv, get, path, h_page, ui);
		for (size_t j = 0; j < ARRAY_LEN(PAGE_ALIASES); j++)
			if (strcmp(PAGE_ALIASES[j][1], cfg->pages[i]) == 0)
				http_handle(srv, get, PAGE_ALIASES[j][0], h_page, ui);
	}
	return ui;
}

void ui_free(ui_t *ui)
{
	if (!ui)
		return;
	buf_release(&ui->index_gz);
	buf_release(&ui->index_raw);
	free(ui->home);
	free(ui->statics);
	free(ui);
}
