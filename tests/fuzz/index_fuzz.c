/*
 * index_fuzz — libFuzzer target for the index v2 reader over arbitrary bytes: open (header, TOC),
 * load (symbols, postings offset table), every series of the all-postings list, label names and
 * values, postings per value and for matchers. Any crash, sanitizer report or leak is a bug; errors
 * are expected and must carry a message.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/arena.h"
#include "tsdb/index.h"

#define MAX_ITEMS 2000

static matcher_t ms[4];
static int inited;

static void init(void)
{
	matcher_init(&ms[0], MATCH_EQ, STR("job"), STR("a"), NULL);
	matcher_init(&ms[1], MATCH_RE, STR("i"), STR("a|b.*"), NULL);
	matcher_init(&ms[2], MATCH_NEQ, STR("e"), STR("x"), NULL);
	matcher_init(&ms[3], MATCH_NRE, STR("__name__"), STR(".+"), NULL);
	inited = 1;
}

static void check_err(int rc, const err_t *err)
{
	if (rc < 0 && rc != ERR_NOT_FOUND && !err->msg[0])
		abort(); /* every error must say what went wrong */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!inited)
		init();
	/* a private copy so reads past `size` are caught by ASan even if libFuzzer's buffer is bigger */
	uint8_t *p = xmalloc(size ? size : 1);
	memcpy(p, data, size);
	index_reader_t r;
	err_t err = {0};
	int rc = index_reader_open_mem(&r, "fuzz", p, size, &err);
	check_err(rc, &err);
	if (rc) {
		free(p);
		return 0;
	}
	arena_t a;
	arena_init(&a, 0);
	postings_t all;
	str_t *names = NULL, *vals = NULL;
	size_t nn = 0, nv = 0;
	if ((rc = index_reader_load(&r, &err)))
		goto out;
	if ((rc = index_reader_postings(&r, &a, STR_NULL, STR_NULL, &all, &err)))
		goto out;
	for (size_t i = 0; i < all.n && i < MAX_ITEMS; i++) {
		labels_t ls;
		chunk_meta_t *c;
		size_t nc;
		rc = index_reader_series(&r, &a, all.v[i], &ls, &c, &nc, &err);
		check_err(rc, &err);
		if (rc)
			break;
	}
	if ((rc = index_reader_label_names(&r, &a, NULL, 0, &names, &nn, &err)))
		goto out;
	for (size_t i = 0; i < nn && i < 64; i++) {
		if ((rc = index_reader_label_values(&r, &a, names[i], NULL, 0, &vals, &nv, &err)))
			goto out;
		for (size_t k = 0; k < nv && k < MAX_ITEMS; k++) {
			postings_t pp;
			rc = index_reader_postings(&r, &a, names[i], vals[k], &pp, &err);
			check_err(rc, &err);
		}
	}
	for (size_t i = 0; i < 4; i++) {
		postings_t pp;
		rc = index_reader_postings_for_matchers(&r, &a, &ms[i], 1, &pp, &err);
		check_err(rc, &err);
		rc = index_reader_label_values(&r, &a, STR("job"), &ms[i], 1, &vals, &nv, &err);
		check_err(rc, &err);
	}
	uint32_t idx;
	str_t s;
	if (index_reader_symbol_index(&r, STR("job"), &idx, &err) == 0)
		index_reader_symbol(&r, idx, &s, &err);
	for (uint32_t i = 0; i < 8; i++) {
		rc = index_reader_symbol(&r, i, &s, &err);
		check_err(rc, &err);
	}
	rc = 0;
out:
	check_err(rc, &err);
	arena_release(&a);
	index_reader_close(&r);
	free(p);
	return 0;
}
