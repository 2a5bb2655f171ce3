/*
 * objstore_config_test.c — YAML config parsing, S3 XML helpers and FILESYSTEM specifics.
 */
#include "test.h"

#include <sys/stat.h>
#include <unistd.h>

#include "objstore/bucket.h"
#include "objstore/config.h"
#include "objstore/s3.h"
#include "objstore/s3xml.h"

static int load(const char *yaml, bucket_t **b, err_t *err)
{
	*b = NULL;
	return objstore_from_config(yaml, strlen(yaml), b, err);
}

TEST(filesystem_config_and_prefix)
{
	char dir[] = "/tmp/objstore-cfg-XXXXXX";
	CHECK(mkdtemp(dir));
	char yaml[512];
	snprintf(yaml, sizeof yaml, "type: filesystem\nconfig:\n  directory: %s/b\nprefix: /tenant-a/\n", dir);
	bucket_t *b;
	err_t err = {0};
	CHECK_EQ_INT(load(yaml, &b, &err), 0);
	CHECK_STR(bucket_type(b), "FILESYSTEM");
	CHECK_EQ_INT(bucket_put(b, "x/obj", "hi", 2, &err), 0);
	char path[600];
	snprintf(path, sizeof path, "%s/b/tenant-a/x/obj", dir);
	struct stat st;
	CHECK(stat(path, &st) == 0 && st.st_size == 2);
	CHECK_EQ_INT(bucket_delete(b, "x/obj", &err), 0);
	bucket_free(b);
	snprintf(path, sizeof path, "rm -rf %s", dir);
	CHECK(system(path) == 0);
}

static int collect(void *arg, const char *name)
{
	buf_t *b = arg;
	buf_puts(b, name);
	buf_putc(b, ';');
	return 0;
}

TEST(filesystem_hides_temp_files_and_cleans_dirs)
{
	char dir[] = "/tmp/objstore-fs-XXXXXX";
	CHECK(mkdtemp(dir));
	char yaml[256];
	snprintf(yaml, sizeof yaml, "type: FILESYSTEM\nconfig: {directory: %s}\nprefix: p", dir);
	bucket_t *b;
	err_t err = {0};
	CHECK_EQ_INT(load(yaml, &b, &err), 0);
	CHECK_EQ_INT(bucket_put(b, "a/b/c", "1", 1, &err), 0);
	CHECK_EQ_INT(bucket_put(b, "a/d", "2", 1, &err), 0);
	char tmp[600];
	snprintf(tmp, sizeof tmp, "%s/p/a/.d.strata-tmp-1-2", dir); /* a crashed writer's leftover */
	FILE *f = fopen(tmp, "w");
	CHECK(f);
	fclose(f);
	buf_t l = BUF_INIT;
	CHECK_EQ_INT(bucket_iter(b, "a", 0, collect, &l, &err), 0);
	int ok1 = strcmp(l.p, "a/b/;a/d;") == 0;
	buf_reset(&l);
	CHECK_EQ_INT(bucket_iter(b, "", BUCKET_ITER_RECURSIVE, collect, &l, &err), 0);
	int ok2 = strcmp(l.p, "a/b/c;a/d;") == 0;
	buf_release(&l);
	CHECK(ok1);
	CHECK(ok2);
	CHECK_EQ_INT(bucket_delete(b, "a/b/c", &err), 0);
	snprintf(tmp, sizeof tmp, "%s/p/a/b", dir);
	struct stat st;
	CHECK(stat(tmp, &st) != 0); /* emptied directory removed */
	bucket_free(b);
	snprintf(tmp, sizeof tmp, "rm -rf %s", dir);
	CHECK(system(tmp) == 0);
}

TEST(unknown_keys_rejected_with_position)
{
	bucket_t *b;
	err_t err = {0};
	CHECK_EQ_INT(load("type: S3\nconfig:\n  bucket: x\n  endpoint: e:1\n  bogus_key: 1\n", &b, &err), ERR_INVALID);
	CHECK(strstr(err.msg, ":5:3:") && strstr(err.msg, "bogus_key"));
	CHECK_EQ_INT(load("type: FILESYSTEM\nconfig: {directory: /tmp/x}\nextra: 1\n", &b, &err), ERR_INVALID);
	CHECK(strstr(err.msg, ":3:1:") && strstr(err.msg, "extra"));
	CHECK_EQ_INT(load("type: S3\nconfig:\n  bucket: x\n  http_config:\n    tls_config:\n      nope: 1\n", &b, &err),
		     ERR_INVALID);
	CHECK(strstr(err.msg, ":6:7:") && strstr(err.msg, "nope"));
	CHECK_EQ_INT(load("type: GCS\nconfig: {}\n", &b, &err), ERR_INVALID);
	CHECK(strstr(err.msg, "GCS"));
	CHECK_EQ_INT(load("type: [S3\n", &b, &err), ERR_INVALID);
	CHECK_EQ_INT(load("config: {}\n", &b, &err), ERR_INVALID);
	CHECK(strstr(err.msg, "type"));
}

