/*
 * memcache.c — memcached text-protocol client: server list + jump hash, per-server idle pools,
 * poll()-multiplexed multi-gets, background sets (see memcache.h).
 */
#include "net/memcache.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/duration.h"
#include "base/flags.h"
#include "base/hmap.h"
#include "base/log.h"
#include "base/metrics.h"

#define MC_MAX_VALUE   ((size_t)1 << 30) /* a VALUE bigger than this is a protocol error */
#define MC_MAX_LINE    2048              /* a reply line without CRLF this long is garbage */
#define MC_MAX_SETTERS 64
#define MC_30_DAYS     2592000

/* ================================ config ================================ */

void memcache_config_init(memcache_config_t *c, const char *name)
{
	*c = (memcache_config_t){.name = xstrdup(name ? name : ""),
	                         .timeout_ms = 500,
	                         .max_idle_connections = 100,
	                         .max_async_concurrency = 10,
	                         .max_async_buffer_size = 10000,
	                         .max_get_multi_concurrency = 100,
	                         .max_get_multi_batch_size = 0,
	                         .max_item_size = (size_t)1 << 20,
	                         .dns_update_interval_ms = 10000};
}

void memcache_config_release(memcache_config_t *c)
{
	for (size_t i = 0; i < c->naddresses; i++)
		free(c->addresses[i]);
	free(c->addresses);
	free(c->name);
	c->addresses = NULL;
	c->naddresses = 0;
	c->name = NULL;
}

void memcache_config_add_address(memcache_config_t *c, const char *addr)
{
	c->addresses = xrealloc(c->addresses, st_mult(c->naddresses + 1, sizeof *c->addresses));
	c->addresses[c->naddresses++] = xstrdup(addr);
}

static int set_int(int *dst, const char *key, const char *v, int64_t min, err_t *err)
{
	int64_t n;
	if (!str_to_i64(str_c(v), &n) || n < min || n > (1 << 30))
		return err_set(err, ERR_INVALID, "%s: invalid value \"%s\" (an integer >= %lld)", key, v,
		               (long long)min);
	*dst = (int)n;
	return 0;
}

static int set_duration(int64_t *dst, const char *key, const char *v, err_t *err)
{
	int64_t ms;
	err_t e2 = {0};
	if (duration_parse(str_c(v), &ms, &e2) || ms < 0)
		return err_set(err, ERR_INVALID, "%s: invalid duration \"%s\"", key, v);
	*dst = ms;
	return 0;
}

int memcache_config_set(memcache_config_t *c, const char *key, const char *v, err_t *err)
{
	if (strcmp(key, "timeout") == 0)
		return set_duration(&c->timeout_ms, key, v, err);
	if (strcmp(key, "dns_provider_update_interval") == 0)
		return set_duration(&c->dns_update_interval_ms, key, v, err);
	if (strcmp(key, "max_idle_connections") == 0)
		return set_int(&c->max_idle_connections, key, v, 0, err);
	if (strcmp(key, "max_async_concurrency") == 0)
		return set_int(&c->max_async_concurrency, key, v, 1, err);
	if (strcmp(key, "max_async_buffer_size") == 0)
		return set_int(&c->max_async_buffer_size, key, v, 1, err);
	if (strcmp(key, "max_get_multi_concurrency") == 0)
		return set_int(&c->max_get_multi_concurrency, key, v, 0, err);
	if (strcmp(key, "max_get_multi_batch_size") == 0)
		return set_int(&c->max_get_multi_batch_size, key, v, 0, err);
	if (strcmp(key, "max_item_size") == 0) {
		int64_t n;
		err_t e2 = {0};
		if (bytes_parse(v, &n, &e2) || n < 0)
			return err_set(err, ERR_INVALID, "%s: invalid size \"%s\"", key, v);
		c->max_item_size = (size_t)n;
		return 0;
	}
	if (strcmp(key, "auto_discovery") == 0) {
		if (strcmp(v, "false") == 0)
			return 0;
		return err_set(err, ERR_INVALID,
		               "%s: only false is supported (memcached auto discovery is not implemented)",
		               key);
	}
	return err_set(err, ERR_NOT_FOUND, "unknown key: %s", key);
}

/* ================================ servers ================================ */

typedef struct mc_server {
	char addr[96]; /* "ip:port" / "[ip6]:port" */
	struct sockaddr_storage sa;
	socklen_t salen;
	pthread_mutex_t mu; /* idle pool */
	int *idle;
	size_t nidle;
	bool retired; /* no longer in the list (DNS changed); its sockets are closed when returned */
} mc_server_t;

typedef struct mc_set {
	struct mc_set *next;
	size_t klen, vlen;
	int64_t exptime;
	char data[]; /* key then value */
} mc_set_t;

