/*
 * hashring_test.c — placement pinned to vectors computed from the spec by an independent
 * implementation (tests/unit/receive/hashring_vectors.py: pure-Python xxhash64, hashmod, ketama),
 * plus the hashring file's parsing, tenant matching and errors.
 */
#include <string.h>
#include <xxhash.h>

#include "base/alloc.h"
#include "receive/hashring.h"
#include "test.h"

static const char *EPS[] = {"10.0.0.3:10901", "10.0.0.1:10901", "10.0.0.2:10901", "10.0.0.4:10901"};

typedef struct vec {
	uint64_t hash;
	const char *owner[3];
} vec_t;

static const uint64_t SERIES_HASH[4] = {0xc7e310183b892610ull, 0xd44d861ffb03e9f4ull, 0x8760341588b981afull,
                                        0xb4d261aca71794c8ull};

static labels_t mk(label_t *v, size_t n)
{
	return (labels_t){v, n};
}

TEST(xxhash64_known_values)
{
	CHECK(XXH64("", 0, 0) == 0xef46db3751d8e999ull);
	CHECK(XXH64("abc", 3, 0) == 0x44bc2cf5ad770999ull);
}

TEST(series_hash_vectors)
{
	label_t a[] = {
	    {STR("__name__"), STR("up")}, {STR("instance"), STR("a:9090")}, {STR("job"), STR("node")}};
	label_t b[] = {{STR("__name__"), STR("http_requests_total")},
	               {STR("code"), STR("200")},
	               {STR("pod"), STR("web-1")}};
	label_t c[] = {{STR("__name__"), STR("node_cpu_seconds_total")},
	               {STR("cpu"), STR("0")},
	               {STR("mode"), STR("idle")}};
	label_t d[] = {{STR("a"), STR("b")}};
	labels_t la = mk(a, 3), lb = mk(b, 3), lc = mk(c, 3), ld = mk(d, 1);
	CHECK(hashring_series_hash(STR("default-tenant"), &la) == SERIES_HASH[0]);
	CHECK(hashring_series_hash(STR("team-a"), &lb) == SERIES_HASH[1]);
	CHECK(hashring_series_hash(STR("default-tenant"), &lc) == SERIES_HASH[2]);
	CHECK(hashring_series_hash(STR("t"), &ld) == SERIES_HASH[3]);
	/* a label set longer than the stack buffer hashes the same as the streaming definition */
	char big[3000];
	memset(big, 'x', sizeof big);
	label_t e[] = {{STR("a"), str_from(big, sizeof big)}};
	labels_t le = mk(e, 1);
	char buf[3010];
	memcpy(buf,
	       "t\xff"
	       "a\xff",
	       4);
	memcpy(buf + 4, big, sizeof big);
	buf[4 + sizeof big] = (char)0xff;
	CHECK(hashring_series_hash(STR("t"), &le) == XXH64(buf, 5 + sizeof big, 0));
}

static void check_ring(const hashring_t *r, const vec_t *v, size_t n, uint64_t rf)
{
	for (size_t i = 0; i < n; i++)
		for (uint64_t k = 0; k < rf; k++) {
			size_t e;
			err_t err = {0};
			CHECK(hashring_get_n(r, v[i].hash, k, &e, &err) == 0);
			if (strcmp(hashring_address(r, e), v[i].owner[k]))
				TEST_FAILF("hash %016llx replica %llu: got %s, want %s",
				           (unsigned long long)v[i].hash, (unsigned long long)k,
				           hashring_address(r, e), v[i].owner[k]);
		}
}

#define A1 "10.0.0.1:10901"
#define A2 "10.0.0.2:10901"
#define A3 "10.0.0.3:10901"
#define A4 "10.0.0.4:10901"

TEST(hashmod_vectors)
{
	static const vec_t v[] = {
	    {0xc7e310183b892610ull, {A1, A2, A3}},
	    {0xd44d861ffb03e9f4ull, {A1, A2, A3}},
	    {0x8760341588b981afull, {A4, A1, A2}},
	    {0xb4d261aca71794c8ull, {A1, A2, A3}},
	    {0, {A1, A2, A3}},
	    {1, {A2, A3, A4}},
	    {0x8000000000000000ull, {A1, A2, A3}},
	    {0xffffffffffffffffull, {A4, A1, A2}},
	};
	hashring_t *r;
	err_t err = {0};
	CHECK(hashring_new(HASHRING_HASHMOD, EPS, NULL, 4, 3, &r, &err) == 0);
	check_ring(r, v, ARRAY_LEN(v), 3);
	size_t e;
	CHECK(hashring_get_n(r, 1, 4, &e, &err) == ERR_INVALID);
	CHECK(strstr(err.msg, "insufficient nodes") != NULL);
	hashring_free(r);
}

