/*
 * shipper.c — block upload and the shipper loop step (see shipper.h).
 */
#include "block/shipper.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/vec.h"
#include "tsdb/meta.h"

typedef VEC(char *) strvec_t;

static void strvec_free(strvec_t *v)
{
	for (size_t i = 0; i < v->n; i++)
		free(v->v[i]);
	VEC_FREE(v);
}

static int cmp_cstr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted entry names of dir (no dot files). ENOENT gives an empty list. */
static int list_dir(const char *dir, strvec_t *out, err_t *err)
{
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : err_errno(err, "open directory %s", dir);
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		VEC_PUSH(out, xstrdup(de->d_name));
	}
	closedir(d);
	if (out->n)
		qsort(out->v, out->n, sizeof(char *), cmp_cstr);
	return 0;
}

/* ---- one block ---- */

int shipper_upload_block(bucket_t *b, const char *dir, const char *ulid, const block_upload_opts_t *o, err_t *err)
{
	char path[4096], name[128];
	block_meta_t m;
	memset(&m, 0, sizeof m);
	snprintf(path, sizeof path, "%s/%s", dir, ulid);
	int rc = meta_read(&m, path, err);
	if (rc)
		return err_wrap(err, "upload %s", ulid);
	m.has_thanos = true;
	for (size_t i = 0; o->labels && i < o->labels->n; i++) {
		char *k = xstrndup(o->labels->v[i].name.p, o->labels->v[i].name.n);
		char *v = xstrndup(o->labels->v[i].value.p, o->labels->v[i].value.n);
		meta_set_label(&m, k, v);
		free(k);
		free(v);
	}
	if (!(o->keep_source && m.source && *m.source)) {
		free(m.source);
		m.source = xstrdup(o->source ? o->source : "");
	}
	m.resolution = m.resolution > 0 ? m.resolution : 0;
	/* Files: chunk segments, then index, sizes recorded in thanos.files; meta.json last. */
	strvec_t chunks = {0};
	snprintf(path, sizeof path, "%s/%s/chunks", dir, ulid);
	if ((rc = list_dir(path, &chunks, err)) != 0) {
		meta_release(&m);
		return err_wrap(err, "upload %s", ulid);
	}
	for (size_t i = 0; i < m.nfiles; i++)
		free(m.files[i].rel_path);
	free(m.files);
	m.nfiles = 0;
	m.files = xcalloc(chunks.n + 2, sizeof(meta_file_t));
	for (size_t i = 0; rc == 0 && i <= chunks.n; i++) {
		char rel[300];
		if (i < chunks.n)
			snprintf(rel, sizeof rel, "chunks/%s", chunks.v[i]);
		else
			snprintf(rel, sizeof rel, "index");
		snprintf(path, sizeof path, "%s/%s/%s", dir, ulid, rel);
		snprintf(name, sizeof name, "%s/%s", ulid, rel);
		struct stat st;
		if (stat(path, &st) != 0) {
			rc = err_errno(err, "upload %s: stat %s", ulid, path);
			break;
		}
		m.files[m.nfiles].rel_path = xstrdup(rel);
		m.files[m.nfiles].size_bytes = st.st_size;
		m.nfiles++;
		if ((rc = bucket_upload(b, name, path, err)) != 0)
			err_wrap(err, "upload %s", ulid);
	}
	if (rc == 0) {
		m.files[m.nfiles].rel_path = xstrdup("meta.json");
		m.nfiles++;
		buf_t j = BUF_INIT;
		meta_format(&j, &m);
		snprintf(name, sizeof name, "%s/meta.json", ulid);
		if ((rc = bucket_put(b, name, j.p, j.n, err)) != 0)
			err_wrap(err, "upload %s", ulid);
		buf_release(&j);
	}
	strvec_free(&chunks);
	meta_release(&m);
	return rc;
}

/* ---- thanos.shipper.json ---- */

void shipper_ulids_free(char **ulids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(ulids[i]);
	free(ulids);
}

int shipper_meta_read(const char *dir, char ***ulids, size_t *n, err_t *err)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/" SHIPPER_META_FILE, dir);
	*ulids = NULL;
	*n = 0;
	json_error_t je;
	json_t *root = json_load_file(path, 0, &je);
	if (!root) {
		struct stat st;
		if (stat(path, &st) != 0 && errno == ENOENT)
			return 0;
		return err_set(err, ERR_CORRUPT, "%s: line %d column %d: %s", path, je.line, je.column, je.text);
	}
	int rc = 0;
	json_t *ver = json_object_get(root, "version"), *up = json_object_get(root, "uploaded");
	if (!json_is_integer(ver) || json_integer_value(ver) != 1)
		rc = err_set(err, ERR_CORRUPT, "%s: unexpected meta file version (want 1)", path);
	else if (up && !json_is_null(up) && !json_is_array(up))
		rc = err_set(err, ERR_CORRUPT, "%s: \"uploaded\" is not an array", path);
	strvec_t v = {0};
	for (size_t i = 0; rc == 0 && i < json_array_size(up); i++) {
		const char *s = json_string_value(json_array_get(up, i));
		if (!s || !ulid_valid(s)) {
			rc = err_set(err, ERR_CORRUPT, "%s: uploaded[%zu] is not a ULID", path, i);
			break;
		}
		VEC_PUSH(&v, xstrdup(s));
	}
	json_decref(root);
	if (rc) {
		strvec_free(&v);
		return rc;
	}
	*ulids = v.v;
	*n = v.n;
	return 0;
}