struct memcache {
	memcache_config_t cfg;
	pthread_mutex_t mu; /* servers, all */
	mc_server_t **servers;
	size_t nservers;
	mc_server_t **all; /* every server ever created; freed by memcache_free */
	size_t nall;
	bool has_dns, dns_started;
	pthread_t dns_thread;
	pthread_cond_t dns_cv;
	/* async sets */
	pthread_mutex_t qmu;
	pthread_cond_t qcv, qidle;
	mc_set_t *qhead, *qtail;
	size_t qlen;
	int busy;
	bool stop;
	pthread_t *setters;
	int nsetters;
	/* metrics */
	metric_child_t *ops_get, *ops_set, *dur_get, *dur_set, *skip_size, *skip_full;
	metric_t *m_fail;
};

enum { OPN_GET, OPN_SET };
/* ---- YAML (Thanos's memcached client config) ---- */

static const char *yaml_scalar(yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int yaml_at(err_t *err, const char *what, yaml_node_t *n, const char *msg, const char *key)
{
	return err_set(err, ERR_INVALID, "%s:%zu:%zu: %s%s%s", what, n ? n->start_mark.line + 1 : 1,
	               n ? n->start_mark.column + 1 : 1, msg, key ? ": " : "", key ? key : "");
}

static const char *const breaker_keys[] = {"enabled",      "half_open_max_requests", "open_duration",
                                           "min_requests", "consecutive_failures",   "failure_percent"};

int memcache_config_parse_yaml(yaml_document_t *doc, yaml_node_t *cfg, const char *what,
                               const char *const *skip, memcache_config_t *mc, err_t *err)
{
	int rc = 0;
	for (yaml_node_pair_t *pr = cfg->data.mapping.pairs.start; pr < cfg->data.mapping.pairs.top && !rc;
	     pr++) {
		yaml_node_t *k = yaml_document_get_node(doc, pr->key),
		            *v = yaml_document_get_node(doc, pr->value);
		const char *ks = yaml_scalar(k), *vs = yaml_scalar(v);
		bool skipped = false;
		for (size_t i = 0; ks && skip && skip[i]; i++)
			skipped |= strcmp(ks, skip[i]) == 0;
		if (skipped)
			continue;
		if (!ks) {
			rc = yaml_at(err, what, k, "expected a key", NULL);
		} else if (strcmp(ks, "addresses") == 0) {
			if (v->type != YAML_SEQUENCE_NODE)
				rc = yaml_at(err, what, v, "addresses must be a list of host:port", NULL);
			for (yaml_node_item_t *it = rc ? NULL : v->data.sequence.items.start;
			     it && it < v->data.sequence.items.top && !rc; it++) {
				yaml_node_t *a = yaml_document_get_node(doc, *it);
				if (!yaml_scalar(a) || !*yaml_scalar(a))
					rc = yaml_at(err, what, a, "addresses: expected host:port", NULL);
				else
					memcache_config_add_address(mc, yaml_scalar(a));
			}
		} else if (strcmp(ks, "set_async_circuit_breaker_config") == 0) {
			if (v->type != YAML_MAPPING_NODE) {
				rc = yaml_at(err, what, v,
				             "set_async_circuit_breaker_config must be a mapping", NULL);
				break;
			}
			for (yaml_node_pair_t *bp = v->data.mapping.pairs.start;
			     bp < v->data.mapping.pairs.top && !rc; bp++) {
				yaml_node_t *bk = yaml_document_get_node(doc, bp->key),
				            *bv = yaml_document_get_node(doc, bp->value);
				const char *bks = yaml_scalar(bk);
				bool known = false;
				for (size_t i = 0; bks && i < ARRAY_LEN(breaker_keys); i++)
					known |= strcmp(bks, breaker_keys[i]) == 0;
				if (!known)
					rc = yaml_at(err, what, bk, "unknown key", bks ? bks : "?");
				else if (strcmp(bks, "enabled") == 0 &&
				         (!yaml_scalar(bv) || strcmp(yaml_scalar(bv), "false") != 0))
					rc = yaml_at(err, what, bv,
					             "set_async_circuit_breaker_config: only enabled: false "
					             "is supported",
					             NULL);
			}
		} else if (!vs) {
			rc = yaml_at(err, what, v, "expected a scalar value for", ks);
		} else {
			err_t e2 = {0};
			int r = memcache_config_set(mc, ks, vs, &e2);
			if (r == ERR_NOT_FOUND)
				rc = yaml_at(err, what, k, "unknown key", ks);
			else if (r)
				rc = yaml_at(err, what, v, e2.msg, NULL);
		}
	}
	if (!rc && !mc->naddresses)
		rc = yaml_at(err, what, cfg, "MEMCACHED: addresses must list at least one host:port", NULL);
	return rc;
}

static const char *const op_names[] = {"getmulti", "set"};

static void count_failure(memcache_t *m, int op, const char *reason)
{
	metric_inc(metric_with(m->m_fail, m->cfg.name, op_names[op], reason));
}

/* Split "host:port" ("[v6]:port") into host and port (copied into h/p). */
static bool split_hostport(const char *s, char *h, size_t hn, char *p, size_t pn)
{
	const char *colon = strrchr(s, ':');
	if (!colon || !colon[1] || colon == s)
		return false;
	const char *hs = s, *he = colon;
	if (*hs == '[') {
		if (he[-1] != ']')
			return false;
		hs++, he--;
	}
	if ((size_t)(he - hs) >= hn || strlen(colon + 1) >= pn || he == hs)
		return false;
	memcpy(h, hs, (size_t)(he - hs));
	h[he - hs] = '\0';
	strcpy(p, colon + 1);
	return true;
}

typedef struct resolved {
	char addr[96];
	struct sockaddr_storage sa;
	socklen_t salen;
} resolved_t;

/* Resolve one configured address; all = every address (dns+), else the first. Appends to *out. */
static int resolve_one(const char *spec, bool all, resolved_t **out, size_t *n, err_t *err)
{
	char host[256], port[32];
	if (!split_hostport(spec, host, sizeof host, port, sizeof port))
		return err_set(err, ERR_INVALID, "memcached address \"%s\": want host:port", spec);
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
	int rc = getaddrinfo(host, port, &hints, &res);
	if (rc)
		return err_set(err, ERR_INVALID, "memcached address \"%s\": %s", spec, gai_strerror(rc));
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		char ip[INET6_ADDRSTRLEN + 1], sv[16];
		if (ai->ai_addrlen > sizeof(struct sockaddr_storage) ||
		    getnameinfo(ai->ai_addr, ai->ai_addrlen, ip, sizeof ip, sv, sizeof sv,
		                NI_NUMERICHOST | NI_NUMERICSERV))
			continue;
		*out = xrealloc(*out, st_mult(*n + 1, sizeof **out));
		resolved_t *r = &(*out)[(*n)++];
		memset(r, 0, sizeof *r);
		snprintf(r->addr, sizeof r->addr, ai->ai_family == AF_INET6 ? "[%s]:%s" : "%s:%s", ip, sv);
		memcpy(&r->sa, ai->ai_addr, ai->ai_addrlen);
		r->salen = (socklen_t)ai->ai_addrlen;
		if (!all)
			break;
	}
	freeaddrinfo(res);
	return 0;
}

