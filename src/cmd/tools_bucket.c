/*
 * tools_bucket.c — `strata tools bucket {ls,inspect,verify,upload-blocks}` (Thanos `tools bucket`).
 *
 * All subcommands take --objstore.config / --objstore.config-file. Blocks are top-level "<ULID>/"
 * directories with a meta.json; directories without one are partial uploads (shown by verify only).
 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/duration.h"
#include "base/str.h"
#include "base/vec.h"
#include "cmd/cmd.h"
#include "objstore/bucket.h"
#include "objstore/config.h"
#include "store/shipper.h"
#include "tsdb/meta.h"

typedef struct bucket_flags {
	char *config;
	char *config_file;
} bucket_flags_t;

#define OBJSTORE_FLAGS(bf)                                                                               \
	{"objstore.config", FLAG_STRING, &(bf)->config, NULL,                                            \
	 "Alternative to 'objstore.config-file' flag (mutually exclusive). Content of YAML file that contains object store configuration."}, \
	{"objstore.config-file", FLAG_STRING, &(bf)->config_file, NULL,                                  \
	 "Path to YAML file that contains object store configuration."}

static int open_bucket(const char *cmdline, const bucket_flags_t *bf, bucket_t **b)
{
	err_t err = {0};
	if (objstore_from_flags(bf->config, bf->config_file, b, &err)) {
		fprintf(stderr, "%s: %s\n", cmdline, err.msg);
		return err.code == ERR_INVALID ? 2 : 1;
	}
	return 0;
}

/* ---- loading block metas ---- */

typedef struct block_entry {
	char ulid[ULID_LEN + 1];
	bool has_meta;
	block_meta_t meta;
} block_entry_t;

typedef VEC(block_entry_t) blocks_t;

static int collect_dirs(void *arg, const char *name)
{
	blocks_t *bs = arg;
	size_t n = strlen(name);
	if (n != ULID_LEN + 1 || name[ULID_LEN] != '/')
		return 0;
	char id[ULID_LEN + 1];
	memcpy(id, name, ULID_LEN);
	id[ULID_LEN] = 0;
	if (!ulid_valid(id))
		return 0; /* e.g. debug/ */
	block_entry_t *e = VEC_ADD(bs);
	memcpy(e->ulid, id, sizeof id);
	return 0;
}

static void blocks_free(blocks_t *bs)
{
	for (size_t i = 0; i < bs->n; i++)
		if (bs->v[i].has_meta)
			meta_release(&bs->v[i].meta);
	VEC_FREE(bs);
}

/* Lists blocks and reads every meta.json. Returns 0 or prints the error and returns 1. */
static int load_blocks(const char *cmdline, bucket_t *b, blocks_t *bs, bool quiet_partial)
{
	err_t err = {0};
	if (bucket_iter(b, "", 0, collect_dirs, bs, &err)) {
		fprintf(stderr, "%s: %s\n", cmdline, err.msg);
		return 1;
	}
	buf_t data = BUF_INIT;
	for (size_t i = 0; i < bs->n; i++) {
		block_entry_t *e = &bs->v[i];
		char name[64];
		snprintf(name, sizeof name, "%s/meta.json", e->ulid);
		buf_reset(&data);
		int rc = bucket_get(b, name, &data, &err);
		if (rc == ERR_NOT_FOUND) {
			if (!quiet_partial)
				log_warn("block without meta.json (partial upload?)", "block", e->ulid);
			continue;
		}
		if (rc == 0)
			rc = meta_parse(&e->meta, data.p, data.n, name, &err);
		if (rc) {
			fprintf(stderr, "%s: %s\n", cmdline, err.msg);
			buf_release(&data);
			return 1;
		}
		e->has_meta = true;
	}
	buf_release(&data);
	return 0;
}

static void put_labels(buf_t *b, const block_meta_t *m)
{
	buf_putc(b, '{');
	for (size_t i = 0; i < m->nlabels; i++) { /* nlabels counts pairs */
		if (i)
			buf_putc(b, ',');
		buf_printf(b, "%s=", m->labels[2 * i]);
		buf_json_str(b, str_c(m->labels[2 * i + 1]));
	}
	buf_putc(b, '}');
}

static void put_time(buf_t *b, int64_t ms)
{
	buf_put_rfc3339_ms(b, ms);
}

