/*
 * meta.c — meta.json, ULIDs, tombstones.
 */
#include "tsdb/meta.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/crc32c.h"
#include "base/varint.h"

static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

void ulid_new(char *out, int64_t ms)
{
	uint8_t b[16];
	uint64_t t = (uint64_t)ms;
	for (int i = 0; i < 6; i++)
		b[i] = (uint8_t)(t >> (40 - 8 * i));
	size_t got = 0;
	while (got < 10) {
		ssize_t k = getrandom(b + 6 + got, 10 - got, 0);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			die("getrandom: %s", strerror(errno));
		}
		got += (size_t)k;
	}
	/* 128 bits as 26 base32 digits (130 bits, two leading zero bits). */
	for (int i = 0; i < ULID_LEN; i++) {
		int bit = i * 5 - 2; /* position of the digit's first bit within the 128 bits */
		unsigned v = 0;
		for (int k = 0; k < 5; k++) {
			int pos = bit + k;
			v <<= 1;
			if (pos >= 0)
				v |= (b[pos / 8] >> (7 - pos % 8)) & 1;
		}
		out[i] = crockford[v];
	}
	out[ULID_LEN] = 0;
}

static int b32val(char c)
{
	const char *p = c ? strchr(crockford, c) : NULL;
	return p ? (int)(p - crockford) : -1;
}

bool ulid_valid(const char *s)
{
	if (!s || strlen(s) != ULID_LEN || b32val(s[0]) < 0 || b32val(s[0]) > 7)
		return false;
	for (int i = 0; i < ULID_LEN; i++)
		if (b32val(s[i]) < 0)
			return false;
	return true;
}

int64_t ulid_time(const char *s)
{
	uint64_t t = 0;
	for (int i = 0; i < 10; i++)
		t = (t << 5) | (uint64_t)b32val(s[i]);
	return (int64_t)(t & ((1ull << 48) - 1));
}

void meta_release(block_meta_t *m)
{
	free(m->sources);
	free(m->parents);
	for (size_t i = 0; i < m->nlabels * 2; i++)
		free(m->labels[i]);
	free(m->labels);
	free(m->source);
	for (size_t i = 0; i < m->nsegment_files; i++)
		free(m->segment_files[i]);
	free(m->segment_files);
	for (size_t i = 0; i < m->nfiles; i++)
		free(m->files[i].rel_path);
	free(m->files);
	free(m->rewrites);
	free(m->extensions);
	memset(m, 0, sizeof *m);
}

static char **dup_strs(char *const *v, size_t n)
{
	if (!n)
		return NULL;
	char **out = xcalloc(n, sizeof *out);
	for (size_t i = 0; i < n; i++)
		out[i] = xstrdup(v[i]);
	return out;
}

void meta_copy(block_meta_t *dst, const block_meta_t *src)
{
	*dst = *src;
	dst->sources = src->nsources ? xmemdup(src->sources, src->nsources * sizeof *src->sources) : NULL;
	dst->parents = src->nparents ? xmemdup(src->parents, src->nparents * sizeof *src->parents) : NULL;
	dst->labels = dup_strs(src->labels, 2 * src->nlabels);
	dst->source = src->source ? xstrdup(src->source) : NULL;
	dst->segment_files = dup_strs(src->segment_files, src->nsegment_files);
	dst->files = src->nfiles ? xcalloc(src->nfiles, sizeof *dst->files) : NULL;
	for (size_t i = 0; i < src->nfiles; i++)
		dst->files[i] = (meta_file_t){xstrdup(src->files[i].rel_path), src->files[i].size_bytes};
	dst->rewrites = src->rewrites ? xstrdup(src->rewrites) : NULL;
	dst->extensions = src->extensions ? xstrdup(src->extensions) : NULL;
}

bool meta_sources_subset(const block_meta_t *a, const block_meta_t *b)
{
	if (!a->nsources)
		return false;
	for (size_t i = 0; i < a->nsources; i++) {
		bool found = false;
		for (size_t k = 0; k < b->nsources && !found; k++)
			found = strcmp(a->sources[i], b->sources[k]) == 0;
		if (!found)
			return false;
	}
	return true;
}

void meta_add_source(block_meta_t *m, const char *ulid)
{
	m->sources = xreallocarray(m->sources, m->nsources + 1, sizeof *m->sources);
	snprintf(m->sources[m->nsources++], ULID_LEN + 1, "%s", ulid);
}

