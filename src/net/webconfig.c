/*
 * webconfig.c — the web configuration file: parsing (libyaml documents, so errors carry line and
 * column), reload, TLS contexts and bcrypt-checked basic auth with a result cache. See webconfig.h.
 */
#include "net/webconfig.h"

#include <crypt.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <yaml.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/workers.h"
#include "net/tls.h"

#define RELOAD_CHECK_MS 1000
#define CACHE_SLOTS     256
#define MAX_PENDING     256 /* distinct credentials waiting for a bcrypt; beyond: 503 */
/* Checked against when the user is unknown, so that costs as much as a wrong password. */
#define DUMMY_HASH "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi"

typedef struct kv {
	char *k, *v;
} kv_t;

/* One parsed file. */
typedef struct wconf {
	bool tls;
	tls_server_opts_t o; /* strings below */
	char *cert_file, *key_file, *ca_file, *cert, *key, *ca;
	char **sans;
	size_t nsans;
	buf_t ciphers, groups;
	char what[512]; /* "web config <path>", names the file in TLS errors */
	kv_t *users;
	size_t nusers;
	kv_t *headers;
	size_t nheaders;
} wconf_t;

typedef struct cache_slot {
	unsigned char key[32];
	bool used, ok;
} cache_slot_t;

struct webcfg {
	pthread_mutex_t mu;
	char *path;
	wconf_t *conf;
	tls_server_t *tls;
	bool tls_on;
	struct stat st;
	uint64_t next_check;
	cache_slot_t cache[CACHE_SLOTS];
	workers_t *bcrypt;        /* one thread: checks run one at a time */
	struct auth_job *pending; /* queued or running checks, one per distinct credential */
	size_t npending;
};

static void wconf_free(wconf_t *c)
{
	if (!c)
		return;
	char *s[] = {c->cert_file, c->key_file, c->ca_file, c->cert, c->key, c->ca};
	for (size_t i = 0; i < ARRAY_LEN(s); i++)
		free(s[i]);
	for (size_t i = 0; i < c->nsans; i++)
		free(c->sans[i]);
	free(c->sans);
	buf_release(&c->ciphers);
	buf_release(&c->groups);
	for (size_t i = 0; i < c->nusers; i++) {
		free(c->users[i].k);
		free(c->users[i].v);
	}
	free(c->users);
	for (size_t i = 0; i < c->nheaders; i++) {
		free(c->headers[i].k);
		free(c->headers[i].v);
	}
	free(c->headers);
	free(c);
}

/* ---- parsing ---- */

typedef struct parse {
	yaml_document_t *doc;
	const char *path;
	char *dir;
	err_t *err;
	wconf_t *c;
} parse_t;

static int at(parse_t *p, yaml_node_t *n, const char *fmt, const char *a, const char *b)
{
	char what[512];
	snprintf(what, sizeof what, fmt, a, b ? b : "");
	return err_set(p->err, ERR_INVALID, "web config %s:%lu:%lu: %s", p->path,
	               (unsigned long)n->start_mark.line + 1, (unsigned long)n->start_mark.column + 1, what);
}