/* ---- ls ---- */

static int cmd_ls(int argc, char **argv)
{
	static bucket_flags_t bf;
	static char *output;
	flag_def_t defs[] = {
		OBJSTORE_FLAGS(&bf),
		{"output", FLAG_ENUM, &output, "", "Optional format in which to print each block's information: json, wide.",
		 "|json|wide"},
	};
	flags_result_t res = {0};
	int exit_now, rc = cmd_parse_flags(argv[0], "List all blocks in the bucket.", defs, ARRAY_LEN(defs), argc,
					   argv, &res, &exit_now);
	if (exit_now)
		return rc;
	free(res.pos);
	bucket_t *b;
	if ((rc = open_bucket(argv[0], &bf, &b)) != 0)
		return rc;
	blocks_t bs = {0};
	rc = load_blocks(argv[0], b, &bs, false);
	buf_t out = BUF_INIT;
	for (size_t i = 0; rc == 0 && i < bs.n; i++) {
		block_entry_t *e = &bs.v[i];
		if (!e->has_meta)
			continue;
		buf_reset(&out);
		if (!strcmp(output, "json")) {
			buf_t j = BUF_INIT;
			meta_format(&j, &e->meta);
			/* One JSON object per line. */
			for (size_t k = 0; k < j.n; k++)
				if (j.p[k] != '\n' && j.p[k] != '\t')
					buf_putc(&out, j.p[k]);
			buf_release(&j);
		} else if (!strcmp(output, "wide")) {
			buf_printf(&out, "%s -- ", e->ulid);
			put_time(&out, e->meta.mint);
			buf_puts(&out, " - ");
			put_time(&out, e->meta.maxt);
			buf_puts(&out, " Diff: ");
			duration_format(&out, e->meta.maxt - e->meta.mint);
			buf_printf(&out, ", Compaction: %d, Downsample: %lld, Source: %s", e->meta.level,
				   (long long)e->meta.resolution, e->meta.source ? e->meta.source : "");
		} else {
			buf_puts(&out, e->ulid);
		}
		printf("%s\n", out.p);
	}
	buf_release(&out);
	blocks_free(&bs);
	bucket_free(b);
	return rc;
}

/* ---- inspect ---- */

static int cmp_block(const void *a, const void *b)
{
	const block_entry_t *x = a, *y = b;
	if (x->meta.mint != y->meta.mint)
		return x->meta.mint < y->meta.mint ? -1 : 1;
	return strcmp(x->ulid, y->ulid);
}

static int cmd_inspect(int argc, char **argv)
{
	static bucket_flags_t bf;
	static char *output;
	flag_def_t defs[] = {
		OBJSTORE_FLAGS(&bf),
		{"output", FLAG_ENUM, &output, "table", "Output format for result.", "table|tsv|csv"},
	};
	flags_result_t res = {0};
	int exit_now, rc = cmd_parse_flags(argv[0], "Inspect all blocks in the bucket in detailed, table-like way.",
					   defs, ARRAY_LEN(defs), argc, argv, &res, &exit_now);
	if (exit_now)
		return rc;
	free(res.pos);
	bucket_t *b;
	if ((rc = open_bucket(argv[0], &bf, &b)) != 0)
		return rc;
	blocks_t bs = {0};
	rc = load_blocks(argv[0], b, &bs, true);
	if (rc == 0) {
		/* Keep only complete blocks, sorted by start time. */
		size_t k = 0;
		for (size_t i = 0; i < bs.n; i++)
			if (bs.v[i].has_meta)
				bs.v[k++] = bs.v[i];
		bs.n = k;
		qsort(bs.v, bs.n, sizeof(*bs.v), cmp_block);
		static const char *hdr[] = {"ULID", "FROM", "UNTIL", "RANGE", "#SERIES", "#SAMPLES", "#CHUNKS",
					    "COMP-LEVEL", "LABELS", "RESOLUTION", "SOURCE"};
		enum { NC = ARRAY_LEN(hdr) };
		size_t nrows = bs.n + 1;
		buf_t *cells = xcalloc(nrows * NC, sizeof(buf_t));
		for (size_t i = 0; i < nrows * NC; i++)
			buf_init(&cells[i]);
		for (size_t c = 0; c < NC; c++)
			buf_puts(&cells[c], hdr[c]);
		for (size_t i = 0; i < bs.n; i++) {
			const block_meta_t *m = &bs.v[i].meta;
			buf_t *row = &cells[(i + 1) * NC];
			buf_puts(&row[0], bs.v[i].ulid);
			put_time(&row[1], m->mint);
			put_time(&row[2], m->maxt);
			duration_format(&row[3], m->maxt - m->mint);
			buf_put_u64(&row[4], m->num_series);
			buf_put_u64(&row[5], m->num_samples);
			buf_put_u64(&row[6], m->num_chunks);
			buf_printf(&row[7], "%d", m->level);
			put_labels(&row[8], m);
			if (m->resolution)
				duration_format(&row[9], m->resolution);
			else
				buf_puts(&row[9], "0s");
			buf_puts(&row[10], m->source ? m->source : "");
		}
		size_t width[NC] = {0};
		for (size_t r = 0; r < nrows; r++)
			for (size_t c = 0; c < NC; c++)
				if (cells[r * NC + c].n > width[c])
					width[c] = cells[r * NC + c].n;
		for (size_t r = 0; r < nrows; r++) {
			for (size_t c = 0; c < NC; c++) {
				const buf_t *cell = &cells[r * NC + c];
				if (!strcmp(output, "table"))
					printf("%s%-*s", c ? " | " : "| ", (int)width[c], cell->p);
				else
					printf("%s%s", c ? (!strcmp(output, "csv") ? "," : "\t") : "", cell->p);
			}
			printf("%s\n", !strcmp(output, "table") ? " |" : "");
		}
		for (size_t i = 0; i < nrows * NC; i++)
			buf_release(&cells[i]);
		free(cells);
	}
	blocks_free(&bs);
	bucket_free(b);
	return rc;
}

