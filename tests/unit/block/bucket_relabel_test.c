/*
 * bucket_relabel_test.c — block selection rules: keep, drop, hashmod sharding (Prometheus's md5
 * semantics), and config errors naming line and column.
 */
#include <string.h>

#include "block/bucket_relabel.h"
#include "test.h"

static bool sel(bucket_relabel_t *r, const char *cluster)
{
	label_t v[2] = {{STR("__block_id"), STR("01HZZZZZZZZZZZZZZZZZZZZZZ1")},
	                {STR("cluster"), str_c(cluster)}};
	labels_t ls = {v, 2};
	return bucket_relabel_keep(r, &ls);
}

static bucket_relabel_t *parse(const char *y)
{
	bucket_relabel_t *r;
	err_t err = {0};
	if (bucket_relabel_parse(y, strlen(y), "t.yaml", &r, &err))
		TEST_FAILF("parse: %s", err.msg);
	return r;
}

TEST(keep_drop)
{
	bucket_relabel_t *r = parse("- action: keep\n  source_labels: [cluster]\n  regex: eu.*\n"
	                            "- action: drop\n  source_labels: [cluster]\n  regex: eu2\n");
	CHECK(sel(r, "eu1"));
	CHECK(!sel(r, "eu2"));
	CHECK(!sel(r, "us1"));
	bucket_relabel_free(r);
	r = parse("");
	CHECK(sel(r, "anything"));
	bucket_relabel_free(r);
}

TEST(hashmod_shards)
{
	/* md5's last 8 bytes mod 3: eu1 -> 0, us1 -> 1, a -> 1 (as Prometheus computes them) */
	const char *shard[3] = {
	    "- action: hashmod\n  source_labels: [cluster]\n  target_label: shard\n  modulus: 3\n"
	    "- action: keep\n  source_labels: [shard]\n  regex: \"0\"\n",
	    "- action: hashmod\n  source_labels: [cluster]\n  target_label: shard\n  modulus: 3\n"
	    "- action: keep\n  source_labels: [shard]\n  regex: \"1\"\n",
	    "- action: hashmod\n  source_labels: [cluster]\n  target_label: shard\n  modulus: 3\n"
	    "- action: keep\n  source_labels: [shard]\n  regex: \"2\"\n",
	};
	bucket_relabel_t *r[3];
	for (int i = 0; i < 3; i++)
		r[i] = parse(shard[i]);
	CHECK(sel(r[0], "eu1") && !sel(r[1], "eu1") && !sel(r[2], "eu1"));
	CHECK(!sel(r[0], "us1") && sel(r[1], "us1") && !sel(r[2], "us1"));
	CHECK(sel(r[1], "a"));
	for (int i = 0; i < 3; i++)
		bucket_relabel_free(r[i]);
}

TEST(errors_name_place)
{
	bucket_relabel_t *r;
	err_t err = {0};
	const char *bad[] = {"- action: labelmap\n", "- action: hashmod\n  source_labels: [a]\n",
	                     "- action: hashmod\n  target_label: s\n  modulus: x\n",
	                     "- action: keep\n  regex: \"(\"\n", "a: b\n"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		CHECK_EQ_INT(bucket_relabel_parse(bad[i], strlen(bad[i]), "t.yaml", &r, &err), ERR_INVALID);
		CHECK(strstr(err.msg, "t.yaml:") != NULL);
	}
}

TEST_MAIN()
