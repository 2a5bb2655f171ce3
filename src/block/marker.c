/*
 * marker.c — marker files and block deletion order (see marker.h).
 */
#include "block/marker.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/vec.h"

static const char *const files[MARKER_N] = {"deletion-mark.json", "no-compact-mark.json",
                                            "no-downsample-mark.json"};
static const char *const time_keys[MARKER_N] = {"deletion_time", "no_compact_time", "no_downsample_time"};

const char *marker_file(marker_kind_t kind)
{
	return files[kind];
}

int marker_kind_of(const char *file)
{
	for (int k = 0; k < MARKER_N; k++)
		if (strcmp(file, files[k]) == 0)
			return k;
	return -1;
}

void marker_release(marker_t *m)
{
	free(m->reason);
	free(m->details);
	memset(m, 0, sizeof *m);
}

int marker_parse(marker_t *m, marker_kind_t kind, const char *json, size_t len, const char *what, err_t *err)
{
	memset(m, 0, sizeof *m);
	m->kind = kind;
	json_error_t je;
	json_t *root = json_loadb(json, len, 0, &je);
	if (!root)
		return err_set(err, ERR_CORRUPT, "%s: line %d column %d: %s", what, je.line, je.column,
		               je.text);
	int rc = 0;
	json_t *id = json_object_get(root, "id"), *ver = json_object_get(root, "version"),
	       *t = json_object_get(root, time_keys[kind]);
	if (!json_is_object(root))
		rc = err_set(err, ERR_CORRUPT, "%s: not a JSON object", what);
	else if (!json_is_string(id) || !ulid_valid(json_string_value(id)))
		rc = err_set(err, ERR_CORRUPT, "%s: missing or invalid \"id\"", what);
	else if (!json_is_integer(ver) || json_integer_value(ver) != 1)
		rc = err_set(err, ERR_CORRUPT, "%s: unsupported marker version (want 1)", what);
	else if (!json_is_integer(t))
		rc = err_set(err, ERR_CORRUPT, "%s: missing integer \"%s\"", what, time_keys[kind]);
	if (!rc) {
		snprintf(m->id, sizeof m->id, "%s", json_string_value(id));
		m->time_s = json_integer_value(t);
		json_t *r = json_object_get(root, "reason"), *d = json_object_get(root, "details");
		if (kind != MARKER_DELETION && json_is_string(r))
			m->reason = xstrdup(json_string_value(r));
		if (json_is_string(d) && *json_string_value(d))
			m->details = xstrdup(json_string_value(d));
	}
	json_decref(root);
	return rc;
}

void marker_format(buf_t *b, const marker_t *m)
{
	buf_puts(b, "{\n\t\"id\": ");
	buf_json_str(b, str_c(m->id));
	buf_puts(b, ",\n\t\"version\": 1");
	if (m->kind != MARKER_DELETION) {
		buf_puts(b, ",\n\t\"reason\": ");
		buf_json_str(b, str_c(m->reason));
	}
	buf_puts(b, ",\n\t\"details\": ");
	buf_json_str(b, str_c(m->details));
	buf_printf(b, ",\n\t\"%s\": %lld\n}", time_keys[m->kind], (long long)m->time_s);
}

static void object_name(char *out, size_t n, const char *ulid, marker_kind_t kind)
{
	snprintf(out, n, "%s/%s", ulid, files[kind]);
}

int marker_read(bucket_t *b, const char *ulid, marker_kind_t kind, marker_t *out, err_t *err)
{
	char name[128];
	object_name(name, sizeof name, ulid, kind);
	buf_t d = BUF_INIT;
	int rc = bucket_get(b, name, &d, err);
	if (!rc)
		rc = marker_parse(out, kind, d.p, d.n, name, err);
	if (!rc && strcmp(out->id, ulid) != 0) {
		rc = err_set(err, ERR_CORRUPT, "%s: id %s is not the block's", name, out->id);
		marker_release(out);
	}
	buf_release(&d);
	return rc;
}

int marker_write(bucket_t *b, const char *ulid, marker_kind_t kind, const char *reason, const char *details,
                 bool *created, err_t *err)
{
	char name[128];
	object_name(name, sizeof name, ulid, kind);
	if (created)
		*created = false;
	bool exists = false;
	int rc = bucket_exists(b, name, &exists, err);
	if (rc || exists)
		return rc;
	marker_t m = {.kind = kind,
	              .time_s = clock_now_ms() / 1000,
	              .reason = (char *)reason,
	              .details = (char *)details};
	snprintf(m.id, sizeof m.id, "%s", ulid);
	if (kind != MARKER_DELETION && !reason)
		m.reason = MARKER_REASON_MANUAL;
	buf_t j = BUF_INIT;
	marker_format(&j, &m);
	rc = bucket_put(b, name, j.p, j.n, err);
	buf_release(&j);
	if (!rc && created)
		*created = true;
	return rc;
}

int marker_remove(bucket_t *b, const char *ulid, marker_kind_t kind, err_t *err)
{
	char name[128];
	object_name(name, sizeof name, ulid, kind);
	int rc = bucket_delete(b, name, err);
	if (rc == ERR_NOT_FOUND) {
		err_clear(err);
		rc = 0;
	}
	return rc;
}

static int collect(void *arg, const char *name)
{
	VEC(char *) *v = arg;
	VEC_PUSH(v, xstrdup(name));
	return 0;
}

static int delete_quiet(bucket_t *b, const char *name, err_t *err)
{
	int rc = bucket_delete(b, name, err);
	if (rc == ERR_NOT_FOUND) {
		err_clear(err);
		return 0;
	}
	return rc;
}

int marker_delete_block(bucket_t *b, const char *ulid, err_t *err)
{
	char name[128], dir[64];
	snprintf(name, sizeof name, "%s/meta.json", ulid);
	int rc = delete_quiet(b, name, err);
	if (rc)
		return err_wrap(err, "delete block %s", ulid);
	VEC(char *) objs = {0};
	snprintf(dir, sizeof dir, "%s/", ulid);
	rc = bucket_iter(b, dir, BUCKET_ITER_RECURSIVE, collect, &objs, err);
	object_name(name, sizeof name, ulid, MARKER_DELETION);
	for (size_t i = 0; !rc && i < objs.n; i++)
		if (strcmp(objs.v[i], name) != 0)
			rc = delete_quiet(b, objs.v[i], err);
	if (!rc)
		rc = delete_quiet(b, name, err);
	for (size_t i = 0; i < objs.n; i++)
		free(objs.v[i]);
	VEC_FREE(&objs);
	return rc ? err_wrap(err, "delete block %s", ulid) : 0;
}