static const char *scalar(yaml_node_t *n)
{
	return n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static bool is_null(yaml_node_t *n)
{
	const char *v = scalar(n);
	return v && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
	       (!*v || !strcmp(v, "~") || !strcmp(v, "null"));
}

static int get_str(parse_t *p, yaml_node_t *n, const char *key, char **out)
{
	free(*out);
	*out = NULL;
	if (is_null(n))
		return 0;
	if (!scalar(n))
		return at(p, n, "%s: want a string%s", key, NULL);
	*out = xstrdup(scalar(n));
	return 0;
}

/* A file name relative to the configuration file's directory. */
static int get_path(parse_t *p, yaml_node_t *n, const char *key, char **out)
{
	int rc = get_str(p, n, key, out);
	if (rc || !*out || !**out || (*out)[0] == '/')
		return rc;
	buf_t b = BUF_INIT;
	buf_printf(&b, "%s/%s", p->dir, *out);
	free(*out);
	size_t len;
	*out = buf_detach(&b, &len);
	return 0;
}

static int get_bool(parse_t *p, yaml_node_t *n, const char *key, bool *out)
{
	const char *v = scalar(n);
	if (v && !strcasecmp(v, "true"))
		*out = true;
	else if (v && (!strcasecmp(v, "false") || is_null(n)))
		*out = false;
	else
		return at(p, n, "%s: want true or false%s", key, NULL);
	return 0;
}

typedef int (*pair_fn)(parse_t *p, const char *key, yaml_node_t *k, yaml_node_t *v);

static int each_pair(parse_t *p, yaml_node_t *map, const char *what, pair_fn fn)
{
	if (is_null(map))
		return 0;
	if (map->type != YAML_MAPPING_NODE)
		return at(p, map, "%s: want a mapping%s", what, NULL);
	for (yaml_node_pair_t *pr = map->data.mapping.pairs.start; pr < map->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = yaml_document_get_node(p->doc, pr->key),
		            *v = yaml_document_get_node(p->doc, pr->value);
		if (!k || !v || !scalar(k))
			return at(p, map, "%s: keys must be strings%s", what, NULL);
		int rc = fn(p, scalar(k), k, v);
		if (rc)
			return rc;
	}
	return 0;
}

/* A sequence of strings; each goes to fn. */
static int each_item(parse_t *p, yaml_node_t *seq, const char *key, int (*fn)(parse_t *p, yaml_node_t *n))
{
	if (is_null(seq))
		return 0;
	if (seq->type != YAML_SEQUENCE_NODE)
		return at(p, seq, "%s: want a list%s", key, NULL);
	for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top; it++) {
		yaml_node_t *n = yaml_document_get_node(p->doc, *it);
		if (!n || !scalar(n))
			return at(p, n ? n : seq, "%s: want a list of strings%s", key, NULL);
		int rc = fn(p, n);
		if (rc)
			return rc;
	}
	return 0;
}

static int add_san(parse_t *p, yaml_node_t *n)
{
	p->c->sans = xreallocarray(p->c->sans, p->c->nsans + 1, sizeof *p->c->sans);
	p->c->sans[p->c->nsans++] = xstrdup(scalar(n));
	return 0;
}

static int add_cipher(parse_t *p, yaml_node_t *n)
{
	err_t e = {0};
	return tls_cipher_from_go(scalar(n), &p->c->ciphers, &e)
	           ? at(p, n, "cipher_suites: %s%s", e.msg, NULL)
	           : 0;
}

static int add_curve(parse_t *p, yaml_node_t *n)
{
	err_t e = {0};
	return tls_group_from_go(scalar(n), &p->c->groups, &e)
	           ? at(p, n, "curve_preferences: %s%s", e.msg, NULL)
	           : 0;
}

static int tls_pair(parse_t *p, const char *key, yaml_node_t *k, yaml_node_t *v)
{
	wconf_t *c = p->c;
	err_t e = {0};
	if (!strcmp(key, "cert_file"))
		return get_path(p, v, key, &c->cert_file);
	if (!strcmp(key, "key_file"))
		return get_path(p, v, key, &c->key_file);
	if (!strcmp(key, "client_ca_file"))
		return get_path(p, v, key, &c->ca_file);
	if (!strcmp(key, "cert"))
		return get_str(p, v, key, &c->cert);
	if (!strcmp(key, "key"))
		return get_str(p, v, key, &c->key);
	if (!strcmp(key, "client_ca"))
		return get_str(p, v, key, &c->ca);
	if (!strcmp(key, "client_auth_type")) {
		if (!scalar(v))
			return at(p, v, "%s: want a string%s", key, NULL);
		return tls_client_auth_parse(scalar(v), &c->o.client_auth, &e) ? at(p, v, "%s%s", e.msg, NULL)
		                                                               : 0;
	}
	if (!strcmp(key, "min_version") || !strcmp(key, "max_version")) {
		int *dst = key[1] == 'i' ? &c->o.min_version : &c->o.max_version;
		if (!scalar(v))
			return at(p, v, "%s: want a string%s", key, NULL);
		return tls_version_parse(scalar(v), dst, &e) ? at(p, v, "%s: %s", key, e.msg) : 0;
	}
	if (!strcmp(key, "client_allowed_sans"))
		return each_item(p, v, key, add_san);
	if (!strcmp(key, "cipher_suites"))
		return each_item(p, v, key, add_cipher);
	if (!strcmp(key, "curve_preferences"))
		return each_item(p, v, key, add_curve);
	if (!strcmp(key, "prefer_server_cipher_suites")) {
		bool b;
		return get_bool(p, v, key, &b); /* the server's order is always preferred */
	}
	return at(p, k, "unknown key \"%s\" in tls_server_config%s", key, NULL);
}

