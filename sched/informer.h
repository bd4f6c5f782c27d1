/* informer — a watch-fed cache of the workload objects: list at a revision, then watch from
 * the next one; a compacted watch relists, a broken stream resumes from the last revision. */
#ifndef PLINTH_SCHED_INFORMER_H
#define PLINTH_SCHED_INFORMER_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "sched/objects.h"
#include "sched/store.h"

struct sched_informer;

/* Called for each change applied to the cache (after a relist, for every object).
 * old and cur are borrowed for the call (either may be NULL: create / delete). */
typedef void (*sched_informer_cb)(void *ud, enum sched_kind k, const char *key,
                                  const json_t *old, const json_t *cur);

/* Makes an informer over every key under prefix (usually "/registry/") on the store
 * handle s (borrowed; must outlive the informer). Nothing is read until the first poll.
 * cb may be NULL. Returns 0 or SCHED_ENOMEM. */
int sched_informer_new(struct sched_store *s, const char *prefix, sched_informer_cb cb,
                       void *ud, struct sched_informer **out);
void sched_informer_free(struct sched_informer *inf);

/* Brings the cache up to date: lists if it has never listed (or must relist after a
 * compaction), then applies watch events arriving within timeout_ms. Returns the number
 * of changes applied (>= 0), or a negative value when the store could not be reached
 * (the cache keeps its last state; the next poll retries). */
int sched_informer_poll(struct sched_informer *inf, int timeout_ms);

/* Makes the next poll relist (read everything at the latest revision). Callers use it
 * after a write whose outcome is unknown (the answer was lost): a fresh list shows it,
 * while waiting for its watch event could take forever if it never happened. */
void sched_informer_resync(struct sched_informer *inf);

/* True when the cache may be acted on: a list succeeded and no relist is pending (after a
 * compaction or sched_informer_resync the cache is stale until the relist succeeds). */
bool sched_informer_synced(const struct sched_informer *inf);
/* The store revision the cache reflects. */
int64_t sched_informer_rev(const struct sched_informer *inf);
/* How many times the informer has (re)listed; a relist after compaction increments it. */
int sched_informer_lists(const struct sched_informer *inf);

/* How many times the watch fell behind a compaction (each one causes a relist). */
int sched_informer_compactions(const struct sched_informer *inf);

/* Every cached object of a kind: a JSON object from store key to document (borrowed; valid
 * until the next poll). Documents carry metadata.resourceVersion. Never NULL. */
json_t *sched_informer_objects(const struct sched_informer *inf, enum sched_kind k);
/* One cached object, borrowed, or NULL. */
json_t *sched_informer_get(const struct sched_informer *inf, enum sched_kind k, const char *ns,
                           const char *name);
/* Keys under the prefix that are not workload objects (node heartbeats, ...): a JSON
 * object from key to {"value": string, "mod": revision}. Borrowed, never NULL. */
json_t *sched_informer_other(const struct sched_informer *inf);

#endif
