/*
 * blockview.h — the bucket block viewer's API (reference thanos.md §11.3), served with the UI's
 * /blocks and /loaded pages by `strata tools bucket web`, `strata store` and `strata compact`:
 *
 *   GET  /api/v1/blocks?view=global|loaded[&refresh=true]
 *        {"status":"success","data":{"blocks":[<meta.json>...],"label":"<--label>","refreshedAt":"<RFC3339>",
 *         "err":null|"<msg>","markers":{"<ULID>":{"deletion":<unix s>,"no_compact":<unix s>}}}}
 *        global: every block of the bucket with a readable meta.json (a directory without one is a
 *        partial upload and left out; a corrupt one is logged and left out); loaded: those
 *        of them the process has loaded (the loaded callback), or all when it has none. "markers" is
 *        Strata's addition (the viewer hatches marked blocks).
 *   POST /api/v1/blocks/mark   form id=<ULID>&action=DELETION|NO_COMPACTION&detail=<text>
 *        writes <ULID>/deletion-mark.json or no-compact-mark.json (Thanos's format, reason "manual");
 *        an existing mark is kept. bad_data for a missing or invalid id, an unknown action, a block
 *        the bucket does not hold, or when admin operations are disabled.
 *
 * The global list is fetched at most once per refresh interval (and again after a mark, or when asked
 * with refresh=true), on a worker thread; requests in between get the cached answer.
 */
#ifndef STRATA_UI_BLOCKVIEW_H
#define STRATA_UI_BLOCKVIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "net/http.h"
#include "objstore/bucket.h"

typedef struct blockview_config {
	bucket_t *bkt;       /* not owned */
	bool admin_disabled; /* --disable-admin-operations */
	const char *label;   /* --label: the external label whose value titles a timeline row; may be NULL */
	int64_t refresh_ms;  /* 0 = 1m */
	/* ULIDs of the blocks this process has loaded (allocated in a); NULL: "loaded" = "global". */
	size_t (*loaded)(void *arg, arena_t *a, const char ***ids);
	void *loaded_arg;
} blockview_config_t;

typedef struct blockview blockview_t;

blockview_t *blockview_new(http_server_t *srv, const blockview_config_t *cfg);
void blockview_free(blockview_t *bv); /* NULL ok; after the server is freed */

#endif
