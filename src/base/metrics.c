/* metrics.c — metrics registry and text exposition; see metrics.h. */
#include "base/metrics.h"

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/fmt.h"
#include "base/hmap.h"

enum mtype { M_COUNTER, M_GAUGE, M_HISTOGRAM, M_FUNC_GAUGE, M_FUNC_COUNTER };

struct metric_child {
	metric_t *family;
	char **values;
	char *key; /* values joined by 0xff, for sorting */
	_Atomic uint64_t bits; /* counter/gauge value (double bits) or histogram sum */
	_Atomic uint64_t count;
	_Atomic uint64_t *buckets; /* histogram: one per bound (cumulated at exposition) */
};

struct metric {
	char *name, *help;
	enum mtype type;
	char **labelnames;
	size_t nlabels;
	double *bounds;
	size_t nbounds;
	double (*fn)(void *);
	void *fn_arg;
	pthread_mutex_t mu;
	hmap_t children; /* key -> child */
	metric_child_t **list;
	size_t nlist, caplist;
	_Atomic(metric_child_t *) solo; /* the child of a family without labels (read without the lock) */
};

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static metric_t **families;
static size_t nfamilies, capfamilies;

static const double default_buckets[] = {.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10};

static double bits_to_d(uint64_t b)
{
	double d;
	memcpy(&d, &b, sizeof d);
	return d;
}

static uint64_t d_to_bits(double d)
{
	uint64_t b;
	memcpy(&b, &d, sizeof b);
	return b;
}

static void atomic_add_double(_Atomic uint64_t *p, double v)
{
	uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(p, &old, d_to_bits(bits_to_d(old) + v), memory_order_relaxed,
						      memory_order_relaxed))
		;
}

static void split_labels(metric_t *m, const char *labelnames)
{
	if (!labelnames || !*labelnames)
		return;
	char *copy = xstrdup(labelnames);
	for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		m->labelnames = xreallocarray(m->labelnames, m->nlabels + 1, sizeof *m->labelnames);
		m->labelnames[m->nlabels++] = xstrdup(tok);
	}
	free(copy);
}

static metric_t *family_new(const char *name, const char *help, enum mtype type, const char *labelnames)
{
	pthread_mutex_lock(&reg_mu);
	for (size_t i = 0; i < nfamilies; i++) {
		metric_t *m = families[i];
		if (strcmp(m->name, name))
			continue;
		size_t nl = 0;
		for (const char *p = labelnames; p && *p; p++)
			nl += *p == ',';
		nl += labelnames && *labelnames;
		if (m->type != type || m->nlabels != nl)
			die("metrics: %s registered twice with different type or labels", name);
		pthread_mutex_unlock(&reg_mu);
		return m;
	}
	metric_t *m = xcalloc(1, sizeof *m);
	m->name = xstrdup(name);
	m->help = xstrdup(help ? help : "");
	m->type = type;
	split_labels(m, labelnames);
	pthread_mutex_init(&m->mu, NULL);
	hmap_init(&m->children, 0);
	if (nfamilies == capfamilies) {
		capfamilies = alloc_grow_cap(capfamilies, nfamilies + 1);
		families = xreallocarray(families, capfamilies, sizeof *families);
	}
	families[nfamilies++] = m;
	pthread_mutex_unlock(&reg_mu);
	return m;
}

metric_t *metrics_counter(const char *name, const char *help, const char *labelnames)
{
	return family_new(name, help, M_COUNTER, labelnames);
}

metric_t *metrics_gauge(const char *name, const char *help, const char *labelnames)
{
	return family_new(name, help, M_GAUGE, labelnames);
}