static int cmp_resolved(const void *a, const void *b)
{
	return strcmp(((const resolved_t *)a)->addr, ((const resolved_t *)b)->addr);
}

static void close_idle(mc_server_t *s)
{
	for (size_t i = 0; i < s->nidle; i++)
		close(s->idle[i]);
	s->nidle = 0;
}

/* Resolve every address and install the sorted, de-duplicated list. initial: plain addresses must
 * resolve (else error); later failures keep the previous list. */
static int refresh_servers(memcache_t *m, bool initial, err_t *err)
{
	resolved_t *rs = NULL;
	size_t nr = 0;
	for (size_t i = 0; i < m->cfg.naddresses; i++) {
		const char *a = m->cfg.addresses[i];
		bool dns = strncmp(a, "dns+", 4) == 0;
		err_t e2 = {0};
		if (resolve_one(dns ? a + 4 : a, dns, &rs, &nr, &e2)) {
			if (initial && !dns) {
				free(rs);
				return err_set(err, e2.code, "%s", e2.msg);
			}
			if (!initial) {
				log_warn(
				    "memcached: address resolution failed; keeping the previous server list",
				    "name", m->cfg.name, "err", e2.msg);
				free(rs);
				return 0;
			}
			log_warn("memcached: address does not resolve yet", "name", m->cfg.name, "err",
			         e2.msg);
		}
	}
	if (nr)
		qsort(rs, nr, sizeof *rs, cmp_resolved);
	mc_server_t **list = xcalloc(nr + 1, sizeof *list);
	size_t nl = 0;
	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < nr; i++) {
		if (i && strcmp(rs[i].addr, rs[i - 1].addr) == 0)
			continue;
		mc_server_t *s = NULL;
		for (size_t j = 0; j < m->nall && !s; j++)
			if (strcmp(m->all[j]->addr, rs[i].addr) == 0)
				s = m->all[j];
		if (!s) {
			s = xcalloc(1, sizeof *s);
			memcpy(s->addr, rs[i].addr, sizeof s->addr);
			s->sa = rs[i].sa;
			s->salen = rs[i].salen;
			s->idle = xcalloc((size_t)m->cfg.max_idle_connections + 1, sizeof *s->idle);
			pthread_mutex_init(&s->mu, NULL);
			m->all = xrealloc(m->all, st_mult(m->nall + 1, sizeof *m->all));
			m->all[m->nall++] = s;
		}
		list[nl++] = s;
	}
	for (size_t j = 0; j < m->nall; j++) {
		mc_server_t *s = m->all[j];
		bool in = false;
		for (size_t i = 0; i < nl && !in; i++)
			in = list[i] == s;
		pthread_mutex_lock(&s->mu);
		s->retired = !in;
		if (!in)
			close_idle(s);
		pthread_mutex_unlock(&s->mu);
	}
	free(m->servers);
	m->servers = list;
	m->nservers = nl;
	pthread_mutex_unlock(&m->mu);
	free(rs);
	return 0;
}