static int header_pair(parse_t *p, const char *key, yaml_node_t *k, yaml_node_t *v)
{
	static const char *allowed[] = {"Content-Security-Policy", "X-Frame-Options",
	                                "X-Content-Type-Options", "X-XSS-Protection",
	                                "Strict-Transport-Security"};
	size_t i;
	for (i = 0; i < ARRAY_LEN(allowed) && strcmp(key, allowed[i]); i++)
		;
	if (i == ARRAY_LEN(allowed))
		return at(p, k, "HTTP header \"%s\" can not be configured%s", key, NULL);
	const char *val = scalar(v);
	if (!val)
		return at(p, v, "%s: want a string%s", key, NULL);
	if (strpbrk(val, "\r\n"))
		return at(p, v, "%s: the value must be one line%s", key, NULL);
	if (!strcmp(key, "X-Frame-Options") && *val && strcasecmp(val, "deny") &&
	    strcasecmp(val, "sameorigin"))
		return at(p, v, "invalid X-Frame-Options HTTP header value \"%s\" (deny or sameorigin)%s",
		          val, NULL);
	if (!strcmp(key, "X-Content-Type-Options") && *val && strcasecmp(val, "nosniff"))
		return at(p, v, "invalid X-Content-Type-Options HTTP header value \"%s\" (nosniff)%s", val,
		          NULL);
	if (!*val)
		return 0; /* "Unset if blank" */
	wconf_t *c = p->c;
	c->headers = xreallocarray(c->headers, c->nheaders + 1, sizeof *c->headers);
	c->headers[c->nheaders++] = (kv_t){xstrdup(key), xstrdup(val)};
	return 0;
}

static int http_pair(parse_t *p, const char *key, yaml_node_t *k, yaml_node_t *v)
{
	if (!strcmp(key, "http2")) {
		bool b;
		return get_bool(p, v, key, &b); /* accepted; Strata serves HTTP/1.1 */
	}
	if (!strcmp(key, "headers"))
		return each_pair(p, v, "headers", header_pair);
	return at(p, k, "unknown key \"%s\" in http_server_config%s", key, NULL);
}

static int user_pair(parse_t *p, const char *key, yaml_node_t *k, yaml_node_t *v)
{
	const char *hash = scalar(v);
	if (!hash || !*hash)
		return at(p, v, "basic_auth_users: user \"%s\": want a bcrypt hash%s", key, NULL);
	if (strncmp(hash, "$2y$", 4) && strncmp(hash, "$2b$", 4) && strncmp(hash, "$2a$", 4))
		return at(p, v,
		          "basic_auth_users: user \"%s\": the password must be a bcrypt hash ($2y$...)%s",
		          key, NULL);
	wconf_t *c = p->c;
	c->users = xreallocarray(c->users, c->nusers + 1, sizeof *c->users);
	c->users[c->nusers++] = (kv_t){xstrdup(key), xstrdup(hash)};
	return 0;
}

static int top_pair(parse_t *p, const char *key, yaml_node_t *k, yaml_node_t *v)
{
	if (!strcmp(key, "tls_server_config"))
		return each_pair(p, v, key, tls_pair);
	if (!strcmp(key, "http_server_config"))
		return each_pair(p, v, key, http_pair);
	if (!strcmp(key, "basic_auth_users"))
		return each_pair(p, v, key, user_pair);
	return at(p, k, "unknown key \"%s\"%s", key, NULL);
}