/* ---- verify ---- */

static int cmd_verify(int argc, char **argv)
{
	static bucket_flags_t bf;
	static bool repair;
	flag_def_t defs[] = {
		OBJSTORE_FLAGS(&bf),
		{"repair", FLAG_BOOL, &repair, "false", "Attempt to repair blocks for which issues were detected."},
	};
	flags_result_t res = {0};
	int exit_now, rc = cmd_parse_flags(argv[0], "Verify all blocks in the bucket against specified issues.",
					   defs, ARRAY_LEN(defs), argc, argv, &res, &exit_now);
	if (exit_now)
		return rc;
	free(res.pos);
	if (repair) {
		fprintf(stderr, "%s: --repair is not supported yet; run without it to get the report\n", argv[0]);
		return 2;
	}
	bucket_t *b;
	if ((rc = open_bucket(argv[0], &bf, &b)) != 0)
		return rc;
	blocks_t bs = {0};
	rc = load_blocks(argv[0], b, &bs, true);
	int issues = 0;
	err_t err = {0};
	for (size_t i = 0; rc == 0 && i < bs.n; i++) {
		block_entry_t *e = &bs.v[i];
		if (!e->has_meta) {
			printf("issue=partial_block block=%s msg=\"no meta.json (partial or in-progress upload)\"\n", e->ulid);
			issues++;
			continue;
		}
		const block_meta_t *m = &e->meta;
		if (strcmp(m->ulid, e->ulid) != 0) {
			printf("issue=meta_mismatch block=%s msg=\"meta.json ulid is %s\"\n", e->ulid, m->ulid);
			issues++;
		}
		if (m->mint >= m->maxt) {
			printf("issue=bad_time_range block=%s msg=\"minTime %lld >= maxTime %lld\"\n", e->ulid,
			       (long long)m->mint, (long long)m->maxt);
			issues++;
		}
		/* index present; every file listed in thanos.files present with its size. */
		char name[600];
		bucket_attrs_t a;
		snprintf(name, sizeof name, "%s/index", e->ulid);
		if (bucket_attributes(b, name, &a, &err) != 0) {
			printf("issue=missing_file block=%s file=index msg=\"%s\"\n", e->ulid, err.msg);
			issues++;
		}
		bool has_chunks = false;
		for (size_t f = 0; f < m->nfiles; f++) {
			const meta_file_t *mf = &m->files[f];
			if (!strcmp(mf->rel_path, "meta.json"))
				continue;
			if (!strncmp(mf->rel_path, "chunks/", 7))
				has_chunks = true;
			snprintf(name, sizeof name, "%s/%s", e->ulid, mf->rel_path);
			if (bucket_attributes(b, name, &a, &err) != 0) {
				printf("issue=missing_file block=%s file=%s msg=\"%s\"\n", e->ulid, mf->rel_path, err.msg);
				issues++;
			} else if (mf->size_bytes && a.size != mf->size_bytes) {
				printf("issue=size_mismatch block=%s file=%s size=%lld meta_size=%lld\n", e->ulid,
				       mf->rel_path, (long long)a.size, (long long)mf->size_bytes);
				issues++;
			}
		}
		if (m->nfiles && !has_chunks && m->num_chunks) {
			printf("issue=missing_file block=%s file=chunks msg=\"meta.json lists no chunk segment\"\n",
			       e->ulid);
			issues++;
		}
	}
	/* Overlaps and duplicates within a stream (same external labels and resolution). */
	for (size_t i = 0; rc == 0 && i < bs.n; i++) {
		for (size_t j = i + 1; j < bs.n; j++) {
			block_entry_t *x = &bs.v[i], *y = &bs.v[j];
			if (!x->has_meta || !y->has_meta || x->meta.resolution != y->meta.resolution ||
			    x->meta.nlabels != y->meta.nlabels)
				continue;
			bool same = true;
			for (size_t k = 0; k < 2 * x->meta.nlabels && same; k++)
				same = !strcmp(x->meta.labels[k], y->meta.labels[k]);
			if (!same)
				continue;
			bool dup = x->meta.nsources && x->meta.nsources == y->meta.nsources;
			for (size_t k = 0; dup && k < x->meta.nsources; k++)
				dup = !strcmp(x->meta.sources[k], y->meta.sources[k]);
			if (dup) {
				printf("issue=duplicated_compaction blocks=%s,%s msg=\"same sources\"\n", x->ulid, y->ulid);
				issues++;
			} else if (x->meta.mint < y->meta.maxt && y->meta.mint < x->meta.maxt) {
				printf("issue=overlapped_blocks blocks=%s,%s msg=\"[%lld,%lld) overlaps [%lld,%lld)\"\n",
				       x->ulid, y->ulid, (long long)x->meta.mint, (long long)x->meta.maxt,
				       (long long)y->meta.mint, (long long)y->meta.maxt);
				issues++;
			}
		}
	}
	if (rc == 0)
		printf("verified %zu blocks: %d issues\n", bs.n, issues);
	blocks_free(&bs);
	bucket_free(b);
	return rc ? rc : issues ? 1 : 0;
}

