/*
 * metrics.h — process-wide metrics registry and the Prometheus text format 0.0.4.
 *
 *     static metric_t *reqs;
 *     reqs = metrics_counter("http_requests_total", "Requests by handler and code.", "handler,code");
 *     metric_inc(metric_with(reqs, "query", "200"));   // cache the child pointer on hot paths
 *
 * Families are created once (same name twice returns the existing family if the type and label names
 * match, and aborts otherwise — that is a programming error). Children are created on first use and
 * live for the process. Updates are lock-free atomics; exposition takes a mutex. Thread-safe.
 */
#ifndef STRATA_BASE_METRICS_H
#define STRATA_BASE_METRICS_H

#include <stddef.h>

#include "base/str.h"

typedef struct metric metric_t;             /* a family */
typedef struct metric_child metric_child_t; /* one label-value combination */

/* labelnames: comma-separated ("handler,code") or NULL/"" for none. */
metric_t *metrics_counter(const char *name, const char *help, const char *labelnames);
metric_t *metrics_gauge(const char *name, const char *help, const char *labelnames);
/* buckets: upper bounds ascending, +Inf implied. NULL = Prometheus defaults (.005 ... 10). */
metric_t *metrics_histogram(const char *name, const char *help, const char *labelnames, const double *buckets,
			    size_t nbuckets);
/* A gauge/counter whose value is computed at scrape time. */
void metrics_gauge_func(const char *name, const char *help, double (*fn)(void *), void *arg);
void metrics_counter_func(const char *name, const char *help, double (*fn)(void *), void *arg);

/* Child for the given label values, one per label name, in order. */
metric_child_t *metric_with(metric_t *m, ...);
metric_child_t *metric_withv(metric_t *m, const char *const *values);

void metric_inc(metric_child_t *c);
void metric_add(metric_child_t *c, double v); /* counters: v >= 0 */
void metric_set(metric_child_t *c, double v); /* gauges */
void metric_observe(metric_child_t *c, double v); /* histograms */
double metric_value(metric_child_t *c); /* counters/gauges; histograms: count */

/* Registers process_* metrics (cpu, rss, vsize, start time, fds, max fds) and strata build info. */
void metrics_register_process(const char *component);
/* Append every family in text format 0.0.4, families sorted by name, children by labels. */
void metrics_write(buf_t *out);
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
