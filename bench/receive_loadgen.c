/*
 * receive_loadgen — a Prometheus-like remote-write load generator (and checker) for `strata receive`
 * and Prometheus's own receiver, written in C so it is never the bottleneck.
 *
 *   receive_loadgen write --url=http://127.0.0.1:19291/api/v1/receive [--tenant=T] [--series=N]
 *       [--labels=8] [--batch=2000] [--rounds=R] [--start=MS] [--interval=15000] [--concurrency=C]
 *       [--ack-log=FILE] [--duration=SECONDS] [--retry]
 *       [--tls-ca=FILE [--tls-cert=FILE --tls-key=FILE]]   with an https:// URL (mutual TLS with a cert)
 *   receive_loadgen verify --grpc=127.0.0.1:10901[,...] --ack-log=FILE [--series=N] [--batch=2000]
 *       [--min-copies=K]
 *       [--start=MS] [--interval=15000] [--tenant=T]
 *
 * write: series i has 8 labels (__name__, cluster, env, instance, job, namespace, pod=pod-<i>, zone);
 * round r gives every series one sample at start + r * interval with the value f(i, r) (a counter).
 * A request carries one batch of `batch` consecutive series for one round (2,000 samples, snappy, as
 * Prometheus 2.42's remote_write sends them), over keep-alive connections from `concurrency` threads.
 * Rounds of a batch go strictly in order (round r+1 of a batch is sent only after round r was
 * acknowledged), so a sender never causes out-of-order samples itself. With --retry a failed request
 * (connection refused or reset, 5xx, 429) is retried until it succeeds, as Prometheus does. Each
 * acknowledged request appends "round batch" to the ack log. At the end it prints one line:
 *   loadgen: requests=... samples=... failed=... wall_s=... cpu_s=... samples_per_s=... p50_ms=... p99_ms=...
 * (latency of acknowledged requests, first attempt to acknowledgement)
 * verify: reads the series back over the StoreAPI and checks every acknowledged sample is there with
 * its value and no timestamp appears twice; with several StoreAPI addresses (replicas of a
 * hashring), each one is read on its own and every acknowledged sample must be on at least
 * --min-copies of them (default 1: on one); prints "verify: ok acked=... stored=..." or the first
 * problems, exit status 1.
 * Without arguments (as bench/run starts every bench program) it measures its own cost of building
 * and compressing requests, with no network: one RESULT line.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <snappy-c.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/arena.h"
#include "base/clock.h"
#include "base/str.h"
#include "base/vec.h"
#include "model/matcher.h"
#include "net/tls.h"
#include "store/grpc_client.h"

typedef struct cfg {
	char host[256], port[16], path[256];
	const char *tenant;
	long series, labels, batch, rounds, concurrency;
	int64_t start, interval;
	const char *ack_log, *grpc;
	double duration;
	bool retry;
	long min_copies;
	const char *tls_ca, *tls_cert, *tls_key;
	tls_client_t *tls; /* https:// URL; NULL: plain HTTP */
} cfg_t;

static cfg_t C = {
    .series = 10000, .labels = 8, .batch = 2000, .rounds = 10, .interval = 15000, .concurrency = 4, .min_copies = 1};

static double value_of(long i, long r)
{
	return (double)i + (double)r * (double)(1 + i % 7);
}

/* ---- protobuf encoding ---- */

static void put_varint(buf_t *b, uint64_t v)
{
	while (v >= 0x80) {
		buf_putc(b, (char)(v | 0x80));
		v >>= 7;
	}
	buf_putc(b, (char)v);
}

static void put_str_field(buf_t *b, int field, const char *s, size_t n)
{
	buf_putc(b, (char)(field << 3 | 2));
	put_varint(b, n);
	buf_append(b, s, n);
}

static size_t series_labels(long i, char vals[8][64], const char **names)
{
	static const char *const nm[8] = {"__name__", "cluster",   "env", "instance",
	                                  "job",      "namespace", "pod", "zone"};
	snprintf(vals[0], 64, "rw_metric_%ld", i % 200);
	snprintf(vals[1], 64, "c-%ld", i % 3);
	snprintf(vals[2], 64, "prod");
	snprintf(vals[3], 64, "host-%ld.example.com:9100", i / 100);
	snprintf(vals[4], 64, "job-%ld", i % 20);
	snprintf(vals[5], 64, "ns-%ld", i % 50);
	snprintf(vals[6], 64, "pod-%ld", i);
	snprintf(vals[7], 64, "z-%ld", i % 4);
	for (int k = 0; k < 8; k++)
		names[k] = nm[k];
	return (size_t)(C.labels < 8 ? C.labels : 8);
}