TEST(ketama_vectors)
{
	static const vec_t v[] = {
	    {0xc7e310183b892610ull, {A1, A4, A2}},
	    {0xd44d861ffb03e9f4ull, {A2, A3, A1}},
	    {0x8760341588b981afull, {A3, A2, A4}},
	    {0xb4d261aca71794c8ull, {A3, A1, A4}},
	    {0, {A4, A3, A2}},
	    {1, {A4, A3, A2}},
	    {0x8000000000000000ull, {A2, A4, A3}},
	    {0xffffffffffffffffull, {A4, A3, A2}},
	};
	hashring_t *r;
	err_t err = {0};
	CHECK(hashring_new(HASHRING_KETAMA, EPS, NULL, 4, 3, &r, &err) == 0);
	check_ring(r, v, ARRAY_LEN(v), 3);
	/* one section exactly: the first section's hash maps to it, one more maps to the next one */
	size_t e0, e1;
	CHECK(hashring_get_n(r, 0x000aabc6faa82489ull, 0, &e0, &err) == 0);
	CHECK(hashring_get_n(r, 0, 0, &e1, &err) == 0);
	CHECK(e0 == e1);
	hashring_free(r);
}

TEST(ketama_az_vectors)
{
	static const char *addr[] = {"a1:10901", "a2:10901", "b1:10901", "b2:10901", "c1:10901"};
	static const char *az[] = {"a", "a", "b", "b", "c"};
	static const vec_t v[] = {
	    {0xc7e310183b892610ull, {"b1:10901", "c1:10901", "a2:10901"}},
	    {0xd44d861ffb03e9f4ull, {"b1:10901", "c1:10901", "a2:10901"}},
	    {0x8760341588b981afull, {"a1:10901", "c1:10901", "b1:10901"}},
	    {0xb4d261aca71794c8ull, {"a2:10901", "b2:10901", "c1:10901"}},
	    {0, {"b1:10901", "a1:10901", "c1:10901"}},
	    {0xffffffffffffffffull, {"b1:10901", "a1:10901", "c1:10901"}},
	};
	hashring_t *r;
	err_t err = {0};
	CHECK(hashring_new(HASHRING_KETAMA, addr, az, 5, 3, &r, &err) == 0);
	check_ring(r, v, ARRAY_LEN(v), 3);
	/* every hash: three replicas in three different AZs */
	for (uint64_t h = 1; h < 2000; h++) {
		uint64_t x = h * 0x9e3779b97f4a7c15ull;
		char seen[3] = {0};
		for (uint64_t k = 0; k < 3; k++) {
			size_t e;
			CHECK(hashring_get_n(r, x, k, &e, &err) == 0);
			char z = az[e][0];
			CHECK(!seen[z - 'a']);
			seen[z - 'a'] = 1;
		}
	}
	hashring_free(r);
	/* hashmod refuses AZs; ketama refuses RF > endpoints */
	CHECK(hashring_new(HASHRING_HASHMOD, addr, az, 5, 1, &r, &err) == ERR_INVALID);
	CHECK(strstr(err.msg, "AZ") != NULL);
	CHECK(hashring_new(HASHRING_KETAMA, addr, NULL, 2, 3, &r, &err) == ERR_INVALID);
}

TEST(ketama_moves_few_series_when_a_node_joins)
{
	static const char *three[] = {"r1:10901", "r2:10901", "r3:10901", "r4:10901"};
	hashring_t *a, *b, *ma, *mb;
	err_t err = {0};
	CHECK(hashring_new(HASHRING_KETAMA, three, NULL, 3, 1, &a, &err) == 0);
	CHECK(hashring_new(HASHRING_KETAMA, three, NULL, 4, 1, &b, &err) == 0);
	CHECK(hashring_new(HASHRING_HASHMOD, three, NULL, 3, 1, &ma, &err) == 0);
	CHECK(hashring_new(HASHRING_HASHMOD, three, NULL, 4, 1, &mb, &err) == 0);
	int moved = 0, moved_mod = 0, n = 20000;
	for (int i = 0; i < n; i++) {
		uint64_t h = XXH64(&i, sizeof i, 7);
		size_t x, y;
		CHECK(hashring_get_n(a, h, 0, &x, &err) == 0 && hashring_get_n(b, h, 0, &y, &err) == 0);
		moved += strcmp(hashring_address(a, x), hashring_address(b, y)) != 0;
		CHECK(hashring_get_n(ma, h, 0, &x, &err) == 0 && hashring_get_n(mb, h, 0, &y, &err) == 0);
		moved_mod += strcmp(hashring_address(ma, x), hashring_address(mb, y)) != 0;
	}
	printf("info: node joins 3 -> 4: ketama moved %.1f%%, hashmod moved %.1f%%\n", 100.0 * moved / n,
	       100.0 * moved_mod / n);
	CHECK(moved < n * 30 / 100);
	CHECK(moved_mod > n * 60 / 100);
	hashring_free(a);
	hashring_free(b);
	hashring_free(ma);
	hashring_free(mb);
}