metric_t *metrics_histogram(const char *name, const char *help, const char *labelnames, const double *buckets,
			    size_t nbuckets)
{
	metric_t *m = family_new(name, help, M_HISTOGRAM, labelnames);
	pthread_mutex_lock(&m->mu);
	if (!m->bounds) {
		if (!buckets) {
			buckets = default_buckets;
			nbuckets = ARRAY_LEN(default_buckets);
		}
		m->bounds = xmemdup(buckets, nbuckets * sizeof *buckets);
		m->nbounds = nbuckets;
	}
	pthread_mutex_unlock(&m->mu);
	return m;
}

static void func_metric(const char *name, const char *help, enum mtype t, double (*fn)(void *), void *arg)
{
	metric_t *m = family_new(name, help, t, NULL);
	m->fn = fn;
	m->fn_arg = arg;
}

void metrics_gauge_func(const char *name, const char *help, double (*fn)(void *), void *arg)
{
	func_metric(name, help, M_FUNC_GAUGE, fn, arg);
}

void metrics_counter_func(const char *name, const char *help, double (*fn)(void *), void *arg)
{
	func_metric(name, help, M_FUNC_COUNTER, fn, arg);
}

metric_child_t *metric_withv(metric_t *m, const char *const *values)
{
	metric_child_t *solo = atomic_load_explicit(&m->solo, memory_order_acquire);
	if (solo)
		return solo;
	buf_t key = BUF_INIT;
	for (size_t i = 0; i < m->nlabels; i++) {
		if (i)
			buf_putc(&key, '\xff');
		buf_puts(&key, values[i] ? values[i] : "");
	}
	pthread_mutex_lock(&m->mu);
	metric_child_t *c = hmap_get(&m->children, buf_str(&key));
	if (!c) {
		c = xcalloc(1, sizeof *c);
		c->family = m;
		c->values = xcalloc(m->nlabels ? m->nlabels : 1, sizeof *c->values);
		for (size_t i = 0; i < m->nlabels; i++)
			c->values[i] = xstrdup(values[i] ? values[i] : "");
		c->key = buf_detach(&key, NULL);
		if (m->type == M_HISTOGRAM)
			c->buckets = xcalloc(m->nbounds ? m->nbounds : 1, sizeof *c->buckets);
		hmap_put(&m->children, str_c(c->key), c);
		if (m->nlist == m->caplist) {
			m->caplist = alloc_grow_cap(m->caplist, m->nlist + 1);
			m->list = xreallocarray(m->list, m->caplist, sizeof *m->list);
		}
		m->list[m->nlist++] = c;
		if (m->nlabels == 0)
			atomic_store_explicit(&m->solo, c, memory_order_release);
	}
	pthread_mutex_unlock(&m->mu);
	buf_release(&key);
	return c;
}

metric_child_t *metric_with(metric_t *m, ...)
{
	const char *vals[16] = {0};
	BUG_ON(m->nlabels > 16);
	va_list ap;
	va_start(ap, m);
	for (size_t i = 0; i < m->nlabels; i++)
		vals[i] = va_arg(ap, const char *);
	va_end(ap);
	return metric_withv(m, vals);
}

void metric_inc(metric_child_t *c)
{
	atomic_add_double(&c->bits, 1);
}

void metric_add(metric_child_t *c, double v)
{
	atomic_add_double(&c->bits, v);
}

void metric_set(metric_child_t *c, double v)
{
	atomic_store_explicit(&c->bits, d_to_bits(v), memory_order_relaxed);
}

void metric_observe(metric_child_t *c, double v)
{
	metric_t *m = c->family;
	for (size_t i = 0; i < m->nbounds; i++) {
		if (v <= m->bounds[i]) {
			atomic_fetch_add_explicit(&c->buckets[i], 1, memory_order_relaxed);
			break;
		}
	}
	atomic_add_double(&c->bits, v);
	atomic_fetch_add_explicit(&c->count, 1, memory_order_relaxed);
}

double metric_value(metric_child_t *c)
{
	if (c->family->type == M_HISTOGRAM)
		return (double)atomic_load(&c->count);
	return bits_to_d(atomic_load(&c->bits));
}