void meta_set_label(block_meta_t *m, const char *name, const char *value)
{
	size_t i = 0;
	while (i < m->nlabels && strcmp(m->labels[2 * i], name) < 0)
		i++;
	if (i < m->nlabels && strcmp(m->labels[2 * i], name) == 0) {
		free(m->labels[2 * i + 1]);
		m->labels[2 * i + 1] = xstrdup(value);
		return;
	}
	m->labels = xreallocarray(m->labels, (m->nlabels + 1) * 2, sizeof(char *));
	memmove(&m->labels[2 * i + 2], &m->labels[2 * i], (m->nlabels - i) * 2 * sizeof(char *));
	m->labels[2 * i] = xstrdup(name);
	m->labels[2 * i + 1] = xstrdup(value);
	m->nlabels++;
	m->has_thanos = true;
}

static int jerr(err_t *err, const char *what, const char *msg)
{
	return err_set(err, ERR_CORRUPT, "meta: %s: %s", what, msg);
}

static int get_i64(json_t *o, const char *k, int64_t *out, bool required, const char *what, err_t *err)
{
	json_t *v = json_object_get(o, k);
	if (!v) {
		if (required)
			return err_set(err, ERR_CORRUPT, "meta: %s: missing \"%s\"", what, k);
		return 0;
	}
	if (!json_is_integer(v))
		return err_set(err, ERR_CORRUPT, "meta: %s: \"%s\" is not an integer", what, k);
	*out = json_integer_value(v);
	return 0;
}