static void *dns_main(void *arg)
{
	memcache_t *m = arg;
	pthread_mutex_lock(&m->qmu);
	while (!m->stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		int64_t iv = m->cfg.dns_update_interval_ms > 0 ? m->cfg.dns_update_interval_ms : 10000;
		ts.tv_sec += iv / 1000;
		ts.tv_nsec += (iv % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000)
			ts.tv_sec++, ts.tv_nsec -= 1000000000;
		pthread_cond_timedwait(&m->dns_cv, &m->qmu, &ts);
		if (m->stop)
			break;
		pthread_mutex_unlock(&m->qmu);
		err_t err = {0};
		refresh_servers(m, false, &err);
		pthread_mutex_lock(&m->qmu);
	}
	pthread_mutex_unlock(&m->qmu);
	return NULL;
}

int memcache_jump_hash(uint64_t key, int nbuckets)
{
	int64_t b = -1, j = 0;
	while (j < nbuckets) {
		b = j;
		key = key * 2862933555777941757ULL + 1;
		j = (int64_t)((double)(b + 1) * ((double)(1LL << 31) / (double)((key >> 33) + 1)));
	}
	return (int)b;
}

size_t memcache_servers(memcache_t *m)
{
	pthread_mutex_lock(&m->mu);
	size_t n = m->nservers;
	pthread_mutex_unlock(&m->mu);
	return n;
}

static bool key_ok(str_t k)
{
	if (k.n == 0 || k.n > MEMCACHE_MAX_KEY)
		return false;
	for (size_t i = 0; i < k.n; i++) {
		unsigned char ch = (unsigned char)k.p[i];
		if (ch <= ' ' || ch == 0x7f)
			return false;
	}
	return true;
}

/* ================================ one exchange ================================ */

enum { ST_CONNECTING, ST_WRITING, ST_READING, ST_DONE, ST_FAILED };

typedef struct mc_op {
	mc_server_t *srv;
	int fd;
	int state;
	int kind; /* OPN_GET / OPN_SET */
	const char *reason;
	buf_t out, in;
	size_t out_off, in_off;
	uint64_t t0_ns, deadline_ms;
	/* get */
	const size_t *idx; /* key indices of this batch */
	size_t nidx, next_match;
} mc_op_t;

typedef struct get_ctx {
	const str_t *keys;
	str_t *vals;
	bool *found;
	arena_t *a;
	size_t hits;
} get_ctx_t;

static void op_fail(mc_op_t *op, const char *reason)
{
	op->state = ST_FAILED;
	op->reason = reason;
}