TEST(s3_config_validation)
{
	bucket_t *b;
	err_t err = {0};
	CHECK_EQ_INT(load("type: S3\nconfig: {bucket: b, endpoint: 'h:1', access_key: a, secret_key: TOPSECRET,\n"
			  "  signature_version2: true}\n", &b, &err),
		     ERR_INVALID);
	CHECK(strstr(err.msg, "signature_version2") && strstr(err.msg, ":3:23:"));
	CHECK(!strstr(err.msg, "TOPSECRET"));
	CHECK_EQ_INT(load("type: S3\nconfig: {bucket: b, endpoint: 'h:1', access_key: a, secret_key: TOPSECRET,\n"
			  "  insecure: maybe}\n", &b, &err),
		     ERR_INVALID);
	CHECK(strstr(err.msg, "insecure") && !strstr(err.msg, "TOPSECRET"));
	CHECK_EQ_INT(load("type: S3\nconfig: {bucket: b, endpoint: 'h:1', access_key: a, secret_key: s, part_size: 1000}",
			  &b, &err),
		     ERR_INVALID);
	CHECK(strstr(err.msg, "part_size"));
	CHECK_EQ_INT(load("type: S3\nconfig: {bucket: b, endpoint: 'h:1', access_key: a, secret_key: s,\n"
			  "  part_size: 6442450944}", &b, &err),
		     ERR_INVALID);
	CHECK(strstr(err.msg, "part_size 6442450944 is above S3's maximum of 5 GiB"));
	CHECK_EQ_INT(load("type: S3\nconfig: {bucket: b, endpoint: 'h:1', access_key: a, secret_key: s,\n"
			  "  sse_config: {type: SSE-C}}", &b, &err),
		     ERR_INVALID);
	CHECK(strstr(err.msg, "SSE-C"));
	CHECK_EQ_INT(load("type: S3\nconfig: {bucket: b, endpoint: 'h:1', access_key: a, secret_key: s,\n"
			  "  bucket_lookup_type: sideways}", &b, &err),
		     ERR_INVALID);
	CHECK(strstr(err.msg, "bucket_lookup_type"));
	CHECK_EQ_INT(load("type: S3\nconfig: {endpoint: 'h:1', access_key: a, secret_key: s}", &b, &err), ERR_INVALID);
	CHECK(strstr(err.msg, "bucket"));
	/* A full Thanos-style config is accepted. */
	const char *full = "type: S3\n"
			   "config:\n"
			   "  bucket: thanos\n"
			   "  endpoint: s3.eu-west-1.amazonaws.com\n"
			   "  region: eu-west-1\n"
			   "  access_key: AK\n"
			   "  secret_key: SK\n"
			   "  insecure: false\n"
			   "  signature_version2: false\n"
			   "  put_user_metadata: {}\n"
			   "  http_config:\n"
			   "    idle_conn_timeout: 1m30s\n"
			   "    response_header_timeout: 2m\n"
			   "    insecure_skip_verify: false\n"
			   "    tls_handshake_timeout: 10s\n"
			   "    expect_continue_timeout: 1s\n"
			   "    max_idle_conns: 100\n"
			   "    max_idle_conns_per_host: 100\n"
			   "    max_conns_per_host: 0\n"
			   "    tls_config:\n"
			   "      ca_file: ''\n"
			   "      insecure_skip_verify: false\n"
			   "  trace:\n"
			   "    enable: false\n"
			   "  list_objects_version: v1\n"
			   "  bucket_lookup_type: auto\n"
			   "  send_content_md5: true\n"
			   "  part_size: 67108864\n"
			   "  max_retries: 5\n"
			   "  sse_config:\n"
			   "    type: SSE-S3\n"
			   "prefix: ''\n";
	CHECK_EQ_INT(load(full, &b, &err), 0);
	CHECK_STR(bucket_type(b), "S3");
	CHECK_STR(bucket_name(b), "thanos");
	bucket_free(b);
}