int meta_parse(block_meta_t *m, const char *json, size_t len, const char *what, err_t *err)
{
	memset(m, 0, sizeof *m);
	json_error_t je;
	json_t *root = json_loadb(json, len, 0, &je);
	if (!root)
		return err_set(err, ERR_CORRUPT, "meta: %s: line %d column %d: %s", what, je.line, je.column, je.text);
	int rc = 0;
	int64_t ver = 0, tmp;
	if (!json_is_object(root)) {
		rc = jerr(err, what, "not a JSON object");
		goto out;
	}
	json_t *u = json_object_get(root, "ulid");
	if (!json_is_string(u) || !ulid_valid(json_string_value(u))) {
		rc = jerr(err, what, "missing or invalid \"ulid\"");
		goto out;
	}
	snprintf(m->ulid, sizeof m->ulid, "%s", json_string_value(u));
	if ((rc = get_i64(root, "minTime", &m->mint, true, what, err)) ||
	    (rc = get_i64(root, "maxTime", &m->maxt, true, what, err)) ||
	    (rc = get_i64(root, "version", &ver, true, what, err)))
		goto out;
	if (ver != 1) {
		rc = err_set(err, ERR_CORRUPT, "meta: %s: unsupported meta version %lld", what, (long long)ver);
		goto out;
	}
	json_t *st = json_object_get(root, "stats");
	if (json_is_object(st)) {
		/* Counts are uint64 in Prometheus: a negative one is corrupt (it would be written back as a
		 * number above INT64_MAX that no JSON reader here or in Go's int64 paths accepts). */
		const char *names[] = {"numSamples", "numSeries", "numChunks", "numTombstones"};
		uint64_t *dst[] = {&m->num_samples, &m->num_series, &m->num_chunks, &m->num_tombstones};
		for (int i = 0; i < 4; i++) {
			tmp = 0;
			get_i64(st, names[i], &tmp, false, what, NULL);
			if (tmp < 0) {
				rc = err_set(err, ERR_CORRUPT, "meta: %s: stats.%s is negative (%lld)", what, names[i],
					     (long long)tmp);
				goto out;
			}
			*dst[i] = (uint64_t)tmp;
		}
	}
	json_t *c = json_object_get(root, "compaction");
	if (json_is_object(c)) {
		tmp = 0;
		get_i64(c, "level", &tmp, false, what, NULL);
		m->level = (int)tmp;
		json_t *srcs = json_object_get(c, "sources");
		size_t i;
		json_t *e;
		json_array_foreach(srcs, i, e)
		{
			if (json_is_string(e) && ulid_valid(json_string_value(e)))
				meta_add_source(m, json_string_value(e));
		}
		m->deletable = json_is_true(json_object_get(c, "deletable"));
		m->failed = json_is_true(json_object_get(c, "failed"));
		json_t *par = json_object_get(c, "parents");
		json_array_foreach(par, i, e)
		{
			json_t *pu = json_object_get(e, "ulid");
			if (!json_is_string(pu))
				continue;
			m->parents = xreallocarray(m->parents, m->nparents + 1, sizeof *m->parents);
			block_parent_t *p = &m->parents[m->nparents++];
			snprintf(p->ulid, sizeof p->ulid, "%s", json_string_value(pu));
			p->mint = p->maxt = 0;
			get_i64(e, "minTime", &p->mint, false, what, NULL);
			get_i64(e, "maxTime", &p->maxt, false, what, NULL);
		}
	}
	json_t *th = json_object_get(root, "thanos");
	if (json_is_object(th)) {
		m->has_thanos = true;
		json_t *lb = json_object_get(th, "labels");
		const char *k;
		json_t *v;
		json_object_foreach(lb, k, v)
		{
			if (json_is_string(v))
				meta_set_label(m, k, json_string_value(v));
		}
		json_t *ds = json_object_get(th, "downsample");
		if (json_is_object(ds))
			get_i64(ds, "resolution", &m->resolution, false, what, NULL);
		json_t *src = json_object_get(th, "source");
		if (json_is_string(src))
			m->source = xstrdup(json_string_value(src));
		size_t i;
		json_t *e;
		json_array_foreach(json_object_get(th, "segment_files"), i, e)
		{
			if (!json_is_string(e))
				continue;
			m->segment_files = xreallocarray(m->segment_files, m->nsegment_files + 1, sizeof(char *));
			m->segment_files[m->nsegment_files++] = xstrdup(json_string_value(e));
		}
		json_array_foreach(json_object_get(th, "files"), i, e)
		{
			json_t *rp = json_object_get(e, "rel_path");
			if (!json_is_string(rp))
				continue;
			m->files = xreallocarray(m->files, m->nfiles + 1, sizeof *m->files);
			meta_file_t *f = &m->files[m->nfiles++];
			f->rel_path = xstrdup(json_string_value(rp));
			f->size_bytes = 0;
			get_i64(e, "size_bytes", &f->size_bytes, false, what, NULL);
		}
		json_t *is = json_object_get(th, "index_stats");
		if (json_is_object(is)) {
			get_i64(is, "series_max_size", &m->series_max_size, false, what, NULL);
			get_i64(is, "chunk_max_size", &m->chunk_max_size, false, what, NULL);
		}
		json_t *rw = json_object_get(th, "rewrites");
		if (json_is_array(rw) && json_array_size(rw))
			m->rewrites = json_dumps(rw, JSON_COMPACT | JSON_PRESERVE_ORDER);
		json_t *ex = json_object_get(th, "extensions");
		if (ex && !json_is_null(ex))
			m->extensions = json_dumps(ex, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
		json_t *ut = json_object_get(th, "upload_time");
		int64_t ums;
		if (json_is_string(ut) && rfc3339_parse_ms(str_c(json_string_value(ut)), &ums))
			m->upload_time_ms = ums;
	}
out:
	json_decref(root);
	if (rc)
		meta_release(m);
	return rc;
}

int meta_read(block_meta_t *m, const char *block_dir, err_t *err)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/meta.json", block_dir);
	FILE *f = fopen(path, "rb");
	if (!f)
		return err_errno(err, "open %s", path);
	buf_t b = BUF_INIT;
	char tmp[8192];
	size_t k;
	while ((k = fread(tmp, 1, sizeof tmp, f)) > 0)
		buf_append(&b, tmp, k);
	int ioerr = ferror(f);
	fclose(f);
	int rc;
	if (ioerr)
		rc = err_set(err, ERR_IO, "read %s failed", path);
	else
		rc = meta_parse(m, b.p, b.n, path, err);
	buf_release(&b);
	return rc;
}

static void ind(buf_t *b, int n)
{
	buf_putc(b, '\n');
	for (int i = 0; i < n; i++)
		buf_putc(b, '\t');
}

static void key(buf_t *b, int depth, const char *k, bool *first)
{
	if (!*first)
		buf_putc(b, ',');
	*first = false;
	ind(b, depth);
	buf_json_str(b, str_c(k));
	buf_puts(b, ": ");
}

/* Layout of Go's json.MarshalIndent (tabs): an array element on its own line at depth, comma-separated. */
static void elem(buf_t *b, int depth, size_t i)
{
	if (i)
		buf_putc(b, ',');
	ind(b, depth);
}

/* The closing ']' or '}' of a non-empty array or object whose key is at depth, on its own line. */
static void close_at(buf_t *b, int depth, char c)
{
	ind(b, depth);
	buf_putc(b, c);
}

