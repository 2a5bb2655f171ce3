/* webconfig_test.c — the web configuration file: errors with their position, basic auth (bcrypt on
 * the module's thread, cache, one check for many identical requests), headers. TLS is tls_http.py's. */
#include <crypt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "net/webconfig.h"
#include "test.h"

static char dir[64];

static const char *write_file(const char *name, const char *text)
{
	static char path[128];
	if (!dir[0]) {
		snprintf(dir, sizeof dir, "/tmp/strata-webconfig-test.XXXXXX");
		if (!mkdtemp(dir))
			abort();
	}
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	return path;
}

static const char *hash_of(const char *pass)
{
	static char out[128];
	char salt[64];
	crypt_gensalt_rn("$2y$", 4, NULL, 0, salt, sizeof salt);
	struct crypt_data cd = {0};
	snprintf(out, sizeof out, "%s", crypt_r(pass, salt, &cd));
	return out;
}

static str_t basic(const char *user_pass, char *buf)
{
	strcpy(buf, "Basic ");
	EVP_EncodeBlock((unsigned char *)buf + 6, (const unsigned char *)user_pass, (int)strlen(user_pass));
	return str_c(buf);
}

static void expect_error(const char *text, const char *want)
{
	webcfg_t *w = NULL;
	err_t err = {0};
	const char *p = write_file("bad.yml", text);
	CHECK(webcfg_new(&w, p, &err) == ERR_INVALID);
	CHECK(w == NULL);
	if (!strstr(err.msg, want))
		TEST_FAILF("error %s does not name %s", err.msg, want);
}

TEST(errors_name_the_place)
{
	expect_error("tls_server_config:\n  cert_file: a\n  client_auth_type: Sometimes\n", "bad.yml:3:21");
	expect_error("tls_server_config:\n  nope: 1\n", "unknown key \"nope\"");
	expect_error("basic_auth_users:\n  bob: plain\n", "bcrypt");
	expect_error("tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: /nonexistent.key\n",
	             "/nonexistent.crt");
	expect_error("tls_server_config: [", "bad.yml");
}

static atomic_int ndone;

static void done(void *arg)
{
	(void)arg;
	atomic_fetch_add(&ndone, 1);
}

/* Runs a check to its end: the cached answer, or a bcrypt on the module's thread. */
static int check(webcfg_t *w, const char *user_pass)
{
	char buf[256];
	str_t h = basic(user_pass ? user_pass : "", buf);
	webcfg_auth_t a;
	int rc = webcfg_auth_begin(w, user_pass ? &h : NULL, &a);
	if (rc == WEBCFG_AUTH_PENDING) {
		int before = atomic_load(&ndone);
		if (webcfg_auth_run(w, &a, done, NULL))
			abort();
		while (atomic_load(&ndone) == before)
			usleep(1000);
		rc = a.ok ? WEBCFG_AUTH_OK : WEBCFG_AUTH_DENIED;
	}
	webcfg_auth_release(&a);
	return rc;
}

TEST(basic_auth)
{
	char text[512];
	snprintf(
	    text, sizeof text,
	    "basic_auth_users:\n  alice: %s\nhttp_server_config:\n  headers:\n    X-Frame-Options: deny\n",
	    hash_of("right"));
	webcfg_t *w;
	err_t err = {0};
	CHECK(webcfg_new(&w, write_file("auth.yml", text), &err) == 0);
	CHECK(!webcfg_tls(w));
	CHECK(webcfg_auth_required(w));
	CHECK_EQ_INT(check(w, NULL), WEBCFG_AUTH_DENIED);
	CHECK_EQ_INT(check(w, "alice:right"), WEBCFG_AUTH_OK);
	CHECK_EQ_INT(check(w, "alice:wrong"), WEBCFG_AUTH_DENIED);
	CHECK_EQ_INT(check(w, "mallory:right"), WEBCFG_AUTH_DENIED);
	CHECK_EQ_INT(check(w, "alice"), WEBCFG_AUTH_DENIED); /* no colon */
	/* answered from the cache now, without a bcrypt */
	char buf[256];
	str_t h = basic("alice:right", buf);
	webcfg_auth_t a;
	CHECK_EQ_INT(webcfg_auth_begin(w, &h, &a), WEBCFG_AUTH_OK);
	webcfg_auth_release(&a);
	buf_t hdr = BUF_INIT;
	webcfg_append_headers(w, &hdr);
	CHECK(hdr.n && strstr(hdr.p, "X-Frame-Options: deny\r\n") != NULL);
	buf_release(&hdr);
	webcfg_free(w);
}

TEST(identical_checks_share_one_bcrypt)
{
	char text[256];
	snprintf(text, sizeof text, "basic_auth_users:\n  bob: %s\n", hash_of("pw"));
	webcfg_t *w;
	err_t err = {0};
	CHECK(webcfg_new(&w, write_file("auth2.yml", text), &err) == 0);
	enum { N = 800 }; /* well over the limit (256) on distinct pending checks */
	static webcfg_auth_t as[N];
	char buf[256];
	atomic_store(&ndone, 0);
	int pending = 0;
	for (int i = 0; i < N; i++) {
		str_t h = basic("bob:pw", buf);
		int rc = webcfg_auth_begin(w, &h, &as[i]);
		if (rc == WEBCFG_AUTH_OK) { /* the shared check has finished meanwhile */
			as[i].ok = true;
			continue;
		}
		CHECK_EQ_INT(rc, WEBCFG_AUTH_PENDING);
		CHECK_EQ_INT(webcfg_auth_run(w, &as[i], done, NULL), 0);
		pending++;
	}
	while (atomic_load(&ndone) < pending)
		usleep(1000);
	for (int i = 0; i < N; i++) {
		CHECK(as[i].ok);
		webcfg_auth_release(&as[i]);
	}
	/* distinct wrong passwords beyond the limit are refused at once */
	atomic_store(&ndone, 0);
	int queued = 0, refused = 0;
	for (int i = 0; i < N; i++) {
		char up[64];
		snprintf(up, sizeof up, "bob:guess%d", i);
		str_t h = basic(up, buf);
		CHECK_EQ_INT(webcfg_auth_begin(w, &h, &as[i]), WEBCFG_AUTH_PENDING);
		if (webcfg_auth_run(w, &as[i], done, NULL) == 0)
			queued++;
		else {
			refused++;
			webcfg_auth_release(&as[i]);
			as[i].user[0] = 0;
		}
	}
	CHECK(refused > 0);
	while (atomic_load(&ndone) < queued)
		usleep(1000);
	for (int i = 0; i < N; i++)
		if (as[i].user[0]) {
			CHECK(!as[i].ok);
			webcfg_auth_release(&as[i]);
		}
	webcfg_free(w);
}

TEST_MAIN()