/* WriteRequest for batch b of round r. */
static void encode_request(buf_t *out, buf_t *ts, buf_t *lb, long r, long b)
{
	buf_reset(out);
	long from = b * C.batch, to = from + C.batch < C.series ? from + C.batch : C.series;
	int64_t t = C.start + r * C.interval;
	for (long i = from; i < to; i++) {
		char vals[8][64];
		const char *names[8];
		size_t nl = series_labels(i, vals, names);
		buf_reset(ts);
		for (size_t k = 0; k < nl; k++) {
			buf_reset(lb);
			put_str_field(lb, 1, names[k], strlen(names[k]));
			put_str_field(lb, 2, vals[k], strlen(vals[k]));
			buf_putc(ts, 0x0a);
			put_varint(ts, lb->n);
			buf_append(ts, lb->p, lb->n);
		}
		/* sample: 09 <double> 10 <varint ts> */
		buf_reset(lb);
		buf_putc(lb, 0x09);
		double v = value_of(i, r);
		buf_append(lb, &v, 8);
		buf_putc(lb, 0x10);
		put_varint(lb, (uint64_t)t);
		buf_putc(ts, 0x12);
		put_varint(ts, lb->n);
		buf_append(ts, lb->p, lb->n);
		buf_putc(out, 0x0a);
		put_varint(out, ts->n);
		buf_append(out, ts->p, ts->n);
	}
}

/* ---- HTTP ---- */

typedef struct hconn {
	int fd; /* -1: not connected */
	SSL *ssl;
} hconn_t;

static void hclose(hconn_t *c)
{
	if (c->ssl)
		SSL_free(c->ssl);
	if (c->fd >= 0)
		close(c->fd);
	c->ssl = NULL;
	c->fd = -1;
}

static int dial(void)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
	if (getaddrinfo(C.host, C.port, &hints, &ai) != 0)
		return -1;
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	if (fd >= 0) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	}
	return fd;
}

static int hconnect(hconn_t *c)
{
	if ((c->fd = dial()) < 0)
		return -1;
	if (C.tls) {
		c->ssl = tls_client_new_ssl(C.tls, C.host);
		SSL_set_fd(c->ssl, c->fd);
		if (SSL_connect(c->ssl) != 1) {
			char why[256];
			tls_errors(why, sizeof why);
			fprintf(stderr, "receive_loadgen: TLS handshake: %s\n", why);
			hclose(c);
			return -1;
		}
	}
	return 0;
}

static ssize_t hsend(hconn_t *c, const char *p, size_t n)
{
	if (c->ssl) {
		int k = SSL_write(c->ssl, p, (int)n);
		return k > 0 ? k : -1;
	}
	return send(c->fd, p, n, MSG_NOSIGNAL);
}

static ssize_t hrecv(hconn_t *c, char *p, size_t n)
{
	if (c->ssl) {
		int k = SSL_read(c->ssl, p, (int)n);
		return k > 0 ? k : 0;
	}
	return recv(c->fd, p, n, 0);
}