/* A jansson value in Go's MarshalIndent layout at depth (keys in their stored order). */
static void put_json(buf_t *b, json_t *v, int depth)
{
	if (json_is_object(v)) {
		if (!json_object_size(v)) {
			buf_puts(b, "{}");
			return;
		}
		bool f = true;
		const char *k;
		json_t *x;
		buf_putc(b, '{');
		json_object_foreach(v, k, x)
		{
			key(b, depth + 1, k, &f);
			put_json(b, x, depth + 1);
		}
		close_at(b, depth, '}');
	} else if (json_is_array(v)) {
		if (!json_array_size(v)) {
			buf_puts(b, "[]");
			return;
		}
		size_t i;
		json_t *x;
		buf_putc(b, '[');
		json_array_foreach(v, i, x)
		{
			elem(b, depth + 1, i);
			put_json(b, x, depth + 1);
		}
		close_at(b, depth, ']');
	} else if (json_is_string(v)) {
		buf_json_str(b, str_from(json_string_value(v), json_string_length(v)));
	} else {
		char *t = json_dumps(v, JSON_ENCODE_ANY);
		buf_puts(b, t ? t : "null");
		free(t);
	}
}

/* "k": <text re-laid out>, for JSON kept verbatim (rewrites, extensions). */
static void put_raw_json(buf_t *b, int depth, const char *k, const char *text, bool *first)
{
	json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
	if (!v)
		return;
	key(b, depth, k, first);
	put_json(b, v, depth);
	json_decref(v);
}

void meta_format(buf_t *b, const block_meta_t *m)
{
	bool f0 = true;
	buf_putc(b, '{');
	key(b, 1, "ulid", &f0);
	buf_json_str(b, str_c(m->ulid));
	key(b, 1, "minTime", &f0);
	buf_put_i64(b, m->mint);
	key(b, 1, "maxTime", &f0);
	buf_put_i64(b, m->maxt);
	key(b, 1, "stats", &f0);
	{
		bool f = true;
		buf_putc(b, '{');
		const char *names[] = {"numSamples", "numSeries", "numChunks", "numTombstones"};
		uint64_t vals[] = {m->num_samples, m->num_series, m->num_chunks, m->num_tombstones};
		for (int i = 0; i < 4; i++) {
			if (!vals[i])
				continue;
			key(b, 2, names[i], &f);
			buf_put_u64(b, vals[i]);
		}
		if (!f)
			ind(b, 1);
		buf_putc(b, '}');
	}
	key(b, 1, "compaction", &f0);
	{
		bool f = true;
		buf_putc(b, '{');
		key(b, 2, "level", &f);
		buf_put_i64(b, m->level);
		if (m->nsources) {
			key(b, 2, "sources", &f);
			buf_putc(b, '[');
			for (size_t i = 0; i < m->nsources; i++) {
				elem(b, 3, i);
				buf_json_str(b, str_c(m->sources[i]));
			}
			close_at(b, 2, ']');
		}
		if (m->deletable) {
			key(b, 2, "deletable", &f);
			buf_puts(b, "true");
		}
		if (m->nparents) {
			key(b, 2, "parents", &f);
			buf_putc(b, '[');
			for (size_t i = 0; i < m->nparents; i++) {
				elem(b, 3, i);
				bool fp = true;
				buf_putc(b, '{');
				key(b, 4, "ulid", &fp);
				buf_json_str(b, str_c(m->parents[i].ulid));
				key(b, 4, "minTime", &fp);
				buf_put_i64(b, m->parents[i].mint);
				key(b, 4, "maxTime", &fp);
				buf_put_i64(b, m->parents[i].maxt);
				close_at(b, 3, '}');
			}
			close_at(b, 2, ']');
		}
		if (m->failed) {
			key(b, 2, "failed", &f);
			buf_puts(b, "true");
		}
		close_at(b, 1, '}');
	}
	key(b, 1, "version", &f0);
	buf_putc(b, '1');
	if (m->has_thanos) {
		key(b, 1, "thanos", &f0);
		bool f = true;
		buf_putc(b, '{');
		key(b, 2, "labels", &f);
		buf_putc(b, '{');
		for (size_t i = 0; i < m->nlabels; i++) {
			bool fl = i == 0;
			key(b, 3, m->labels[2 * i], &fl);
			buf_json_str(b, str_c(m->labels[2 * i + 1]));
		}
		if (m->nlabels)
			ind(b, 2);
		buf_putc(b, '}');
		key(b, 2, "downsample", &f);
		buf_putc(b, '{');
		ind(b, 3);
		buf_puts(b, "\"resolution\": ");
		buf_put_i64(b, m->resolution);
		close_at(b, 2, '}');
		key(b, 2, "source", &f);
		buf_json_str(b, str_c(m->source ? m->source : ""));
		if (m->nsegment_files) {
			key(b, 2, "segment_files", &f);
			buf_putc(b, '[');
			for (size_t i = 0; i < m->nsegment_files; i++) {
				elem(b, 3, i);
				buf_json_str(b, str_c(m->segment_files[i]));
			}
			close_at(b, 2, ']');
		}
		if (m->nfiles) {
			key(b, 2, "files", &f);
			buf_putc(b, '[');
			for (size_t i = 0; i < m->nfiles; i++) {
				elem(b, 3, i);
				bool ff = true;
				buf_putc(b, '{');
				key(b, 4, "rel_path", &ff);
				buf_json_str(b, str_c(m->files[i].rel_path));
				if (m->files[i].size_bytes) {
					key(b, 4, "size_bytes", &ff);
					buf_put_i64(b, m->files[i].size_bytes);
				}
				close_at(b, 3, '}');
			}
			close_at(b, 2, ']');
		}
		if (m->rewrites)
			put_raw_json(b, 2, "rewrites", m->rewrites, &f);
		if (m->series_max_size || m->chunk_max_size) {
			key(b, 2, "index_stats", &f);
			bool fi = true;
			buf_putc(b, '{');
			if (m->series_max_size) {
				key(b, 3, "series_max_size", &fi);
				buf_put_i64(b, m->series_max_size);
			}
			if (m->chunk_max_size) {
				key(b, 3, "chunk_max_size", &fi);
				buf_put_i64(b, m->chunk_max_size);
			}
			close_at(b, 2, '}');
		}
		if (m->extensions)
			put_raw_json(b, 2, "extensions", m->extensions, &f);
		if (m->upload_time_ms) {
			key(b, 2, "upload_time", &f);
			buf_putc(b, '"');
			buf_put_rfc3339_ms(b, m->upload_time_ms);
			buf_putc(b, '"');
		}
		close_at(b, 1, '}');
	}
	close_at(b, 0, '}');
}