static void put_escaped(buf_t *b, const char *s, bool quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			buf_puts(b, "\\\\");
		else if (*s == '\n')
			buf_puts(b, "\\n");
		else if (quote && *s == '"')
			buf_puts(b, "\\\"");
		else
			buf_putc(b, *s);
	}
}

static void put_labels(buf_t *b, metric_t *m, metric_child_t *c, const char *extra_name, const char *extra_val)
{
	if (m->nlabels == 0 && !extra_name)
		return;
	buf_putc(b, '{');
	for (size_t i = 0; i < m->nlabels; i++) {
		if (i)
			buf_putc(b, ',');
		buf_printf(b, "%s=\"", m->labelnames[i]);
		put_escaped(b, c->values[i], true);
		buf_putc(b, '"');
	}
	if (extra_name) {
		if (m->nlabels)
			buf_putc(b, ',');
		buf_printf(b, "%s=\"%s\"", extra_name, extra_val);
	}
	buf_putc(b, '}');
}

static int cmp_family(const void *a, const void *b)
{
	return strcmp((*(metric_t *const *)a)->name, (*(metric_t *const *)b)->name);
}

static int cmp_child(const void *a, const void *b)
{
	return strcmp((*(metric_child_t *const *)a)->key, (*(metric_child_t *const *)b)->key);
}

static void write_family(buf_t *out, metric_t *m)
{
	static const char *types[] = {"counter", "gauge", "histogram", "gauge", "counter"};
	pthread_mutex_lock(&m->mu);
	if (m->type != M_FUNC_GAUGE && m->type != M_FUNC_COUNTER && m->nlist == 0) {
		pthread_mutex_unlock(&m->mu);
		return;
	}
	buf_printf(out, "# HELP %s ", m->name);
	put_escaped(out, m->help, false);
	buf_printf(out, "\n# TYPE %s %s\n", m->name, types[m->type]);
	if (m->type == M_FUNC_GAUGE || m->type == M_FUNC_COUNTER) {
		buf_printf(out, "%s ", m->name);
		buf_put_float(out, m->fn(m->fn_arg), 'g');
		buf_putc(out, '\n');
		pthread_mutex_unlock(&m->mu);
		return;
	}
	metric_child_t **list = xmemdup(m->list, m->nlist * sizeof *list);
	size_t n = m->nlist;
	pthread_mutex_unlock(&m->mu);
	qsort(list, n, sizeof *list, cmp_child);
	for (size_t i = 0; i < n; i++) {
		metric_child_t *c = list[i];
		if (m->type != M_HISTOGRAM) {
			buf_puts(out, m->name);
			put_labels(out, m, c, NULL, NULL);
			buf_putc(out, ' ');
			buf_put_float(out, bits_to_d(atomic_load(&c->bits)), 'g');
			buf_putc(out, '\n');
			continue;
		}
		/* Read count first: buckets may run ahead, never behind, so cumulative <= count holds. */
		uint64_t count = atomic_load(&c->count);
		double sum = bits_to_d(atomic_load(&c->bits));
		uint64_t cum = 0;
		for (size_t k = 0; k < m->nbounds; k++) {
			cum += atomic_load(&c->buckets[k]);
			if (cum > count)
				cum = count;
			buf_t le = BUF_INIT;
			buf_put_float(&le, m->bounds[k], 'g');
			buf_printf(out, "%s_bucket", m->name);
			put_labels(out, m, c, "le", le.p);
			buf_release(&le);
			buf_printf(out, " %llu\n", (unsigned long long)cum);
		}
		buf_printf(out, "%s_bucket", m->name);
		put_labels(out, m, c, "le", "+Inf");
		buf_printf(out, " %llu\n%s_sum", (unsigned long long)count, m->name);
		put_labels(out, m, c, NULL, NULL);
		buf_putc(out, ' ');
		buf_put_float(out, sum, 'g');
		buf_printf(out, "\n%s_count", m->name);
		put_labels(out, m, c, NULL, NULL);
		buf_printf(out, " %llu\n", (unsigned long long)count);
	}
	free(list);
}