int shipper_meta_write(const char *dir, char *const *ulids, size_t n, err_t *err)
{
	/* Go json.Encoder with SetIndent("", "\t"), as Thanos writes it (trailing newline). */
	buf_t b = BUF_INIT;
	buf_puts(&b, "{\n\t\"version\": 1,\n\t\"uploaded\": [");
	for (size_t i = 0; i < n; i++)
		buf_printf(&b, "%s\n\t\t\"%s\"", i ? "," : "", ulids[i]);
	buf_puts(&b, n ? "\n\t]\n}\n" : "]\n}\n");
	char path[4096], tmp[4200];
	snprintf(path, sizeof path, "%s/" SHIPPER_META_FILE, dir);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	int rc = 0;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = err_errno(err, "write %s", tmp);
	} else {
		size_t off = 0;
		while (off < b.n) {
			ssize_t w = write(fd, b.p + off, b.n - off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				rc = err_errno(err, "write %s", tmp);
				break;
			}
			off += (size_t)w;
		}
		if (rc == 0 && fsync(fd) != 0)
			rc = err_errno(err, "fsync %s", tmp);
		close(fd);
		if (rc == 0 && rename(tmp, path) != 0)
			rc = err_errno(err, "rename %s to %s", tmp, path);
		if (rc)
			unlink(tmp);
	}
	buf_release(&b);
	return rc;
}

/* ---- the shipper ---- */

typedef struct mint_cache {
	char ulid[ULID_LEN + 1];
	int64_t mint;
} mint_cache_t;

struct shipper {
	char *dir;
	char *source;
	bucket_t *bucket;
	bool upload_compacted;
	VEC(mint_cache_t) mints; /* minTime of uploaded blocks, read from the bucket */
};

static metric_child_t *m_uploads, *m_upload_failures, *m_syncs, *m_sync_failures, *m_last_upload;

static void init_metrics(void)
{
	m_uploads = metric_with(metrics_counter("thanos_shipper_uploads_total",
						"Total number of uploaded blocks.", NULL));
	m_upload_failures = metric_with(metrics_counter("thanos_shipper_upload_failures_total",
							"Total number of block upload failures.", NULL));
	m_syncs = metric_with(metrics_counter("thanos_shipper_dir_syncs_total",
					      "Total number of dir syncs.", NULL));
	m_sync_failures = metric_with(metrics_counter("thanos_shipper_dir_sync_failures_total",
						      "Total number of failed dir syncs.", NULL));
	m_last_upload = metric_with(metrics_gauge("thanos_shipper_last_successful_upload_time",
						  "Unix timestamp (seconds) of the last successful block upload.", NULL));
}

shipper_t *shipper_new(const shipper_config_t *cfg)
{
	shipper_t *s = xcalloc(1, sizeof *s);
	s->dir = xstrdup(cfg->dir);
	s->source = xstrdup(cfg->source ? cfg->source : "");
	s->bucket = cfg->bucket;
	s->upload_compacted = cfg->upload_compacted;
	init_metrics();
	return s;
}

void shipper_free(shipper_t *s)
{
	if (!s)
		return;
	free(s->dir);
	free(s->source);
	VEC_FREE(&s->mints);
	free(s);
}

static bool in_list(char *const *v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i], s))
			return true;
	return false;
}