static int write_file_sync(const char *path, const void *p, size_t n, err_t *err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return err_errno(err, "create %s", path);
	const char *c = p;
	while (n) {
		ssize_t k = write(fd, c, n);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			int rc = err_errno(err, "write %s", path);
			close(fd);
			return rc;
		}
		c += k, n -= (size_t)k;
	}
	int rc = 0;
	if (fsync(fd) != 0)
		rc = err_errno(err, "fsync %s", path);
	close(fd);
	return rc;
}

int meta_write(const block_meta_t *m, const char *block_dir, err_t *err)
{
	char tmp[4096], dst[4096];
	snprintf(tmp, sizeof tmp, "%s/meta.json.tmp", block_dir);
	snprintf(dst, sizeof dst, "%s/meta.json", block_dir);
	buf_t b = BUF_INIT;
	meta_format(&b, m);
	int rc = write_file_sync(tmp, b.p, b.n, err);
	buf_release(&b);
	if (!rc && rename(tmp, dst) != 0)
		rc = err_errno(err, "rename %s", tmp);
	return rc;
}

#define TOMBSTONES_MAGIC 0x0130BA30u

int tombstones_write_empty(const char *block_dir, err_t *err)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/tombstones", block_dir);
	uint8_t b[9] = {0};
	be32_put(b, TOMBSTONES_MAGIC);
	b[4] = 1;
	be32_put(b + 5, crc32c(0, b + 5, 0));
	return write_file_sync(path, b, sizeof b, err);
}

static int tomb_cmp(const void *a, const void *b)
{
	const tomb_interval_t *x = a, *y = b;
	if (x->ref != y->ref)
		return x->ref < y->ref ? -1 : 1;
	return x->mint < y->mint ? -1 : x->mint > y->mint;
}