static int parse_file(const char *path, wconf_t **out, struct stat *st, err_t *err)
{
	*out = NULL;
	FILE *f = fopen(path, "rb");
	if (!f)
		return err_errno(err, "web config %s", path);
	if (st && fstat(fileno(f), st) != 0)
		memset(st, 0, sizeof *st);
	yaml_parser_t yp;
	yaml_document_t doc;
	yaml_parser_initialize(&yp);
	yaml_parser_set_input_file(&yp, f);
	int ok = yaml_parser_load(&yp, &doc);
	fclose(f);
	if (!ok) {
		int rc =
		    err_set(err, ERR_INVALID, "web config %s:%lu:%lu: %s", path,
		            (unsigned long)yp.problem_mark.line + 1,
		            (unsigned long)yp.problem_mark.column + 1, yp.problem ? yp.problem : "bad YAML");
		yaml_parser_delete(&yp);
		return rc;
	}
	yaml_parser_delete(&yp);
	char *pathc = xstrdup(path);
	parse_t p = {.doc = &doc, .path = path, .dir = xstrdup(dirname(pathc)), .err = err};
	free(pathc);
	p.c = xcalloc(1, sizeof *p.c);
	buf_init(&p.c->ciphers);
	buf_init(&p.c->groups);
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	int rc = root ? each_pair(&p, root, "web config", top_pair) : 0;
	yaml_document_delete(&doc);
	free(p.dir);
	wconf_t *c = p.c;
	if (rc) {
		wconf_free(c);
		return rc;
	}
	if (c->cert_file && c->cert)
		rc = err_set(err, ERR_INVALID, "web config %s: both cert and cert_file are set", path);
	else if (c->key_file && c->key)
		rc = err_set(err, ERR_INVALID, "web config %s: both key and key_file are set", path);
	else if (c->ca_file && c->ca)
		rc = err_set(err, ERR_INVALID, "web config %s: both client_ca and client_ca_file are set",
		             path);
	if (rc) {
		wconf_free(c);
		return rc;
	}
	c->tls = c->cert_file || c->cert || c->key_file || c->key || c->ca_file || c->ca ||
	         c->o.client_auth != TLS_CLIENT_AUTH_NONE;
	c->o.cert_file = c->cert_file;
	c->o.key_file = c->key_file;
	c->o.client_ca_file = c->ca_file;
	c->o.cert_pem = c->cert;
	c->o.key_pem = c->key;
	c->o.client_ca_pem = c->ca;
	c->o.allowed_sans = (const char *const *)c->sans;
	c->o.nallowed_sans = c->nsans;
	c->o.ciphers = c->ciphers.n ? c->ciphers.p : NULL;
	c->o.groups = c->groups.n ? c->groups.p : NULL;
	snprintf(c->what, sizeof c->what, "web config %s", path);
	c->o.what = c->what;
	if (c->nsans && c->o.client_auth != TLS_CLIENT_AUTH_REQUIRE_ANY &&
	    c->o.client_auth != TLS_CLIENT_AUTH_REQUIRE_AND_VERIFY) {
		wconf_free(c);
		return err_set(
		    err, ERR_INVALID,
		    "web config %s: client_allowed_sans needs client_auth_type RequireAnyClientCert or "
		    "RequireAndVerifyClientCert",
		    path);
	}
	*out = c;
	return 0;
}

/* ---- the live configuration ---- */

int webcfg_new(webcfg_t **out, const char *path, err_t *err)
{
	*out = NULL;
	webcfg_t *w = xcalloc(1, sizeof *w);
	w->path = xstrdup(path);
	pthread_mutex_init(&w->mu, NULL);
	int rc = parse_file(path, &w->conf, &w->st, err);
	if (!rc && w->conf->tls)
		rc = tls_server_new(&w->tls, &w->conf->o, err);
	if (rc) {
		webcfg_free(w);
		return rc;
	}
	w->tls_on = w->conf->tls;
	w->bcrypt = workers_new(1);
	w->next_check = clock_mono_ms() + RELOAD_CHECK_MS;
	*out = w;
	return 0;
}

void webcfg_free(webcfg_t *w)
{
	if (!w)
		return;
	workers_free(w->bcrypt);
	tls_server_free(w->tls);
	wconf_free(w->conf);
	pthread_mutex_destroy(&w->mu);
	free(w->path);
	free(w);
}

bool webcfg_tls(const webcfg_t *w)
{
	return w->tls_on;
}