/* ---- upload-blocks ---- */

typedef VEC(char *) paths_t;

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_paths(paths_t *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->v[i]);
	VEC_FREE(p);
}

/* Sorted regular-file names in dir (non-recursive). */
static int list_files(const char *dir, paths_t *out)
{
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -1;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		VEC_PUSH(out, xstrdup(de->d_name));
	}
	closedir(d);
	if (out->n)
		qsort(out->v, out->n, sizeof(char *), cmp_str);
	return 0;
}

/* --label name="value" flags as external labels; the upload itself is store/shipper.h's (shared with
 * the sidecar's shipper). */
static int upload_block(bucket_t *b, const char *dir, const char *ulid, const strlist_t *labels, err_t *err)
{
	label_t *ls = xcalloc(labels->n ? labels->n : 1, sizeof *ls);
	for (size_t i = 0; i < labels->n; i++) {
		const char *kv = labels->v[i], *eq = strchr(kv, '=');
		const char *v = eq + 1;
		size_t vn = strlen(v);
		if (vn >= 2 && v[0] == '"' && v[vn - 1] == '"') {
			v++;
			vn -= 2;
		}
		ls[i] = (label_t){str_from(kv, (size_t)(eq - kv)), str_from(v, vn)};
	}
	labels_t ext = {ls, labels->n};
	block_upload_opts_t o = {.labels = &ext, .source = "bucket.upload", .keep_source = true};
	int rc = shipper_upload_block(b, dir, ulid, &o, err);
	free(ls);
	return rc;
}

