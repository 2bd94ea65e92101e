/* Where a network's parameters come from: a checkpoint (a component's safetensors,
 * converted to f32 on the fly, shapes checked, every tensor accounted for) or seeded
 * random values of the same shapes (to benchmark real architectures without weights). */
#ifndef SF_GRAPH_WSRC_H
#define SF_GRAPH_WSRC_H

#include <pthreadpool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/diag.h"

struct sf_weights;

typedef enum sf_init {
  SF_INIT_FAN_IN = 0, /* uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)), PyTorch's default */
  SF_INIT_ONES,       /* norm scales */
  SF_INIT_ZEROS       /* norm shifts */
} sf_init;

typedef struct sf_wsrc sf_wsrc;

sf_wsrc *sf_wsrc_from_weights(struct sf_weights *w, const char *component);
sf_wsrc *sf_wsrc_random(uint64_t seed, const char *component);
void sf_wsrc_destroy(sf_wsrc *ws);

/* A malloc'd f32 copy of tensor `name` (PyTorch layout), which must have exactly the
 * given shape. NULL on failure; the first failure is kept (see sf_wsrc_status). The
 * caller frees the result once packed. fan_in is used by random init only. */
float *sf_wsrc_fetch(sf_wsrc *ws, const char *name, int ndim, const int64_t *shape,
                     sf_init init, size_t fan_in);
/* sf_wsrc_fetch into dst (room for the shape's values) instead of a new allocation;
 * 1 on success, 0 on failure (kept as for sf_wsrc_fetch). */
int sf_wsrc_fetch_into(sf_wsrc *ws, const char *name, int ndim, const int64_t *shape, sf_init init,
                       size_t fan_in, float *dst);
/* A buffer of at least n floats owned by ws (slot 0 .. SF_WSRC_STAGES-1), valid until the
 * next call for the same slot or sf_wsrc_destroy; its contents are not kept when it grows.
 * Builders stage weights there on their way into packed form: the pages of one staging
 * buffer are faulted in once per network instead of once per tensor (which made page
 * faults a third of load time). NULL on failure (kept as out of memory). */
enum { SF_WSRC_STAGES = 2 };
float *sf_wsrc_stage(sf_wsrc *ws, int slot, size_t n);
/* Whether a checkpoint has the tensor (random sources answer `dflt`): lets builders
 * follow optional parts of an architecture (e.g. a 1x1 shortcut conv). */
int sf_wsrc_has(const sf_wsrc *ws, const char *name, int dflt);
int sf_wsrc_is_random(const sf_wsrc *ws);
/* First failure of any fetch, else (when check_unused) the first checkpoint tensor no
 * fetch asked for: a checkpoint that does not match the architecture is an error. */
sf_status sf_wsrc_status(const sf_wsrc *ws, int check_unused, sf_diag *d);
/* How the conv / linear layers built from this source store their weights (default
 * SF_WEIGHTS_AS_STORED). */
typedef enum sf_weight_policy {
  SF_WEIGHTS_AS_STORED = 0, /* f16 for tensors the checkpoint holds as F16 (exact), else f32 */
  SF_WEIGHTS_FORCE_F32,
  SF_WEIGHTS_FORCE_F16,     /* f32 weights rounded to nearest even */
  SF_WEIGHTS_FORCE_Q8       /* int8 per output channel; "sensitive" layers f16 (graph.h) */
} sf_weight_policy;
void sf_wsrc_set_weight_policy(sf_wsrc *ws, sf_weight_policy policy);
sf_weight_policy sf_wsrc_weight_policy(const sf_wsrc *ws);

/* Whether a checkpoint stores tensor name as IEEE half (F16): such weights are exactly
 * representable as f16 panels. 0 for random sources and for tensors it lacks. */
int sf_wsrc_is_f16(const sf_wsrc *ws, const char *name);
/* The thread pool fetches fill tensors on (random values, dtype conversion) and the layers
 * built from this source pack their weights on; NULL (the default): the calling thread. The
 * values do not depend on it. The caller keeps the pool alive (and unchanged) while it is set. */
void sf_wsrc_set_pool(sf_wsrc *ws, pthreadpool_t pool);
pthreadpool_t sf_wsrc_pool(const sf_wsrc *ws);
/* Parameters handed out so far. */
uint64_t sf_wsrc_param_count(const sf_wsrc *ws);

#endif