void metrics_write(buf_t *out)
{
	pthread_mutex_lock(&reg_mu);
	metric_t **fams = xmemdup(families, nfamilies * sizeof *fams);
	size_t n = nfamilies;
	pthread_mutex_unlock(&reg_mu);
	qsort(fams, n, sizeof *fams, cmp_family);
	for (size_t i = 0; i < n; i++)
		write_family(out, fams[i]);
	free(fams);
}

/* ---- process metrics (Linux /proc) ---- */

static double start_time_s;

static bool read_stat(unsigned long *utime, unsigned long *stime, unsigned long *vsize, long *rss)
{
	FILE *f = fopen("/proc/self/stat", "r");
	if (!f)
		return false;
	char line[2048];
	bool ok = fgets(line, sizeof line, f) != NULL;
	fclose(f);
	if (!ok)
		return false;
	char *p = strrchr(line, ')'); /* comm may contain spaces */
	if (!p)
		return false;
	/* Fields after ")": state(3) ... utime(14) stime(15) ... vsize(23) rss(24). */
	int field = 2;
	char *save = NULL;
	for (char *tok = strtok_r(p + 1, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		field++;
		if (field == 14)
			*utime = strtoul(tok, NULL, 10);
		else if (field == 15)
			*stime = strtoul(tok, NULL, 10);
		else if (field == 23)
			*vsize = strtoul(tok, NULL, 10);
		else if (field == 24) {
			*rss = strtol(tok, NULL, 10);
			return true;
		}
	}
	return false;
}

static double proc_cpu(void *arg)
{
	unsigned long u = 0, s = 0, v = 0;
	long r = 0;
	read_stat(&u, &s, &v, &r);
	return (double)(u + s) / (double)sysconf(_SC_CLK_TCK);
}

static double proc_rss(void *arg)
{
	unsigned long u = 0, s = 0, v = 0;
	long r = 0;
	read_stat(&u, &s, &v, &r);
	return (double)r * (double)sysconf(_SC_PAGESIZE);
}

static double proc_vsize(void *arg)
{
	unsigned long u = 0, s = 0, v = 0;
	long r = 0;
	read_stat(&u, &s, &v, &r);
	return (double)v;
}

static double proc_start(void *arg)
{
	return start_time_s;
}

static double proc_fds(void *arg)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return 0;
	double n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory stream's own fd */
}

static double proc_max_fds(void *arg)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl))
		return 0;
	return rl.rlim_cur == RLIM_INFINITY ? INFINITY : (double)rl.rlim_cur;
}

void metrics_register_process(const char *component)
{
	if (start_time_s == 0) {
		/* Start time from /proc/self/stat field 22 would need boot time; the registration moment is
		 * within milliseconds of process start for every Strata component. */
		start_time_s = (double)clock_now_ms() / 1000.0;
	}
	metrics_counter_func("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
			     proc_cpu, NULL);
	metrics_gauge_func("process_resident_memory_bytes", "Resident memory size in bytes.", proc_rss, NULL);
	metrics_gauge_func("process_virtual_memory_bytes", "Virtual memory size in bytes.", proc_vsize, NULL);
	metrics_gauge_func("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
			   proc_start, NULL);
	metrics_gauge_func("process_open_fds", "Number of open file descriptors.", proc_fds, NULL);
	metrics_gauge_func("process_max_fds", "Maximum number of open file descriptors.", proc_max_fds, NULL);
	metric_t *bi = metrics_gauge("strata_build_info",
				     "A metric with a constant '1' value labeled by version and component.",
				     "version,component");
	metric_set(metric_with(bi, STRATA_VERSION, component ? component : ""), 1);
}