int tombstones_load(const char *block_dir, tombstones_t *t, err_t *err)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/tombstones", block_dir);
	memset(t, 0, sizeof *t);
	FILE *f = fopen(path, "rb");
	if (!f) {
		if (errno == ENOENT)
			return 0; /* absent = no tombstones */
		return err_errno(err, "open %s", path);
	}
	buf_t b = BUF_INIT;
	char tmp[8192];
	size_t k;
	while ((k = fread(tmp, 1, sizeof tmp, f)) > 0)
		buf_append(&b, tmp, k);
	int ioerr = ferror(f);
	fclose(f);
	const uint8_t *p = (const uint8_t *)b.p;
	int rc = 0;
	size_t cap = 0;
	if (ioerr)
		rc = err_set(err, ERR_IO, "read %s failed", path);
	else if (b.n < 9)
		rc = err_set(err, ERR_CORRUPT, "tombstones: %s: offset 0: file of %zu bytes is too short", path, b.n);
	else if (be32_get(p) != TOMBSTONES_MAGIC)
		rc = err_set(err, ERR_CORRUPT, "tombstones: %s: offset 0: bad magic 0x%08x", path, be32_get(p));
	else if (p[4] != 1)
		rc = err_set(err, ERR_CORRUPT, "tombstones: %s: offset 4: unsupported version %u", path, p[4]);
	else if (crc32c(0, p + 5, b.n - 9) != be32_get(p + b.n - 4))
		rc = err_set(err, ERR_CORRUPT, "tombstones: %s: offset %zu: bad CRC32C", path, b.n - 4);
	else {
		const uint8_t *q = p + 5, *end = p + b.n - 4;
		while (q < end) {
			uint64_t ref;
			int64_t mint, maxt;
			int a1 = uvarint_get(q, end, &ref);
			int a2 = a1 > 0 ? varint_get(q + a1, end, &mint) : -1;
			int a3 = a2 > 0 ? varint_get(q + a1 + a2, end, &maxt) : -1;
			if (a1 <= 0 || a2 <= 0 || a3 <= 0) {
				rc = err_set(err, ERR_CORRUPT, "tombstones: %s: offset %zu: malformed entry", path,
					     (size_t)(q - p));
				break;
			}
			q += a1 + a2 + a3;
			if (t->n == cap) {
				cap = alloc_grow_cap(cap, t->n + 1);
				t->v = xreallocarray(t->v, cap, sizeof *t->v);
			}
			t->v[t->n++] = (tomb_interval_t){ref, mint, maxt};
		}
	}
	buf_release(&b);
	if (rc)
		tombstones_release(t);
	else if (t->n > 1)
		qsort(t->v, t->n, sizeof *t->v, tomb_cmp);
	return rc;
}

void tombstones_release(tombstones_t *t)
{
	free(t->v);
	memset(t, 0, sizeof *t);
}

const tomb_interval_t *tombstones_of(const tombstones_t *t, uint64_t ref, size_t *n)
{
	size_t lo = 0, hi = t->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (t->v[mid].ref < ref)
			lo = mid + 1;
		else
			hi = mid;
	}
	size_t e = lo;
	while (e < t->n && t->v[e].ref == ref)
		e++;
	*n = e - lo;
	return e > lo ? &t->v[lo] : NULL;
}

int tombstones_read(const char *block_dir, uint64_t *nintervals, err_t *err)
{
	tombstones_t t;
	int rc = tombstones_load(block_dir, &t, err);
	*nintervals = rc ? 0 : t.n;
	tombstones_release(&t);
	return rc;
}

int tombstones_write(const char *block_dir, const tomb_interval_t *v, size_t n, err_t *err)
{
	tomb_interval_t *s = xcalloc(n ? n : 1, sizeof *s);
	if (n)
		memcpy(s, v, n * sizeof *s);
	if (n > 1)
		qsort(s, n, sizeof *s, tomb_cmp);
	buf_t b = BUF_INIT;
	buf_put_be32(&b, TOMBSTONES_MAGIC);
	buf_putc(&b, 1);
	for (size_t i = 0; i < n; i++) {
		buf_put_uvarint(&b, s[i].ref);
		buf_put_varint(&b, s[i].mint);
		buf_put_varint(&b, s[i].maxt);
	}
	buf_put_be32(&b, crc32c(0, b.p + 5, b.n - 5));
	free(s);
	char tmp[4096], dst[4096];
	snprintf(tmp, sizeof tmp, "%s/tombstones.tmp", block_dir);
	snprintf(dst, sizeof dst, "%s/tombstones", block_dir);
	int rc = write_file_sync(tmp, b.p, b.n, err);
	buf_release(&b);
	if (!rc && rename(tmp, dst) != 0)
		rc = err_errno(err, "rename %s", tmp);
	return rc;
}