/* Finished blocks in dir: ULID-named directories holding a meta.json (sorted, i.e. oldest first). */
static int finished_blocks(const char *dir, strvec_t *out, err_t *err)
{
	strvec_t all = {0};
	int rc = list_dir(dir, &all, err);
	for (size_t i = 0; rc == 0 && i < all.n; i++) {
		char p[4096];
		struct stat st;
		snprintf(p, sizeof p, "%s/%s/meta.json", dir, all.v[i]);
		if (!ulid_valid(all.v[i]) || stat(p, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		VEC_PUSH(out, all.v[i]);
		all.v[i] = NULL;
	}
	strvec_free(&all);
	return rc;
}

int shipper_finished_blocks(const char *dir, char ***ulids, size_t *n, err_t *err)
{
	strvec_t v = {0};
	int rc = finished_blocks(dir, &v, err);
	if (rc) {
		strvec_free(&v);
		*ulids = NULL, *n = 0;
		return rc;
	}
	*ulids = v.v, *n = v.n;
	return 0;
}

int shipper_sync(shipper_t *s, const labels_t *ext, shipper_stats_t *stats, err_t *err)
{
	memset(stats, 0, sizeof *stats);
	metric_inc(m_syncs);
	if (!ext || ext->n == 0) {
		metric_inc(m_sync_failures);
		return err_set(err, ERR_INVALID, "shipper: refusing to upload blocks without external labels");
	}
	char **done = NULL;
	size_t ndone = 0;
	err_t merr = {0};
	if (shipper_meta_read(s->dir, &done, &ndone, &merr) != 0)
		log_warn("shipper: ignoring unreadable meta file; blocks already in the bucket are detected there",
			 "err", merr.msg);
	strvec_t uploaded = {done, ndone, ndone};
	strvec_t blocks = {0};
	int rc = finished_blocks(s->dir, &blocks, err), first = 0;
	for (size_t i = 0; rc == 0 && i < blocks.n; i++) {
		const char *id = blocks.v[i];
		if (in_list(uploaded.v, uploaded.n, id))
			continue;
		char bdir[4096];
		snprintf(bdir, sizeof bdir, "%s/%s", s->dir, id);
		block_meta_t m;
		memset(&m, 0, sizeof m);
		err_t e = {0};
		if (meta_read(&m, bdir, &e) != 0) {
			log_warn("shipper: skipping block with unreadable meta.json", "block", id, "err", e.msg);
			meta_release(&m);
			continue;
		}
		int level = m.level;
		meta_release(&m);
		if (level > 1 && !s->upload_compacted) {
			stats->skipped++;
			continue;
		}
		/* Never upload twice: a block whose meta.json is in the bucket is done (e.g. the shipper file
		 * was lost, or another replica of this TSDB dir uploaded it). */
		char name[64];
		snprintf(name, sizeof name, "%s/meta.json", id);
		bool exists = false;
		int erc = bucket_exists(s->bucket, name, &exists, &e);
		if (erc == 0 && !exists) {
			block_upload_opts_t o = {.labels = ext, .source = s->source};
			erc = shipper_upload_block(s->bucket, s->dir, id, &o, &e);
			if (erc == 0) {
				stats->uploaded++;
				metric_inc(m_uploads);
				metric_set(m_last_upload, (double)clock_now_ms() / 1000.0);
				log_info("shipper: uploaded block", "block", id);
			}
		}
		if (erc != 0) {
			stats->failed++;
			metric_inc(m_upload_failures);
			log_error("shipper: upload failed, will retry", "block", id, "err", e.msg);
			if (!first) {
				first = erc;
				*err = e;
			}
			continue;
		}
		VEC_PUSH(&uploaded, xstrdup(id));
		if ((erc = shipper_meta_write(s->dir, uploaded.v, uploaded.n, &e)) != 0) {
			log_error("shipper: cannot record upload", "err", e.msg);
			if (!first) {
				first = erc;
				*err = e;
			}
		}
	}
	strvec_free(&blocks);
	strvec_free(&uploaded);
	if (rc == 0)
		rc = first;
	if (rc)
		metric_inc(m_sync_failures);
	return rc;
}

int64_t shipper_min_time(shipper_t *s, const char *dir)
{
	int64_t mint = INT64_MAX;
	strvec_t blocks = {0};
	err_t err = {0};
	finished_blocks(dir, &blocks, &err);
	for (size_t i = 0; i < blocks.n; i++) {
		char bdir[4096];
		snprintf(bdir, sizeof bdir, "%s/%s", dir, blocks.v[i]);
		block_meta_t m;
		memset(&m, 0, sizeof m);
		if (meta_read(&m, bdir, &err) == 0 && m.mint < mint)
			mint = m.mint;
		meta_release(&m);
	}
	strvec_free(&blocks);
	if (s) {
		char **up = NULL;
		size_t nup = 0;
		shipper_meta_read(s->dir, &up, &nup, &err);
		for (size_t i = 0; i < nup; i++) {
			bool cached = false;
			for (size_t j = 0; j < s->mints.n && !cached; j++) {
				if (!strcmp(s->mints.v[j].ulid, up[i])) {
					cached = true;
					if (s->mints.v[j].mint < mint)
						mint = s->mints.v[j].mint;
				}
			}
			if (cached)
				continue;
			char name[64];
			snprintf(name, sizeof name, "%s/meta.json", up[i]);
			buf_t b = BUF_INIT;
			block_meta_t m;
			memset(&m, 0, sizeof m);
			if (bucket_get(s->bucket, name, &b, &err) == 0 && meta_parse(&m, b.p, b.n, name, &err) == 0) {
				mint_cache_t *c = VEC_ADD(&s->mints);
				snprintf(c->ulid, sizeof c->ulid, "%s", up[i]);
				c->mint = m.mint;
				if (m.mint < mint)
					mint = m.mint;
			}
			meta_release(&m);
			buf_release(&b);
		}
		shipper_ulids_free(up, nup);
	}
	return mint == INT64_MAX ? INT64_MIN : mint;
}