static hashrings_t *parse(const char *json, err_t *err)
{
	hashrings_t *h = NULL;
	if (hashrings_parse(json, strlen(json), "test.json", HASHRING_HASHMOD, 1, &h, err) != 0)
		return NULL;
	return h;
}

TEST(file_tenants_and_defaults)
{
	err_t err = {0};
	hashrings_t *h =
	    parse("[{\"hashring\":\"glob\",\"tenants\":[\"team-*\"],\"tenant_matcher_type\":\"glob\","
	          "\"endpoints\":[\"g:1\"]},"
	          "{\"hashring\":\"exact\",\"tenants\":[\"team-x\",\"b\"],\"algorithm\":\"ketama\","
	          "\"external_labels\":{\"ring\":\"exact\",\"a\":\"b\"},"
	          "\"endpoints\":[{\"address\":\"e:1\",\"az\":\"z1\"},{\"address\":\"e:2\"}]},"
	          "{\"endpoints\":[\"d:2\",\"d:1\"],\"unknown_field\":1}]",
	          &err);
	if (!h)
		TEST_FAILF("%s", err.msg);
	CHECK_EQ_INT(hashrings_count(h), 3);
	CHECK(
	    !strcmp(hashring_name(hashrings_for_tenant(h, STR("team-x"), &err)), "exact")); /* exact first */
	CHECK(!strcmp(hashring_name(hashrings_for_tenant(h, STR("team-y"), &err)), "glob"));
	CHECK(!strcmp(hashring_name(hashrings_for_tenant(h, STR("b"), &err)), "exact"));
	const hashring_t *d = hashrings_for_tenant(h, STR("other"), &err);
	CHECK(d && !strcmp(hashring_name(d), "hashring-2"));
	CHECK(!strcmp(hashring_address(d, 0), "d:1")); /* hashmod sorts */
	const hashring_t *e = hashrings_for_tenant(h, STR("b"), &err);
	CHECK(hashring_algo(e) == HASHRING_KETAMA);
	const labels_t *ext = hashring_external_labels(e);
	CHECK_EQ_INT(ext->n, 2);
	CHECK(str_eq_c(ext->v[0].name, "a") && str_eq_c(ext->v[1].value, "exact"));
	CHECK(hashrings_has_endpoint(h, "e:2") && !hashrings_has_endpoint(h, "e:3"));
	CHECK_EQ_INT(hashrings_num_endpoints(h), 5);
	hashrings_free(h);
	/* no default ring: an unknown tenant has no ring */
	h = parse("[{\"tenants\":[\"a\"],\"endpoints\":[\"x:1\"]}]", &err);
	CHECK(h);
	CHECK(hashrings_for_tenant(h, STR("zz"), &err) == NULL);
	CHECK(strstr(err.msg, "no matching hashring") != NULL);
	hashrings_free(h);
}

TEST(file_errors)
{
	static const struct {
		const char *json, *want;
	} bad[] = {
	    {"{", "line 1"},
	    {"{}", "JSON array"},
	    {"[]", "no hashrings"},
	    {"[{\"endpoints\":[]}]", "no endpoints"},
	    {"[{\"endpoints\":[\"a:1\",\"a:1\"]}]", "twice"},
	    {"[{\"endpoints\":[{\"address\":\"a:1\",\"az\":\"z\"}]}]", "AZ"},
	    {"[{\"algorithm\":\"maglev\",\"endpoints\":[\"a:1\"]}]", "algorithm"},
	    {"[{\"algorithm\":\"ketama\",\"endpoints\":[\"a:1\"]}, 3]", "hashring 1"},
	    {"[{\"endpoints\":[\"a:1\"],\"tenant_matcher_type\":\"regex\"}]", "tenant_matcher_type"},
	    {"[{\"endpoints\":[\"a:1\"],\"shuffle_sharding_config\":{\"shard_size\":2}}]", "shuffle"},
	    {"[{\"endpoints\":[\"a:1\"],\"external_labels\":{\"0bad\":\"x\"}}]", "label name"},
	    {"[{\"endpoints\":[{\"az\":\"z\"}]}]", "no address"},
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		err_t err = {0};
		hashrings_t *h = parse(bad[i].json, &err);
		if (h) {
			hashrings_free(h);
			TEST_FAILF("%s: accepted", bad[i].json);
		}
		if (!strstr(err.msg, bad[i].want) || !strstr(err.msg, "test.json"))
			TEST_FAILF("%s: error %s does not name %s", bad[i].json, err.msg, bad[i].want);
	}
	/* ketama with RF above the endpoint count */
	hashrings_t *h = NULL;
	err_t err = {0};
	const char *j = "[{\"algorithm\":\"ketama\",\"endpoints\":[\"a:1\",\"b:1\"]}]";
	CHECK(hashrings_parse(j, strlen(j), "f", HASHRING_HASHMOD, 3, &h, &err) == ERR_INVALID);
	CHECK(strstr(err.msg, "replication factor") != NULL);
}

TEST_MAIN()
