/*
 * objstore_bench — the Strata side of the object storage benchmark (issue 5). bench/objstore_bench.sh
 * starts the S3 test server, runs the curl baselines and calls this program for the Strata side; run
 * alone (no S3_ENDPOINT in the environment) it says so and exits 0, as bench/run runs every program.
 *
 *   objstore_bench offsets OBJECT_SIZE COUNT LEN SEED
 *       prints COUNT offsets of LEN-byte pieces inside the object, one a line (deterministic in SEED), so
 *       curl and Strata read exactly the same ranges.
 *   objstore_bench ranges OBJECT OFFSETS_FILE LEN PARALLEL
 *       reads every listed range with one bucket_get_ranges call (at most PARALLEL in flight, as curl
 *       --parallel-max gets them all at once), checks each piece's length, and prints
 *       "requests N seconds S bytes B".
 *   objstore_bench upload FILE OBJECT
 *       bucket_upload of FILE (multipart above part_size), prints "seconds S bytes B".
 *
 * The bucket is S3 from S3_ENDPOINT / S3_BUCKET / S3_REGION / S3_ACCESS_KEY / S3_SECRET_KEY (as printed
 * by start-s3); OBJSTORE_BENCH_PART_SIZE (bytes) overrides part_size.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/str.h"
#include "objstore/config.h"

static const char *env_or(const char *k, const char *def)
{
	const char *v = getenv(k);
	return v && *v ? v : def;
}

static bucket_t *open_bucket(void)
{
	const char *ep = env_or("S3_ENDPOINT", "");
	if (!strncmp(ep, "http://", 7))
		ep += 7;
	buf_t y = BUF_INIT;
	buf_printf(&y,
		   "type: S3\nconfig:\n  bucket: %s\n  endpoint: %s\n  region: %s\n  access_key: %s\n"
		   "  secret_key: %s\n  insecure: true\n",
		   env_or("S3_BUCKET", "strata"), ep, env_or("S3_REGION", "us-east-1"), env_or("S3_ACCESS_KEY", ""),
		   env_or("S3_SECRET_KEY", ""));
	const char *ps = getenv("OBJSTORE_BENCH_PART_SIZE");
	if (ps && *ps)
		buf_printf(&y, "  part_size: %s\n", ps);
	bucket_t *b = NULL;
	err_t err = {0};
	if (objstore_from_config(y.p, y.n, &b, &err)) {
		fprintf(stderr, "objstore_bench: %s\n", err.msg);
		exit(1);
	}
	buf_release(&y);
	return b;
}

static long long num(const char *s, const char *what)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end || v < 0) {
		fprintf(stderr, "objstore_bench: bad %s \"%s\"\n", what, s);
		exit(2);
	}
	return v;
}

static int cmd_offsets(long long size, long long count, long long len, long long seed)
{
	if (size < len || len <= 0) {
		fprintf(stderr, "objstore_bench: object of %lld bytes has no room for %lld-byte pieces\n", size, len);
		return 2;
	}
	uint64_t s = (uint64_t)seed * 0x9e3779b97f4a7c15ull + 1;
	for (long long i = 0; i < count; i++) {
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		printf("%llu\n", (unsigned long long)(s % (uint64_t)(size - len + 1)));
	}
	return 0;
}

static int cmd_ranges(const char *object, const char *offsets_file, long long len, long long parallel)
{
	FILE *f = fopen(offsets_file, "r");
	if (!f) {
		fprintf(stderr, "objstore_bench: %s: %s\n", offsets_file, strerror(errno));
		return 1;
	}
	size_t n = 0, cap = 1024;
	int64_t *offs = xcalloc(cap, sizeof(*offs));
	long long o;
	while (fscanf(f, "%lld", &o) == 1) {
		if (n == cap) {
			offs = xrealloc(offs, cap * 2 * sizeof(*offs));
			cap *= 2;
		}
		offs[n++] = o;
	}
	fclose(f);

	bucket_t *b = open_bucket();
	size_t batch = n ? n : 1;
	bucket_range_t *r = xcalloc(batch, sizeof(*r));
	char *mem = xcalloc(batch, (size_t)len);
	int64_t bytes = 0;
	int rc = 0;
	uint64_t t0 = clock_mono_ns();
	for (size_t i = 0; i < n && !rc; i += batch) {
		size_t k = n - i < batch ? n - i : batch;
		for (size_t j = 0; j < k; j++)
			r[j] = (bucket_range_t){.name = object, .off = offs[i + j], .len = len, .dst = mem + j * len};
		err_t err = {0};
		rc = bucket_get_ranges(b, r, k, (int)parallel, &err);
		if (rc) {
			fprintf(stderr, "objstore_bench: %s\n", err.msg);
			break;
		}
		for (size_t j = 0; j < k; j++) {
			if (r[j].got != len) {
				fprintf(stderr, "objstore_bench: %s at %lld: got %lld of %lld bytes\n", object,
					(long long)r[j].off, (long long)r[j].got, len);
				rc = 1;
			}
			bytes += r[j].got;
		}
	}
	double secs = clock_since_s(t0);
	if (!rc)
		printf("requests %zu seconds %.4f bytes %lld\n", n, secs, (long long)bytes);
	free(mem);
	free(r);
	free(offs);
	bucket_free(b);
	return rc ? 1 : 0;
}

static int cmd_upload(const char *file, const char *object)
{
	bucket_t *b = open_bucket();
	err_t err = {0};
	uint64_t t0 = clock_mono_ns();
	int rc = bucket_upload(b, object, file, &err);
	double secs = clock_since_s(t0);
	if (rc) {
		fprintf(stderr, "objstore_bench: %s\n", err.msg);
	} else {
		bucket_attrs_t a;
		rc = bucket_attributes(b, object, &a, &err);
		if (rc)
			fprintf(stderr, "objstore_bench: %s\n", err.msg);
		else
			printf("seconds %.4f bytes %lld\n", secs, (long long)a.size);
	}
	bucket_free(b);
	return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc == 1) {
		if (!getenv("S3_ENDPOINT")) {
			printf("objstore_bench: helper of bench/objstore_bench.sh (needs the S3 test server); "
			       "nothing to do on its own\n");
			return 0;
		}
	}
	if (argc == 6 && !strcmp(argv[1], "offsets"))
		return cmd_offsets(num(argv[2], "size"), num(argv[3], "count"), num(argv[4], "length"),
				   num(argv[5], "seed"));
	if (argc == 6 && !strcmp(argv[1], "ranges"))
		return cmd_ranges(argv[2], argv[3], num(argv[4], "length"), num(argv[5], "parallelism"));
	if (argc == 4 && !strcmp(argv[1], "upload"))
		return cmd_upload(argv[2], argv[3]);
	fprintf(stderr, "usage: objstore_bench offsets SIZE COUNT LEN SEED | ranges OBJECT OFFSETS LEN PARALLEL | "
			"upload FILE OBJECT\n");
	return 2;
}