/* Under w->mu: re-read the file if it changed. */
static void maybe_reload(webcfg_t *w)
{
	uint64_t now = clock_mono_ms();
	if (now < w->next_check)
		return;
	w->next_check = now + RELOAD_CHECK_MS;
	struct stat st;
	if (stat(w->path, &st) != 0 ||
	    (st.st_ino == w->st.st_ino && st.st_dev == w->st.st_dev && st.st_size == w->st.st_size &&
	     st.st_mtim.tv_sec == w->st.st_mtim.tv_sec && st.st_mtim.tv_nsec == w->st.st_mtim.tv_nsec))
		return;
	err_t err = {0};
	wconf_t *c;
	tls_server_t *tls = NULL;
	int rc = parse_file(w->path, &c, &w->st, &err);
	if (!rc && w->tls_on && !c->tls)
		rc = err_set(&err, ERR_INVALID, "web config %s: TLS can not be turned off without a restart",
		             w->path);
	if (!rc && w->tls_on)
		rc = tls_server_new(&tls, &c->o, &err);
	if (rc) {
		wconf_free(c);
		log_warn("web config reload failed; keeping the previous one", "err", err.msg);
		return;
	}
	if (!w->tls_on && c->tls)
		log_warn("web config: TLS can not be turned on without a restart; serving plain HTTP", "file",
		         w->path);
	wconf_free(w->conf);
	w->conf = c;
	if (tls) {
		tls_server_free(w->tls);
		w->tls = tls;
	}
	memset(w->cache, 0, sizeof w->cache); /* users or hashes may have changed */
	log_info("web config reloaded", "file", w->path);
}

SSL *webcfg_new_ssl(void *arg)
{
	webcfg_t *w = arg;
	pthread_mutex_lock(&w->mu);
	maybe_reload(w);
	SSL *ssl = tls_server_new_ssl(w->tls);
	pthread_mutex_unlock(&w->mu);
	return ssl;
}

bool webcfg_auth_required(webcfg_t *w)
{
	pthread_mutex_lock(&w->mu);
	maybe_reload(w);
	bool r = w->conf->nusers > 0;
	pthread_mutex_unlock(&w->mu);
	return r;
}

void webcfg_append_headers(webcfg_t *w, buf_t *out)
{
	pthread_mutex_lock(&w->mu);
	for (size_t i = 0; i < w->conf->nheaders; i++)
		buf_printf(out, "%s: %s\r\n", w->conf->headers[i].k, w->conf->headers[i].v);
	pthread_mutex_unlock(&w->mu);
}

/* ---- basic auth ---- */

/* "Basic <base64(user:pass)>" -> user and password (heap, wiped by the caller). */
static bool decode_basic(str_t h, char *user, size_t usern, char **pass)
{
	while (h.n && (*h.p == ' ' || *h.p == '\t'))
		h.p++, h.n--;
	if (h.n < 6 || strncasecmp(h.p, "Basic ", 6) != 0)
		return false;
	h.p += 6, h.n -= 6;
	while (h.n && *h.p == ' ')
		h.p++, h.n--;
	while (h.n && (h.p[h.n - 1] == ' ' || h.p[h.n - 1] == '\t'))
		h.n--;
	if (h.n == 0 || h.n % 4 || h.n > 8192)
		return false;
	unsigned char *dec = xmalloc(h.n);
	int n = EVP_DecodeBlock(dec, (const unsigned char *)h.p, (int)h.n);
	if (n < 0) {
		free(dec);
		return false;
	}
	/* EVP_DecodeBlock counts padding as zero bytes */
	if (h.p[h.n - 1] == '=')
		n--;
	if (h.p[h.n - 2] == '=')
		n--;
	unsigned char *colon = memchr(dec, ':', (size_t)n);
	bool ok = colon && (size_t)(colon - dec) < usern && !memchr(dec, 0, (size_t)n);
	if (ok) {
		size_t ul = (size_t)(colon - dec);
		memcpy(user, dec, ul);
		user[ul] = 0;
		*pass = xstrndup((const char *)colon + 1, (size_t)n - ul - 1);
	}
	OPENSSL_cleanse(dec, h.n);
	free(dec);
	return ok;
}

static void cache_key(const char *user, const char *hash, const char *pass, unsigned char key[32])
{
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	if (!m)
		die("webcfg: out of memory");
	EVP_DigestInit_ex(m, EVP_sha256(), NULL);
	EVP_DigestUpdate(m, user, strlen(user) + 1);
	EVP_DigestUpdate(m, hash, strlen(hash) + 1);
	EVP_DigestUpdate(m, pass, strlen(pass));
	unsigned int n = 32;
	EVP_DigestFinal_ex(m, key, &n);
	EVP_MD_CTX_free(m);
}