static int write_all(hconn_t *c, const char *p, size_t n)
{
	while (n) {
		ssize_t k = hsend(c, p, n);
		if (k <= 0) {
			if (k < 0 && errno == EINTR)
				continue;
			return -1;
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* POST body; returns the status code, or -1 on a connection error (fd closed). */
static int post(hconn_t *c, const char *body, size_t n, buf_t *resp)
{
	if (c->fd < 0 && hconnect(c) < 0)
		return -1;
	char hdr[1024];
	int hn = snprintf(hdr, sizeof hdr,
	                  "POST %s HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: application/x-protobuf\r\n"
	                  "Content-Encoding: snappy\r\nX-Prometheus-Remote-Write-Version: 0.1.0\r\n"
	                  "User-Agent: strata-receive-loadgen\r\n%s%s%sContent-Length: %zu\r\n\r\n",
	                  C.path, C.host, C.port, C.tenant ? "THANOS-TENANT: " : "", C.tenant ? C.tenant : "",
	                  C.tenant ? "\r\n" : "", n);
	if (write_all(c, hdr, (size_t)hn) || write_all(c, body, n))
		goto broken;
	buf_reset(resp);
	size_t hend = 0;
	for (;;) {
		char tmp[4096];
		ssize_t k = hrecv(c, tmp, sizeof tmp);
		if (k <= 0) {
			if (k < 0 && errno == EINTR)
				continue;
			goto broken;
		}
		buf_append(resp, tmp, (size_t)k);
		char *e = memmem(resp->p, resp->n, "\r\n\r\n", 4);
		if (!e)
			continue;
		hend = (size_t)(e - resp->p) + 4;
		long clen = 0;
		char *cl = strcasestr(resp->p, "\r\ncontent-length:");
		if (cl && cl < e)
			clen = strtol(cl + 17, NULL, 10);
		if (resp->n >= hend + (size_t)clen)
			break;
	}
	int status = atoi(resp->p + 9);
	return status;
broken:
	hclose(c);
	return -1;
}

/* ---- the write run ---- */

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	long next;   /* next item: round = next / nbatches, batch = next % nbatches */
	long *acked; /* per batch: last acknowledged round, -1 none */
	long nbatches;
	FILE *ack;
	atomic_long requests, failed, samples;
	VEC(double) lat_ms; /* acknowledged requests' latency (mu) */
	volatile int stop;
	uint64_t deadline_ns;
} W;

static void on_signal(int s)
{
	(void)s;
	W.stop = 1;
}

static void *writer(void *arg)
{
	(void)arg;
	buf_t req = BUF_INIT, ts = BUF_INIT, lb = BUF_INIT, resp = BUF_INIT;
	char *z = NULL;
	size_t zcap = 0;
	hconn_t conn = {.fd = -1};
	for (;;) {
		pthread_mutex_lock(&W.mu);
		long item = W.next;
		long r = item / W.nbatches, b = item % W.nbatches;
		if (W.stop || r >= C.rounds || (W.deadline_ns && clock_mono_ns() >= W.deadline_ns)) {
			pthread_mutex_unlock(&W.mu);
			break;
		}
		W.next++;
		while (W.acked[b] != r - 1 && !W.stop) /* keep a batch's rounds in order */
			pthread_cond_wait(&W.cv, &W.mu);
		pthread_mutex_unlock(&W.mu);
		if (W.stop)
			break;
		encode_request(&req, &ts, &lb, r, b);
		size_t cl = snappy_max_compressed_length(req.n);
		if (cl > zcap) {
			zcap = cl;
			z = xrealloc(z, zcap);
		}
		snappy_compress(req.p, req.n, z, &cl);
		int status;
		uint64_t sent = clock_mono_ns();
		for (;;) {
			status = post(&conn, z, cl, &resp);
			atomic_fetch_add(&W.requests, 1);
			if (status >= 200 && status < 300)
				break;
			atomic_fetch_add(&W.failed, 1);
			if (status > 0 && status != 429 && status < 500) {
				if (atomic_load(&W.failed) <= 3) {
					char *body = memmem(resp.p, resp.n, "\r\n\r\n", 4);
					body = body ? body + 4 : resp.p;
					fprintf(stderr, "loadgen: round %ld batch %ld: HTTP %d: %.*s\n", r, b,
					        status,
					        (int)(resp.p + resp.n - body > 300 ? 300
					                                           : resp.p + resp.n - body),
					        body);
				}
				break; /* not retryable, as for Prometheus */
			}
			if (!C.retry || W.stop)
				break;
			usleep(50 * 1000);
		}
		pthread_mutex_lock(&W.mu);
		W.acked[b] = r;
		if (status >= 200 && status < 300) {
			VEC_PUSH(&W.lat_ms, (double)(clock_mono_ns() - sent) / 1e6);
			atomic_fetch_add(&W.samples, (long)(req.n ? C.batch : 0));
			if (W.ack) {
				fprintf(W.ack, "%ld %ld\n", r, b);
				fflush(W.ack);
			}
		}
		pthread_cond_broadcast(&W.cv);
		pthread_mutex_unlock(&W.mu);
	}
	pthread_mutex_lock(&W.mu);
	pthread_cond_broadcast(&W.cv);
	pthread_mutex_unlock(&W.mu);
	hclose(&conn);
	free(z);
	buf_release(&req);
	buf_release(&ts);
	buf_release(&lb);
	buf_release(&resp);
	return NULL;
}

static double cpu_seconds(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static int run_write(void)
{
	W.nbatches = (C.series + C.batch - 1) / C.batch;
	W.acked = xmalloc((size_t)W.nbatches * sizeof(long));
	for (long i = 0; i < W.nbatches; i++)
		W.acked[i] = -1;
	pthread_mutex_init(&W.mu, NULL);
	pthread_cond_init(&W.cv, NULL);
	if (C.ack_log && !(W.ack = fopen(C.ack_log, "a"))) {
		perror(C.ack_log);
		return 2;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	if (C.duration > 0)
		W.deadline_ns = clock_mono_ns() + (uint64_t)(C.duration * 1e9);
	uint64_t t0 = clock_mono_ns();
	double c0 = cpu_seconds();
	long nthr = C.concurrency < W.nbatches ? C.concurrency : W.nbatches;
	pthread_t *th = xcalloc((size_t)nthr, sizeof *th);
	for (long i = 0; i < nthr; i++)
		pthread_create(&th[i], NULL, writer, NULL);
	for (long i = 0; i < nthr; i++)
		pthread_join(th[i], NULL);
	double wall = clock_since_s(t0), cpu = cpu_seconds() - c0;
	long samples = atomic_load(&W.samples);
	qsort(W.lat_ms.v, W.lat_ms.n, sizeof(double), cmp_double);
	double p50 = W.lat_ms.n ? W.lat_ms.v[W.lat_ms.n / 2] : 0,
	       p99 = W.lat_ms.n ? W.lat_ms.v[W.lat_ms.n * 99 / 100] : 0;
	printf("loadgen: requests=%ld samples=%ld failed=%ld wall_s=%.3f cpu_s=%.3f samples_per_s=%.0f "
	       "loadgen_samples_per_cpu_s=%.0f p50_ms=%.2f p99_ms=%.2f\n",
	       atomic_load(&W.requests), samples, atomic_load(&W.failed), wall, cpu,
	       samples / (wall > 0 ? wall : 1), samples / (cpu > 0 ? cpu : 1), p50, p99);
	VEC_FREE(&W.lat_ms);
	if (W.ack)
		fclose(W.ack);
	free(th);
	free(W.acked);
	return atomic_load(&W.failed) && !C.retry ? 1 : 0;
}

/* ---- verify ---- */

/* Read one StoreAPI's copy: seen[i * rounds + r] counts the samples of series i at round r. */
static int verify_one(const char *grpc, long rounds, uint8_t *seen, long *stored, long *nseries, long *problems)
{
	store_grpc_client_config_t cc = {.timeout_ms = 300000};
	store_t *st;
	err_t err = {0};
	if (store_grpc_client_new(&st, grpc, &cc, &err)) {
		fprintf(stderr, "verify: %s\n", err.msg);
		return 1;
	}
	arena_t a;
	arena_init(&a, 1 << 20);
	matcher_t ms[2];
	matcher_init(&ms[0], MATCH_RE, STR("__name__"), STR("rw_metric_.*"), &err);
	size_t nms = 1;
	if (C.tenant)
		matcher_init(&ms[nms++], MATCH_EQ, STR("tenant_id"), str_c(C.tenant), &err);
	store_series_req_t req = {.mint = C.start,
	                          .maxt = C.start + (rounds + 1) * C.interval,
	                          .ms = ms,
	                          .nms = nms,
	                          .abort_on_error = true};
	series_set_t *set;
	int rc = store_series(st, &a, &req, &set, &err);
	while (!rc && (rc = series_set_next(set, &err)) == 1) {
		rc = 0;
		bool found;
		str_t pod = labels_get(series_set_labels(set), STR("pod"), &found);
		long i = found && pod.n > 4 ? strtol(pod.p + 4, NULL, 10) : -1;
		if (i < 0 || i >= C.series)
			continue;
		(*nseries)++;
		sample_iter_t *it = series_set_samples(set);
		int64_t ts[512];
		double vs[512];
		int k;
		while ((k = sample_iter_next_batch(it, ts, vs, 512, &err)) > 0)
			for (int j = 0; j < k; j++) {
				(*stored)++;
				long rr = (long)((ts[j] - C.start) / C.interval);
				if ((ts[j] - C.start) % C.interval || rr < 0 || rr >= rounds) {
					if (rr >= rounds && (ts[j] - C.start) % C.interval == 0)
						continue; /* stored but never acknowledged: allowed */
					if ((*problems)++ < 10)
						fprintf(stderr,
						        "verify: series %ld: unexpected timestamp %lld\n", i,
						        (long long)ts[j]);
					continue;
				}
				if (seen[i * rounds + rr]++ && (*problems)++ < 10)
					fprintf(stderr, "verify: series %ld round %ld: stored twice\n", i,
					        rr);
				if (vs[j] != value_of(i, rr) && (*problems)++ < 10)
					fprintf(stderr, "verify: series %ld round %ld: value %g, want %g\n",
					        i, rr, vs[j], value_of(i, rr));
			}
		if (k < 0)
			rc = k;
	}
	if (rc < 0) {
		fprintf(stderr, "verify: %s: %s\n", grpc, err.msg);
		return 1;
	}
	series_set_close(set);
	for (size_t i = 0; i < nms; i++)
		matcher_release(&ms[i]);
	arena_release(&a);
	store_free(st);
	return 0;
}


static int run_verify(void)
{
	long nb = (C.series + C.batch - 1) / C.batch;
	long rounds = 0;
	FILE *f = fopen(C.ack_log, "r");
	if (!f) {
		perror(C.ack_log);
		return 2;
	}
	VEC(long) acks = {0};
	long r, b;
	while (fscanf(f, "%ld %ld", &r, &b) == 2) {
		VEC_PUSH(&acks, r);
		VEC_PUSH(&acks, b);
		if (r + 1 > rounds)
			rounds = r + 1;
	}
	fclose(f);
	/* acked[i * rounds + r]: sample of series i at round r acknowledged */
	uint8_t *acked = xcalloc((size_t)(C.series * (rounds ? rounds : 1)), 1);
	for (size_t k = 0; k < acks.n; k += 2)
		for (long i = acks.v[k + 1] * C.batch; i < (acks.v[k + 1] + 1) * C.batch && i < C.series; i++)
			acked[i * rounds + acks.v[k]] = 1;
	(void)nb;
	uint8_t *seen = xcalloc((size_t)(C.series * (rounds ? rounds : 1)), 1);
	uint8_t *copies = xcalloc((size_t)(C.series * (rounds ? rounds : 1)), 1);
	long stored = 0, acked_n = 0, problems = 0, nseries = 0;
	char *addrs = xstrdup(C.grpc), *save = NULL;
	for (char *addr = strtok_r(addrs, ",", &save); addr; addr = strtok_r(NULL, ",", &save)) {
		memset(seen, 0, (size_t)(C.series * (rounds ? rounds : 1)));
		if (verify_one(addr, rounds, seen, &stored, &nseries, &problems) != 0) {
			free(addrs);
			return 1;
		}
		for (long k = 0; k < C.series * rounds; k++)
			copies[k] += seen[k] ? 1 : 0;
	}
	free(addrs);
	for (long i = 0; i < C.series; i++)
		for (long rr = 0; rr < rounds; rr++) {
			if (!acked[i * rounds + rr])
				continue;
			acked_n++;
			if (copies[i * rounds + rr] < C.min_copies && problems++ < 10)
				fprintf(stderr,
				        "verify: series %ld round %ld: acknowledged but on %d of the %ld copies "
				        "wanted\n",
				        i, rr, copies[i * rounds + rr], C.min_copies);
		}
	printf("verify: %s acked=%ld stored=%ld series=%ld problems=%ld\n", problems ? "FAILED" : "ok",
	       acked_n, stored, nseries, problems);
	free(acked);
	free(seen);
	free(copies);
	VEC_FREE(&acks);
	return problems ? 1 : 0;
}

static bool opt(const char *arg, const char *name, const char **val)
{
	size_t n = strlen(name);
	if (strncmp(arg, name, n) || arg[n] != '=')
		return false;
	*val = arg + n + 1;
	return true;
}

/* The generator's own cost: requests built and compressed per CPU-second. */
static int self_bench(void)
{
	C.series = 20000;
	buf_t req = BUF_INIT, ts = BUF_INIT, lb = BUF_INIT;
	char *z = xmalloc(snappy_max_compressed_length(1 << 20));
	double c0 = cpu_seconds();
	long samples = 0;
	for (long r = 0; r < 20; r++)
		for (long b = 0; b < C.series / C.batch; b++) {
			encode_request(&req, &ts, &lb, r, b);
			size_t cl = snappy_max_compressed_length(req.n);
			snappy_compress(req.p, req.n, z, &cl);
			samples += C.batch;
		}
	double cpu = cpu_seconds() - c0;
	printf("RESULT receive_loadgen_encode %.0f samples/cpu-s requests of %ld samples built and "
	       "snappy-compressed (no network)\n",
	       samples / (cpu > 0 ? cpu : 1e-9), C.batch);
	free(z);
	buf_release(&req);
	buf_release(&ts);
	buf_release(&lb);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return self_bench();
	C.start = clock_now_ms() / 15000 * 15000;
	bool start_set = false;
	const char *url = "http://127.0.0.1:19291/api/v1/receive";
	for (int i = 2; i < argc; i++) {
		const char *v;
		if (opt(argv[i], "--url", &v))
			url = v;
		else if (opt(argv[i], "--tenant", &v))
			C.tenant = v;
		else if (opt(argv[i], "--series", &v))
			C.series = atol(v);
		else if (opt(argv[i], "--labels", &v))
			C.labels = atol(v);
		else if (opt(argv[i], "--batch", &v))
			C.batch = atol(v);
		else if (opt(argv[i], "--rounds", &v))
			C.rounds = atol(v);
		else if (opt(argv[i], "--start", &v))
			C.start = atoll(v), start_set = true;
		else if (opt(argv[i], "--interval", &v))
			C.interval = atoll(v);
		else if (opt(argv[i], "--concurrency", &v))
			C.concurrency = atol(v);
		else if (opt(argv[i], "--ack-log", &v))
			C.ack_log = v;
		else if (opt(argv[i], "--duration", &v))
			C.duration = atof(v);
		else if (opt(argv[i], "--grpc", &v))
			C.grpc = v;
		else if (opt(argv[i], "--min-copies", &v))
			C.min_copies = atol(v);
		else if (!strcmp(argv[i], "--retry"))
			C.retry = true;
		else if (opt(argv[i], "--tls-ca", &v))
			C.tls_ca = v;
		else if (opt(argv[i], "--tls-cert", &v))
			C.tls_cert = v;
		else if (opt(argv[i], "--tls-key", &v))
			C.tls_key = v;
		else {
			fprintf(stderr, "receive_loadgen: unknown option %s\n", argv[i]);
			return 2;
		}
	}
	if (!start_set) /* the last round lands on now */
		C.start -= (C.rounds - 1) * C.interval;
	if (C.series <= 0 || C.batch <= 0 || C.rounds <= 0 || C.concurrency <= 0 || C.interval <= 0) {
		fprintf(
		    stderr,
		    "receive_loadgen: series, batch, rounds, concurrency and interval must be positive\n");
		return 2;
	}
	if (!strcmp(argv[1], "write")) {
		bool https = !strncmp(url, "https://", 8);
		if (sscanf(url + (https ? 8 : 7), "%255[^:/]:%15[0-9]%255s", C.host, C.port, C.path) != 3 ||
		    (!https && strncmp(url, "http://", 7))) {
			fprintf(stderr, "receive_loadgen: --url must look like http[s]://host:port/path\n");
			return 2;
		}
		err_t err = {0};
		tls_client_opts_t o = {.ca_file = C.tls_ca, .cert_file = C.tls_cert, .key_file = C.tls_key};
		if (https && tls_client_new(&C.tls, &o, &err)) {
			fprintf(stderr, "receive_loadgen: %s\n", err.msg);
			return 2;
		}
		signal(SIGPIPE, SIG_IGN); /* SSL_write to a peer that went away */
		int rc = run_write();
		tls_client_free(C.tls);
		return rc;
	}
	if (!strcmp(argv[1], "verify")) {
		if (!C.grpc || !C.ack_log) {
			fprintf(stderr, "receive_loadgen verify: --grpc and --ack-log are required\n");
			return 2;
		}
		return run_verify();
	}
	fprintf(stderr, "receive_loadgen: unknown mode %s\n", argv[1]);
	return 2;
}