static void op_start(memcache_t *m, mc_op_t *op)
{
	op->t0_ns = clock_mono_ns();
	op->deadline_ms = clock_mono_ms() + (uint64_t)(m->cfg.timeout_ms > 0 ? m->cfg.timeout_ms : 500);
	op->fd = -1;
	mc_server_t *s = op->srv;
	pthread_mutex_lock(&s->mu);
	if (s->nidle)
		op->fd = s->idle[--s->nidle];
	pthread_mutex_unlock(&s->mu);
	if (op->fd >= 0) {
		op->state = ST_WRITING;
		return;
	}
	int fd = socket(s->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return op_fail(op, "network-error");
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	op->fd = fd;
	if (connect(fd, (const struct sockaddr *)&s->sa, s->salen) == 0)
		op->state = ST_WRITING;
	else if (errno == EINPROGRESS)
		op->state = ST_CONNECTING;
	else
		op_fail(op, "network-error");
}

/* Give the socket back to the pool (success) or close it. */
static void op_finish(memcache_t *m, mc_op_t *op)
{
	if (op->fd < 0)
		return;
	mc_server_t *s = op->srv;
	bool kept = false;
	if (op->state == ST_DONE && op->in_off == op->in.n) {
		pthread_mutex_lock(&s->mu);
		if (!s->retired && s->nidle < (size_t)m->cfg.max_idle_connections) {
			s->idle[s->nidle++] = op->fd;
			kept = true;
		}
		pthread_mutex_unlock(&s->mu);
	}
	if (!kept)
		close(op->fd);
	op->fd = -1;
}

/* Next reply line [in_off, crlf); 1 = got one, 0 = need more, -1 = garbage. */
static int next_line(mc_op_t *op, str_t *line, size_t *after)
{
	const char *p = op->in.p + op->in_off;
	size_t avail = op->in.n - op->in_off;
	const char *e = avail ? memchr(p, '\n', avail) : NULL;
	if (!e)
		return avail > MC_MAX_LINE ? -1 : 0;
	if (e == p || e[-1] != '\r')
		return -1;
	*line = str_from(p, (size_t)(e - 1 - p));
	*after = op->in_off + (size_t)(e - p) + 1;
	return 1;
}

static bool line_is(str_t l, const char *s)
{
	return str_eq_c(l, s);
}

static bool line_starts(str_t l, const char *s)
{
	return str_has_prefix(l, str_c(s));
}

/* Parse as much of a get reply as is buffered. */
static void parse_get(memcache_t *m, mc_op_t *op, get_ctx_t *g)
{
	(void)m;
	for (;;) {
		str_t line;
		size_t after;
		int r = next_line(op, &line, &after);
		if (r == 0)
			return;
		if (r < 0)
			return op_fail(op, "other");
		if (line_is(line, "END")) {
			op->in_off = after;
			op->state = ST_DONE;
			return;
		}
		if (!line_starts(line, "VALUE ")) {
			bool srv = line_is(line, "ERROR") || line_starts(line, "CLIENT_ERROR") ||
			           line_starts(line, "SERVER_ERROR");
			return op_fail(op, srv ? "server-error" : "other");
		}
		/* VALUE <key> <flags> <bytes> [<cas>] */
		str_t rest = str_sub(line, 6, line.n), key, f, b, cas;
		if (!str_split2(rest, ' ', &key, &rest) || !str_split2(rest, ' ', &f, &rest))
			return op_fail(op, "other");
		if (!str_split2(rest, ' ', &b, &cas))
			b = rest;
		uint64_t flags, nb;
		if (!str_to_u64(f, &flags) || !str_to_u64(b, &nb) || nb > MC_MAX_VALUE)
			return op_fail(op, "other");
		size_t need = after + (size_t)nb + 2;
		if (op->in.n < need)
			return; /* wait for the whole value */
		if (op->in.p[need - 2] != '\r' || op->in.p[need - 1] != '\n')
			return op_fail(op, "other");
		size_t hit = SIZE_MAX;
		for (size_t pass = 0; pass < 2 && hit == SIZE_MAX; pass++)
			for (size_t j = pass ? 0 : op->next_match; j < (pass ? op->next_match : op->nidx);
			     j++)
				if (str_eq(g->keys[op->idx[j]], key) && !g->found[op->idx[j]]) {
					hit = j;
					break;
				}
		if (hit == SIZE_MAX)
			return op_fail(op, "other"); /* a key we did not ask for */
		size_t ki = op->idx[hit];
		char *v = arena_alloc(g->a, (size_t)nb + 1);
		memcpy(v, op->in.p + after, (size_t)nb);
		v[nb] = '\0';
		g->vals[ki] = str_from(v, (size_t)nb);
		g->found[ki] = true;
		g->hits++;
		op->next_match = hit + 1;
		op->in_off = need;
	}
}

static void parse_set(mc_op_t *op)
{
	str_t line;
	size_t after;
	int r = next_line(op, &line, &after);
	if (r == 0)
		return;
	if (r < 0)
		return op_fail(op, "other");
	op->in_off = after;
	if (line_is(line, "STORED"))
		op->state = ST_DONE;
	else if (line_is(line, "ERROR") || line_starts(line, "CLIENT_ERROR") ||
	         line_starts(line, "SERVER_ERROR") || line_is(line, "NOT_STORED"))
		op_fail(op, "server-error");
	else
		op_fail(op, "other");
}

static void op_io(memcache_t *m, mc_op_t *op, short rev, get_ctx_t *g)
{
	if (op->state == ST_CONNECTING) {
		int e = 0;
		socklen_t el = sizeof e;
		if (getsockopt(op->fd, SOL_SOCKET, SO_ERROR, &e, &el) || e)
			return op_fail(op, "network-error");
		if (!(rev & (POLLOUT | POLLERR | POLLHUP)))
			return;
		op->state = ST_WRITING;
	}
	if (op->state == ST_WRITING) {
		while (op->out_off < op->out.n) {
			ssize_t w =
			    send(op->fd, op->out.p + op->out_off, op->out.n - op->out_off, MSG_NOSIGNAL);
			if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				return;
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				return op_fail(op, "network-error");
			op->out_off += (size_t)w;
		}
		op->state = ST_READING;
		return; /* the reply comes later; poll for POLLIN */
	}
	if (op->state != ST_READING)
		return;
	for (;;) {
		buf_reserve(&op->in, 65536);
		ssize_t r = recv(op->fd, op->in.p + op->in.n, op->in.cap - op->in.n - 1, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (r <= 0)
			return op_fail(op, "network-error"); /* reset or EOF before the reply ended */
		op->in.n += (size_t)r;
		if (op->kind == OPN_GET)
			parse_get(m, op, g);
		else
			parse_set(op);
		if (op->state != ST_READING)
			return;
		if (op->in_off > 65536 && op->in_off * 2 > op->in.n) { /* drop consumed bytes */
			memmove(op->in.p, op->in.p + op->in_off, op->in.n - op->in_off);
			op->in.n -= op->in_off;
			op->in_off = 0;
		}
	}
}

static void op_end(memcache_t *m, mc_op_t *op)
{
	metric_observe(op->kind == OPN_GET ? m->dur_get : m->dur_set, clock_since_s(op->t0_ns));
	if (op->state == ST_FAILED)
		count_failure(m, op->kind, op->reason);
	op_finish(m, op);
}

/* Run ops with at most conc (0 = all) in flight; each bounded by the timeout from its start. */
static void run_ops(memcache_t *m, mc_op_t *ops, size_t n, size_t conc, get_ctx_t *g)
{
	if (!conc || conc > n)
		conc = n;
	size_t *act = xcalloc(conc + 1, sizeof *act);
	struct pollfd *pfd = xcalloc(conc + 1, sizeof *pfd);
	size_t nact = 0, next = 0;
	while (next < n || nact) {
		while (next < n && nact < conc) {
			mc_op_t *op = &ops[next];
			metric_inc(op->kind == OPN_GET ? m->ops_get : m->ops_set);
			op_start(m, op);
			if (op->state == ST_FAILED)
				op_end(m, op);
			else
				act[nact++] = next;
			next++;
		}
		if (!nact)
			continue;
		uint64_t now = clock_mono_ms(), first = UINT64_MAX;
		for (size_t i = 0; i < nact; i++) {
			mc_op_t *op = &ops[act[i]];
			if (op->deadline_ms < first)
				first = op->deadline_ms;
			pfd[i] = (struct pollfd){
			    .fd = op->fd, .events = (short)(op->state == ST_READING ? POLLIN : POLLOUT)};
		}
		int tmo = first <= now ? 0 : (int)(first - now > 60000 ? 60000 : first - now);
		int pr = poll(pfd, nact, tmo);
		if (pr < 0 && errno != EINTR)
			die("memcache: poll: %s", strerror(errno));
		now = clock_mono_ms();
		size_t keep = 0;
		for (size_t i = 0; i < nact; i++) {
			mc_op_t *op = &ops[act[i]];
			if (pr > 0 && pfd[i].revents)
				op_io(m, op, pfd[i].revents, g);
			if ((op->state == ST_READING || op->state == ST_WRITING ||
			     op->state == ST_CONNECTING) &&
			    now >= op->deadline_ms)
				op_fail(op, "timeout");
			if (op->state == ST_DONE || op->state == ST_FAILED)
				op_end(m, op);
			else
				act[keep++] = act[i];
		}
		nact = keep;
	}
	free(act);
	free(pfd);
}

static void op_release(mc_op_t *op)
{
	buf_release(&op->out);
	buf_release(&op->in);
}

/* ================================ gets ================================ */

/* A snapshot of the server list (servers live until memcache_free). */
static mc_server_t **snapshot(memcache_t *m, size_t *n)
{
	pthread_mutex_lock(&m->mu);
	*n = m->nservers;
	mc_server_t **s = xcalloc(*n + 1, sizeof *s);
	if (*n)
		memcpy(s, m->servers, *n * sizeof *s);
	pthread_mutex_unlock(&m->mu);
	return s;
}

size_t memcache_get_multi(memcache_t *m, const str_t *keys, size_t n, arena_t *a, str_t *vals, bool *found)
{
	for (size_t i = 0; i < n; i++) {
		found[i] = false;
		vals[i] = STR_NULL;
	}
	size_t ns;
	mc_server_t **srv = snapshot(m, &ns);
	if (!n || !ns) {
		free(srv);
		return 0;
	}
	/* keys grouped by server (counting sort), in request order within a server */
	int *which = xcalloc(n, sizeof *which);
	size_t *cnt = xcalloc(ns + 1, sizeof *cnt), *order = xcalloc(n, sizeof *order);
	for (size_t i = 0; i < n; i++) {
		if (!key_ok(keys[i])) {
			which[i] = -1;
			count_failure(m, OPN_GET, "malformed-key");
			continue;
		}
		which[i] = memcache_jump_hash(hash_bytes(keys[i].p, keys[i].n), (int)ns);
		cnt[which[i] + 1]++;
	}
	for (size_t s = 1; s <= ns; s++)
		cnt[s] += cnt[s - 1];
	size_t nvalid = cnt[ns];
	size_t *pos = xcalloc(ns + 1, sizeof *pos);
	memcpy(pos, cnt, (ns + 1) * sizeof *pos);
	for (size_t i = 0; i < n; i++)
		if (which[i] >= 0)
			order[pos[which[i]]++] = i;
	size_t bs = m->cfg.max_get_multi_batch_size > 0 ? (size_t)m->cfg.max_get_multi_batch_size : n;
	size_t nops = 0;
	mc_op_t *ops = xcalloc(nvalid + 1, sizeof *ops);
	for (size_t s = 0; s < ns; s++) {
		for (size_t b = cnt[s]; b < cnt[s + 1]; b += bs) {
			mc_op_t *op = &ops[nops++];
			*op = (mc_op_t){.srv = srv[s],
			                .kind = OPN_GET,
			                .idx = order + b,
			                .nidx = cnt[s + 1] - b < bs ? cnt[s + 1] - b : bs,
			                .out = BUF_INIT,
			                .in = BUF_INIT};
			buf_puts(&op->out, "get");
			for (size_t j = 0; j < op->nidx; j++) {
				buf_putc(&op->out, ' ');
				buf_append_str(&op->out, keys[op->idx[j]]);
			}
			buf_puts(&op->out, "\r\n");
		}
	}
	get_ctx_t g = {.keys = keys, .vals = vals, .found = found, .a = a};
	run_ops(m, ops, nops,
	        m->cfg.max_get_multi_concurrency > 0 ? (size_t)m->cfg.max_get_multi_concurrency : 0, &g);
	for (size_t i = 0; i < nops; i++)
		op_release(&ops[i]);
	free(ops);
	free(pos);
	free(order);
	free(cnt);
	free(which);
	free(srv);
	return g.hits;
}

/* ================================ sets ================================ */

static int do_set(memcache_t *m, str_t key, const void *val, size_t n, int64_t exptime, err_t *err)
{
	size_t ns;
	mc_server_t **srv = snapshot(m, &ns);
	if (!ns) {
		free(srv);
		count_failure(m, OPN_SET, "network-error");
		return err_set(err, ERR_UNAVAILABLE, "memcached: no server to send a set to");
	}
	if (exptime > MC_30_DAYS)
		exptime += clock_now_ms() / 1000; /* memcached reads a larger exptime as a Unix time */
	mc_op_t op = {.srv = srv[memcache_jump_hash(hash_bytes(key.p, key.n), (int)ns)],
	              .kind = OPN_SET,
	              .out = BUF_INIT,
	              .in = BUF_INIT};
	buf_puts(&op.out, "set ");
	buf_append_str(&op.out, key);
	buf_printf(&op.out, " 0 %lld %zu\r\n", (long long)(exptime < 0 ? 0 : exptime), n);
	buf_append(&op.out, val, n);
	buf_puts(&op.out, "\r\n");
	run_ops(m, &op, 1, 1, NULL);
	int rc = 0;
	if (op.state != ST_DONE) {
		int code = strcmp(op.reason, "timeout") == 0         ? ERR_TIMEOUT
		           : strcmp(op.reason, "network-error") == 0 ? ERR_UNAVAILABLE
		                                                     : ERR_CORRUPT;
		rc = err_set(err, code, "memcached %s: set %.*s: %s", op.srv->addr, (int)key.n, key.p,
		             op.reason);
	}
	op_release(&op);
	free(srv);
	return rc;
}

static int set_check(memcache_t *m, str_t key, size_t n, err_t *err)
{
	if (!key_ok(key)) {
		count_failure(m, OPN_SET, "malformed-key");
		return err_set(err, ERR_INVALID,
		               "memcached: invalid key (1..%d bytes, no spaces or control characters)",
		               MEMCACHE_MAX_KEY);
	}
	if (m->cfg.max_item_size && n > m->cfg.max_item_size) {
		metric_inc(m->skip_size);
		return err_set(err, ERR_INVALID, "memcached: item of %zu bytes is over max_item_size %zu", n,
		               m->cfg.max_item_size);
	}
	return 0;
}

int memcache_set(memcache_t *m, str_t key, const void *val, size_t n, int64_t exptime_s, err_t *err)
{
	int rc = set_check(m, key, n, err);
	return rc ? rc : do_set(m, key, val, n, exptime_s, err);
}

bool memcache_set_async(memcache_t *m, str_t key, const void *val, size_t n, int64_t exptime_s)
{
	err_t err = {0};
	if (set_check(m, key, n, &err))
		return false;
	pthread_mutex_lock(&m->qmu);
	if (m->stop || m->qlen >= (size_t)m->cfg.max_async_buffer_size) {
		pthread_mutex_unlock(&m->qmu);
		metric_inc(m->skip_full);
		return false;
	}
	pthread_mutex_unlock(&m->qmu);
	mc_set_t *s = xmalloc(st_add(sizeof *s, st_add(key.n, n)));
	s->next = NULL;
	s->klen = key.n;
	s->vlen = n;
	s->exptime = exptime_s;
	memcpy(s->data, key.p, key.n);
	if (n)
		memcpy(s->data + key.n, val, n);
	pthread_mutex_lock(&m->qmu);
	if (m->stop || m->qlen >= (size_t)m->cfg.max_async_buffer_size) { /* filled up meanwhile */
		pthread_mutex_unlock(&m->qmu);
		free(s);
		metric_inc(m->skip_full);
		return false;
	}
	if (m->qtail)
		m->qtail->next = s;
	else
		m->qhead = s;
	m->qtail = s;
	m->qlen++;
	pthread_cond_signal(&m->qcv);
	pthread_mutex_unlock(&m->qmu);
	return true;
}

static void *setter_main(void *arg)
{
	memcache_t *m = arg;
	pthread_mutex_lock(&m->qmu);
	for (;;) {
		while (!m->stop && !m->qhead)
			pthread_cond_wait(&m->qcv, &m->qmu);
		if (m->stop)
			break;
		mc_set_t *s = m->qhead;
		m->qhead = s->next;
		if (!m->qhead)
			m->qtail = NULL;
		m->qlen--;
		m->busy++;
		pthread_mutex_unlock(&m->qmu);
		err_t err = {0};
		do_set(m, str_from(s->data, s->klen), s->data + s->klen, s->vlen, s->exptime, &err);
		free(s);
		pthread_mutex_lock(&m->qmu);
		m->busy--;
		if (!m->qhead && !m->busy)
			pthread_cond_broadcast(&m->qidle);
	}
	pthread_mutex_unlock(&m->qmu);
	return NULL;
}

void memcache_wait_async(memcache_t *m)
{
	pthread_mutex_lock(&m->qmu);
	while ((m->qhead || m->busy) && !m->stop)
		pthread_cond_wait(&m->qidle, &m->qmu);
	pthread_mutex_unlock(&m->qmu);
}

/* ================================ lifecycle ================================ */

static void init_metrics(memcache_t *m)
{
	static const double buckets[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 3, 6, 10};
	metric_t *ops = metrics_counter("thanos_memcached_operations_total",
	                                "Total number of operations against memcached.", "name,operation");
	m->m_fail = metrics_counter("thanos_memcached_operation_failures_total",
	                            "Total number of operations against memcached that failed.",
	                            "name,operation,reason");
	metric_t *skip = metrics_counter(
	    "thanos_memcached_operation_skipped_total",
	    "Total number of operations against memcached that have been skipped.", "name,operation,reason");
	metric_t *dur = metrics_histogram("thanos_memcached_operation_duration_seconds",
	                                  "Duration of operations against memcached.", "name,operation",
	                                  buckets, sizeof buckets / sizeof buckets[0]);
	const char *nm = m->cfg.name;
	m->ops_get = metric_with(ops, nm, op_names[OPN_GET]);
	m->ops_set = metric_with(ops, nm, op_names[OPN_SET]);
	m->dur_get = metric_with(dur, nm, op_names[OPN_GET]);
	m->dur_set = metric_with(dur, nm, op_names[OPN_SET]);
	m->skip_size = metric_with(skip, nm, op_names[OPN_SET], "max-item-size");
	m->skip_full = metric_with(skip, nm, op_names[OPN_SET], "async-buffer-full");
}

int memcache_new(memcache_t **out, const memcache_config_t *cfg, err_t *err)
{
	*out = NULL;
	if (!cfg->naddresses)
		return err_set(err, ERR_INVALID, "memcached: no addresses configured");
	for (size_t i = 0; i < cfg->naddresses; i++) {
		const char *a = cfg->addresses[i];
		if (strncmp(a, "dnssrv+", 7) == 0 || strncmp(a, "dnssrvnoa+", 10) == 0)
			return err_set(err, ERR_INVALID,
			               "memcached address \"%s\": DNS SRV discovery is not supported (use "
			               "host:port or dns+host:port)",
			               a);
	}
	if (cfg->timeout_ms <= 0)
		return err_set(err, ERR_INVALID, "memcached: timeout must be positive");
	if (cfg->max_async_concurrency < 1 || cfg->max_async_buffer_size < 1 || cfg->max_idle_connections < 0)
		return err_set(
		    err, ERR_INVALID,
		    "memcached: max_async_concurrency and max_async_buffer_size must be at least 1");
	memcache_t *m = xcalloc(1, sizeof *m);
	m->cfg = *cfg;
	m->cfg.name = xstrdup(cfg->name ? cfg->name : "");
	m->cfg.addresses = xcalloc(cfg->naddresses, sizeof *m->cfg.addresses);
	for (size_t i = 0; i < cfg->naddresses; i++) {
		m->cfg.addresses[i] = xstrdup(cfg->addresses[i]);
		m->has_dns |= strncmp(cfg->addresses[i], "dns+", 4) == 0;
	}
	pthread_mutex_init(&m->mu, NULL);
	pthread_mutex_init(&m->qmu, NULL);
	pthread_cond_init(&m->qcv, NULL);
	pthread_cond_init(&m->qidle, NULL);
	pthread_cond_init(&m->dns_cv, NULL);
	init_metrics(m);
	int rc = refresh_servers(m, true, err);
	if (rc) {
		memcache_free(m);
		return rc;
	}
	m->nsetters =
	    cfg->max_async_concurrency < MC_MAX_SETTERS ? cfg->max_async_concurrency : MC_MAX_SETTERS;
	m->setters = xcalloc((size_t)m->nsetters, sizeof *m->setters);
	for (int i = 0; i < m->nsetters; i++)
		if (pthread_create(&m->setters[i], NULL, setter_main, m))
			die("memcache: pthread_create failed");
	if (m->has_dns) {
		if (pthread_create(&m->dns_thread, NULL, dns_main, m))
			die("memcache: pthread_create failed");
		m->dns_started = true;
	}
	*out = m;
	return 0;
}

void memcache_free(memcache_t *m)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->qmu);
	m->stop = true;
	pthread_cond_broadcast(&m->qcv);
	pthread_cond_broadcast(&m->qidle);
	pthread_cond_broadcast(&m->dns_cv);
	pthread_mutex_unlock(&m->qmu);
	for (int i = 0; i < m->nsetters; i++)
		pthread_join(m->setters[i], NULL);
	if (m->dns_started)
		pthread_join(m->dns_thread, NULL);
	free(m->setters);
	for (mc_set_t *s = m->qhead, *n; s; s = n) {
		n = s->next;
		free(s);
	}
	for (size_t i = 0; i < m->nall; i++) {
		close_idle(m->all[i]);
		pthread_mutex_destroy(&m->all[i]->mu);
		free(m->all[i]->idle);
		free(m->all[i]);
	}
	free(m->all);
	free(m->servers);
	pthread_cond_destroy(&m->qcv);
	pthread_cond_destroy(&m->qidle);
	pthread_cond_destroy(&m->dns_cv);
	pthread_mutex_destroy(&m->qmu);
	pthread_mutex_destroy(&m->mu);
	memcache_config_release(&m->cfg);
	free(m);
}
