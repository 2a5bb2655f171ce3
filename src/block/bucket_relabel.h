/*
 * bucket_relabel.h — block selection by external labels (--selector.relabel-config): a Prometheus
 * relabel_config list restricted to the actions that select blocks: `keep` and `drop`
 * (source_labels, separator, regex; RE2 syntax, fully anchored, as Prometheus) and `hashmod`
 * (target_label, modulus: md5 of the joined source values, as Prometheus, so blocks can be sharded
 * over several compactors or store gateways with hashmod + keep). A block is selected when every rule
 * lets it through. Source labels are the block's external labels plus __block_id.
 */
#ifndef STRATA_BLOCK_BUCKET_RELABEL_H
#define STRATA_BLOCK_BUCKET_RELABEL_H

#include <stdbool.h>
#include <stddef.h>

#include "base/err.h"
#include "model/labels.h"

typedef struct bucket_relabel bucket_relabel_t;

/* ERR_INVALID naming <what>:<line>:<column> for bad YAML, unknown keys, unsupported actions, bad
 * regexes. An empty document gives a selector that keeps everything. */
int bucket_relabel_parse(const char *yaml, size_t len, const char *what, bucket_relabel_t **out, err_t *err);
void bucket_relabel_free(bucket_relabel_t *r);
/* bucket_store_select_fn-compatible: arg is the bucket_relabel_t. */
bool bucket_relabel_keep(void *arg, const labels_t *ls);

#endif