int webcfg_auth_begin(webcfg_t *w, const str_t *authorization, webcfg_auth_t *a)
{
	memset(a, 0, sizeof *a);
	if (!authorization || !decode_basic(*authorization, a->user, sizeof a->user, &a->pass))
		return WEBCFG_AUTH_DENIED;
	pthread_mutex_lock(&w->mu);
	maybe_reload(w);
	const char *hash = DUMMY_HASH;
	for (size_t i = 0; i < w->conf->nusers; i++)
		if (!strcmp(w->conf->users[i].k, a->user)) {
			hash = w->conf->users[i].v;
			a->known_user = true;
		}
	a->hash = xstrdup(hash);
	cache_key(a->user, a->hash, a->pass, a->key);
	cache_slot_t *s = &w->cache[a->key[0]];
	int rc = WEBCFG_AUTH_PENDING;
	if (s->used && CRYPTO_memcmp(s->key, a->key, sizeof a->key) == 0)
		rc = s->ok && a->known_user ? WEBCFG_AUTH_OK : WEBCFG_AUTH_DENIED;
	pthread_mutex_unlock(&w->mu);
	return rc;
}

/* One bcrypt for every request carrying the same credentials (a client opening many connections at
 * once costs one check, not one per connection). */
typedef struct auth_waiter {
	webcfg_auth_t *a;
	void (*done)(void *arg);
	void *arg;
	struct auth_waiter *next;
} auth_waiter_t;

typedef struct auth_job {
	webcfg_t *w;
	webcfg_auth_t *a; /* the first waiter's: user, hash and password */
	auth_waiter_t *waiters;
	struct auth_job *next;
} auth_job_t;

static void auth_main(void *arg)
{
	auth_job_t *j = arg;
	webcfg_t *w = j->w;
	webcfg_auth_t *a = j->a;
	struct crypt_data *cd = xcalloc(1, sizeof *cd);
	const char *out = crypt_r(a->pass, a->hash, cd);
	size_t hl = strlen(a->hash);
	bool match = out && out[0] != '*' && strlen(out) == hl && CRYPTO_memcmp(out, a->hash, hl) == 0;
	OPENSSL_cleanse(cd, sizeof *cd);
	free(cd);
	pthread_mutex_lock(&w->mu);
	cache_slot_t *s = &w->cache[a->key[0]];
	memcpy(s->key, a->key, sizeof s->key);
	s->used = true;
	s->ok = match;
	for (auth_job_t **pp = &w->pending; *pp; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	w->npending--;
	auth_waiter_t *ws = j->waiters;
	pthread_mutex_unlock(&w->mu);
	free(j);
	while (ws) {
		auth_waiter_t *next = ws->next;
		ws->a->ok = match && ws->a->known_user;
		ws->done(ws->arg);
		free(ws);
		ws = next;
	}
}

int webcfg_auth_run(webcfg_t *w, webcfg_auth_t *a, void (*done)(void *arg), void *arg)
{
	auth_waiter_t *wt = xmalloc(sizeof *wt);
	*wt = (auth_waiter_t){a, done, arg, NULL};
	pthread_mutex_lock(&w->mu);
	auth_job_t *j = w->pending;
	while (j && CRYPTO_memcmp(j->a->key, a->key, sizeof a->key) != 0)
		j = j->next;
	if (j) {
		wt->next = j->waiters;
		j->waiters = wt;
		pthread_mutex_unlock(&w->mu);
		return 0;
	}
	if (w->npending >= MAX_PENDING) {
		pthread_mutex_unlock(&w->mu);
		free(wt);
		return ERR_LIMIT;
	}
	j = xmalloc(sizeof *j);
	*j = (auth_job_t){w, a, wt, w->pending};
	w->pending = j;
	w->npending++;
	pthread_mutex_unlock(&w->mu);
	workers_submit(w->bcrypt, auth_main, j);
	return 0;
}

void webcfg_auth_release(webcfg_auth_t *a)
{
	if (a->pass) {
		OPENSSL_cleanse(a->pass, strlen(a->pass));
		free(a->pass);
	}
	free(a->hash);
	a->pass = a->hash = NULL;
}
