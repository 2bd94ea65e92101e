/* Where a network's parameters come from: a checkpoint (a component's safetensors,
 * converted to f32 on the fly, shapes checked, every tensor accounted for), seeded
 * random values of the same shapes (to benchmark real architectures without weights), or a pack
 * file (io/pack.h): parameters prepacked by an earlier load, used in place from its mapping. */
#ifndef SF_GRAPH_WSRC_H
#define SF_GRAPH_WSRC_H

#include <pthreadpool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/diag.h"
#include "graph/ops/igemm.h"

struct sf_weights;
struct sf_pack;

typedef enum sf_init {
  SF_INIT_FAN_IN = 0, /* uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)), PyTorch's default */
  SF_INIT_ONES,       /* norm scales */
  SF_INIT_ZEROS       /* norm shifts */
} sf_init;

typedef struct sf_wsrc sf_wsrc;

sf_wsrc *sf_wsrc_from_weights(struct sf_weights *w, const char *component);
sf_wsrc *sf_wsrc_random(uint64_t seed, const char *component);
/* The blobs of a pack for the networks in `networks` (sf_network bits: a VAE source serves its
 * decoder and encoder), with GEMM panels laid out for isa (checked to run here by the caller). The
 * pack must outlive the networks built from it. Builders of pack sources ask for whole layers
 * (sf_wsrc_pack_gemm) and tensors in place (sf_wsrc_pack_tensor) instead of fetching and packing;
 * sf_wsrc_has and sf_wsrc_is_f16 answer from the pack's blobs (a layer's panels are named after its
 * weight tensor), so the builders follow the same architecture and weight types as the load that
 * wrote it. */
sf_wsrc *sf_wsrc_from_pack(const struct sf_pack *pk, unsigned networks, sf_igemm_isa isa, const char *component);
void sf_wsrc_destroy(sf_wsrc *ws);
int sf_wsrc_is_pack(const sf_wsrc *ws);
/* Pack sources: the prepacked GEMM weights of layer `layer` (blobs "<layer>.weight" panels,
 * "<layer>.bias" and for q8 "<layer>.weight_scale"), which must be n output channels of k = cin *
 * taps values stored as type, in the source's panel layout; *pw then points into the mapping
 * (pw->external: nothing to free). bias: whether the layer has one (for the parameter count).
 * 0 on failure (kept, naming the blob and what the architecture needs). */
int sf_wsrc_pack_gemm(sf_wsrc *ws, const char *layer, size_t n, size_t cin, size_t taps, sf_wtype type, int bias,
                      sf_igemm_weights *pw);
/* Pack sources: tensor name (a TENSOR blob) in place, which must have exactly this shape and be
 * f32 (half 0) or IEEE half (half 1). NULL on failure (kept). */
const void *sf_wsrc_pack_tensor(sf_wsrc *ws, const char *name, int ndim, const int64_t *shape, int half);

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
/* First failure of any fetch, else (when check_unused) the first checkpoint tensor (pack blob of
 * the source's networks) no fetch asked for: a checkpoint that does not match the architecture
 * is an error. */
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
/* Whether the f32 conv / linear layers built from this source go to XNNPACK instead of the
 * library's GEMM (SF_PARAM_GEMM_BACKEND; default 0). Pack sources ignore it. */
void sf_wsrc_set_xnnpack_gemm(sf_wsrc *ws, int on);
int sf_wsrc_xnnpack_gemm(const sf_wsrc *ws);

/* Whether a checkpoint stores tensor name as IEEE half (F16): such weights are exactly
 * representable as f16 panels. 0 for random sources and for tensors it lacks. */
int sf_wsrc_is_f16(const sf_wsrc *ws, const char *name);
/* Dry mode (inspect-only loads, memory estimates): the architecture is built and every tensor
 * it asks for is checked against the checkpoint, but no value is read, converted or packed.
 * Every problem goes to `problems` (missing, misshapen or non-float tensors, and the tensors no
 * layer asked for, at sf_wsrc_status(.., 1, ..)) and the build goes on, so one inspection
 * reports them all; fetches succeed with buffers of zeros (norm scales, biases). Builders must not
 * pack in dry mode: they call sf_wsrc_check instead of staging and fetching layer weights. */
void sf_wsrc_set_dry(sf_wsrc *ws, sf_problems *problems);
int sf_wsrc_is_dry(const sf_wsrc *ws);
/* Checks tensor name as a fetch would, without reading it (counted as used and as parameters).
 * 1 when the build may go on (in dry mode also after a recorded problem). */
int sf_wsrc_check(sf_wsrc *ws, const char *name, int ndim, const int64_t *shape);
/* What a real build would stage in slot (n floats): dry builders note it instead of staging, so
 * sf_wsrc_stage_bytes is the same for dry and real builds. */
void sf_wsrc_note_stage(sf_wsrc *ws, int slot, size_t n);
/* Bytes of the largest staging of each slot so far (what a build holds besides its weights). */
size_t sf_wsrc_stage_bytes(const sf_wsrc *ws);
/* The thread pool fetches fill tensors on (random values, dtype conversion) and the layers
 * built from this source pack their weights on; NULL (the default): the calling thread. The
 * values do not depend on it. The caller keeps the pool alive (and unchanged) while it is set. */
void sf_wsrc_set_pool(sf_wsrc *ws, pthreadpool_t pool);
pthreadpool_t sf_wsrc_pool(const sf_wsrc *ws);
/* A hook that changes tensors as they are fetched (LoRA merging, lora/lora.h): called with every
 * tensor sf_wsrc_fetch / sf_wsrc_fetch_into read from a checkpoint (not in dry mode), its values
 * in PyTorch layout, on the source's pool. Returns 1, or 0 with d set (the fetch then fails with
 * that status). user outlives the source. */
typedef int (*sf_wsrc_merge_fn)(void *user, const char *name, float *values, int ndim, const int64_t *shape,
                                pthreadpool_t pool, sf_diag *d);
void sf_wsrc_set_merge(sf_wsrc *ws, sf_wsrc_merge_fn fn, void *user);
/* Parameters handed out so far. */
uint64_t sf_wsrc_param_count(const sf_wsrc *ws);

#endif