TEST(s3_env_credentials)
{
	bucket_t *b;
	err_t err = {0};
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	CHECK_EQ_INT(load("type: S3\nconfig: {bucket: b, endpoint: 'h:1'}", &b, &err), ERR_INVALID);
	CHECK(strstr(err.msg, "credentials"));
	setenv("AWS_ACCESS_KEY_ID", "envkey", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
	setenv("AWS_REGION", "eu-central-1", 1);
	CHECK_EQ_INT(load("type: S3\nconfig: {bucket: b, endpoint: 'h:1'}", &b, &err), 0);
	bucket_free(b);
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	unsetenv("AWS_REGION");
}

TEST(config_file_and_flags)
{
	bucket_t *b;
	err_t err = {0};
	CHECK_EQ_INT(objstore_from_flags(NULL, NULL, &b, &err), ERR_INVALID);
	CHECK_EQ_INT(objstore_from_config_file("/nonexistent/objstore.yml", &b, &err), ERR_NOT_FOUND);
	CHECK(strstr(err.msg, "/nonexistent/objstore.yml"));
	char path[] = "/tmp/objstore-cfgfile-XXXXXX";
	int fd = mkstemp(path);
	CHECK(fd >= 0);
	const char *y = "type: FILESYSTEM\nconfig:\n  directory: /tmp/objstore-cfgfile-dir\n  wrong: 1\n";
	CHECK(write(fd, y, strlen(y)) == (ssize_t)strlen(y));
	close(fd);
	int rc = objstore_from_flags("", path, &b, &err);
	unlink(path);
	CHECK_EQ_INT(rc, ERR_INVALID);
	CHECK(strstr(err.msg, path) && strstr(err.msg, ":4:3:"));
}

TEST(xml_helpers)
{
	const char *doc = "<?xml version=\"1.0\"?><ListBucketResult xmlns=\"x\"><Prefix>p/</Prefix><KeyCount>2</KeyCount>"
			  "<Contents><Key>p/a&amp;b&#233;&#x41;</Key><Size>3</Size></Contents>"
			  "<Contents><Key>p/&lt;c&gt;</Key></Contents><CommonPrefixes><Prefix>p/d/</Prefix></CommonPrefixes>"
			  "<IsTruncated>true</IsTruncated><NextContinuationToken/></ListBucketResult>";
	str_t d = str_c(doc), blk, in;
	size_t pos = 0;
	buf_t b = BUF_INIT;
	CHECK(s3xml_next(d, &pos, "Contents", &blk));
	size_t p2 = 0;
	CHECK(s3xml_next(blk, &p2, "Key", &in));
	CHECK(s3xml_decode(in, &b));
	int ok1 = strcmp(b.p, "p/a&b\xc3\xa9" "A") == 0;
	buf_reset(&b);
	CHECK(s3xml_next(d, &pos, "Contents", &blk));
	CHECK(!s3xml_next(d, &pos, "Contents", &blk));
	CHECK(s3xml_get(d, "KeyCount", &b));
	int ok2 = strcmp(b.p, "2") == 0;
	buf_reset(&b);
	CHECK(s3xml_get(d, "NextContinuationToken", &b));
	int ok3 = b.n == 0;
	CHECK(!s3xml_get(d, "Missing", &b));
	CHECK(!s3xml_get(str_c("<Key>unterminated"), "Key", &b));
	buf_reset(&b);
	CHECK(!s3xml_decode(str_c("bad &bogus; &#xZZ; &"), &b));
	buf_reset(&b);
	s3xml_escape(&b, "\"a<&>'");
	int ok4 = strcmp(b.p, "&quot;a&lt;&amp;&gt;&apos;") == 0;
	buf_release(&b);
	CHECK(ok1);
	CHECK(ok2);
	CHECK(ok3);
	CHECK(ok4);
}

TEST(s3_requests_counter_is_zero_for_fs)
{
	char dir[] = "/tmp/objstore-cnt-XXXXXX";
	CHECK(mkdtemp(dir));
	char yaml[256];
	snprintf(yaml, sizeof yaml, "type: FILESYSTEM\nconfig: {directory: %s}", dir);
	bucket_t *b;
	err_t err = {0};
	CHECK_EQ_INT(load(yaml, &b, &err), 0);
	CHECK_EQ_U64(s3_bucket_requests(b), 0);
	bucket_free(b);
	rmdir(dir);
}

TEST_MAIN()