static int cmd_upload_blocks(int argc, char **argv)
{
	static bucket_flags_t bf;
	static char *path;
	static strlist_t labels;
	flag_def_t defs[] = {
		OBJSTORE_FLAGS(&bf),
		{"path", FLAG_STRING, &path, "./data", "Path to the directory containing blocks to upload."},
		{"label", FLAG_STRINGS, &labels, NULL, "External labels to add to the uploaded blocks (repeated)."},
	};
	flags_result_t res = {0};
	int exit_now, rc = cmd_parse_flags(argv[0], "Upload blocks to a bucket.", defs, ARRAY_LEN(defs), argc, argv,
					   &res, &exit_now);
	if (exit_now)
		return rc;
	free(res.pos);
	if (labels.n == 0) {
		fprintf(stderr, "%s: at least one --label=name=\"value\" is required (blocks need external labels)\n",
			argv[0]);
		return 2;
	}
	for (size_t i = 0; i < labels.n; i++) {
		const char *eq = strchr(labels.v[i], '=');
		if (!eq || eq == labels.v[i]) {
			fprintf(stderr, "%s: --label \"%s\": want name=\"value\"\n", argv[0], labels.v[i]);
			return 2;
		}
	}
	bucket_t *b;
	if ((rc = open_bucket(argv[0], &bf, &b)) != 0)
		return rc;
	paths_t dirs = {0};
	if (list_files(path, &dirs) != 0) {
		fprintf(stderr, "%s: --path %s: %s\n", argv[0], path, strerror(errno));
		bucket_free(b);
		return 1;
	}
	int uploaded = 0, skipped = 0;
	for (size_t i = 0; rc == 0 && i < dirs.n; i++) {
		if (!ulid_valid(dirs.v[i]))
			continue;
		char meta[4096];
		snprintf(meta, sizeof meta, "%s/%s/meta.json", path, dirs.v[i]);
		struct stat st;
		if (stat(meta, &st) != 0)
			continue; /* not a finished block */
		char name[64];
		snprintf(name, sizeof name, "%s/meta.json", dirs.v[i]);
		bool exists = false;
		err_t err = {0};
		if (bucket_exists(b, name, &exists, &err) == 0 && exists) {
			log_info("block already in the bucket, skipping", "block", dirs.v[i]);
			skipped++;
			continue;
		}
		if (upload_block(b, path, dirs.v[i], &labels, &err) != 0) {
			fprintf(stderr, "%s: block %s: %s\n", argv[0], dirs.v[i], err.msg);
			rc = 1;
			break;
		}
		log_info("uploaded block", "block", dirs.v[i]);
		uploaded++;
	}
	if (rc == 0)
		printf("uploaded %d blocks, %d already present\n", uploaded, skipped);
	free_paths(&dirs);
	bucket_free(b);
	return rc;
}

int cmd_tools_bucket(int argc, char **argv)
{
	static const cmd_t subs[] = {
		{"inspect", "Inspect all blocks in the bucket in detailed, table-like way.", cmd_inspect},
		{"ls", "List all blocks in the bucket.", cmd_ls},
		{"upload-blocks", "Upload blocks to a bucket.", cmd_upload_blocks},
		{"verify", "Verify all blocks in the bucket against specified issues.", cmd_verify},
	};
	const char *sub = argc > 1 ? argv[1] : NULL;
	for (size_t i = 0; sub && i < ARRAY_LEN(subs); i++) {
		if (strcmp(sub, subs[i].name) != 0)
			continue;
		char cmdline[128];
		snprintf(cmdline, sizeof cmdline, "%s %s", argv[0], sub);
		/* Thanos's short -o for --output. */
		char **args = xcalloc((size_t)argc, sizeof(char *));
		args[0] = cmdline;
		for (int k = 2; k < argc; k++)
			args[k - 1] = !strcmp(argv[k], "-o") ? "--output" : argv[k];
		int rc = subs[i].run(argc - 1, args);
		free(args);
		return rc;
	}
	FILE *out = sub && strcmp(sub, "--help") && strcmp(sub, "-h") ? stderr : stdout;
	if (sub && out == stderr)
		fprintf(stderr, "%s: unknown subcommand \"%s\"\n", argv[0], sub);
	fprintf(out, "usage: %s <command> [<flags>]\n\nCommands:\n", argv[0]);
	for (size_t i = 0; i < ARRAY_LEN(subs); i++)
		fprintf(out, "  %-15s %s\n", subs[i].name, subs[i].summary);
	return out == stderr ? 2 : 0;
}
