/* The operator graph every network is built on.
 *
 * Model and run state apart (whisper.cpp's context/state, llama2.c's weights/RunState): a
 * graph is built once (nodes appended in execution order; weights packed as nodes are
 * created) and is then immutable, shared by every run of the model. What a run needs lives
 * in the run's own state:
 *  - an sf_plan per graph: for given input shapes and thread count, the shapes of all values,
 *    their liveness and their offsets in a workspace. sf_graph_prepare replans only when the
 *    input shapes or the thread count change;
 *  - one sf_workspace shared by all the graphs a run state executes (they never run at once
 *    within one state), sized for the largest plan;
 *  - the cancel flag (sf_exec).
 * Two run states may execute the same graph at the same time from different threads.
 *
 * Values are float32 tensors [n, h, w, c]: NHWC images, and sequences as [n, 1, tokens,
 * c]. The channel count is fixed when the graph is built; n, h and w come from the
 * inputs at plan time. All values of a plan live in the workspace at offsets assigned by
 * liveness, so the memory of a layer is reused by later layers. */
#ifndef SF_GRAPH_GRAPH_H
#define SF_GRAPH_GRAPH_H

#include <pthreadpool.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/diag.h"

typedef int32_t sf_vid; /* value id; negative = none */

typedef struct sf_shape {
  size_t n, h, w, c;
} sf_shape;

static inline size_t sf_shape_numel(sf_shape s) { return s.n * s.h * s.w * s.c; }

typedef struct sf_graph sf_graph;
typedef struct sf_wsrc sf_wsrc;

sf_graph *sf_graph_create(const char *name);

/* Marks the conv / linear layers built while set as sensitive to quantisation (the first and
 * last convolutions, the time embedding): when the weight source asks for q8 (wsrc.h) they are
 * stored as f16. */
void sf_graph_set_sensitive(sf_graph *g, int sensitive);
void sf_graph_destroy(sf_graph *g);

/* Build errors are sticky: once a builder call fails, every later builder call returns
 * -1 and sf_graph_build_status reports the first failure. Model code can therefore chain
 * calls and check once. */
sf_status sf_graph_build_status(const sf_graph *g, sf_diag *d);

/* ---- building -------------------------------------------------------------------- */

sf_vid sf_graph_input(sf_graph *g, const char *name, size_t channels);
void sf_graph_mark_output(sf_graph *g, sf_vid v);
size_t sf_graph_channels(const sf_graph *g, sf_vid v);

/* Parameterised layers. `prefix` names the checkpoint tensors (prefix.weight,
 * prefix.bias) fetched from ws, which checks their shapes (PyTorch layouts). */
sf_vid sf_g_conv2d(sf_graph *g, sf_wsrc *ws, const char *prefix, sf_vid x, size_t out_ch,
                   size_t kernel, size_t stride, size_t pad, int bias);
sf_vid sf_g_linear(sf_graph *g, sf_wsrc *ws, const char *prefix, sf_vid x, size_t out_features,
                   int bias);
/* One linear whose weight is the row-concatenation of several checkpoint linears
 * (prefixes[i].weight, and prefixes[i].bias when bias), e.g. to_q/to_k/to_v: one GEMM
 * instead of three, whose output holds the parts side by side in the channels. */
sf_vid sf_g_linear_fused(sf_graph *g, sf_wsrc *ws, const char *const *prefixes, size_t count,
                         sf_vid x, size_t out_each, int bias);
sf_vid sf_g_groupnorm(sf_graph *g, sf_wsrc *ws, const char *prefix, sf_vid x, size_t groups,
                      float eps, int silu);
sf_vid sf_g_layernorm(sf_graph *g, sf_wsrc *ws, const char *prefix, sf_vid x, float eps);

/* Parameter-free ops. */
typedef enum sf_act { SF_ACT_SILU = 1, SF_ACT_GELU, SF_ACT_QUICK_GELU, SF_ACT_RELU } sf_act;
sf_vid sf_g_act(sf_graph *g, sf_vid x, sf_act act);
sf_vid sf_g_geglu(sf_graph *g, sf_vid x);          /* [.., 2c] -> [.., c] */
sf_vid sf_g_add(sf_graph *g, sf_vid a, sf_vid b);  /* same shape, or b is [n,1,1,c] */
sf_vid sf_g_scale(sf_graph *g, sf_vid x, float s);
sf_vid sf_g_tanh_scale(sf_graph *g, sf_vid x, float s); /* s * tanh(x / s), TAESD's clamp */
sf_vid sf_g_upsample2x(sf_graph *g, sf_vid x);     /* nearest */
sf_vid sf_g_concat(sf_graph *g, sf_vid a, sf_vid b); /* along channels */
/* Multi-head attention over the token axis (h*w tokens). q, k, v may be the same fused
 * value: q is channels [q_off, q_off+heads*head_dim) of q_src, likewise k and v. */
sf_vid sf_g_attention(sf_graph *g, sf_vid q_src, size_t q_off, sf_vid kv_src, size_t k_off,
                      size_t v_off, size_t heads, size_t head_dim, int causal);

/* ---- planning and running ---------------------------------------------------------- */

typedef struct sf_plan sf_plan;

sf_plan *sf_plan_create(void);
void sf_plan_destroy(sf_plan *pl);

/* One workspace of activations, shared by the graphs of a run state. */
typedef struct sf_workspace {
  void *base;
  size_t cap;
} sf_workspace;
/* Grows w to at least bytes (its contents are not kept); never shrinks. */
sf_status sf_workspace_reserve(sf_workspace *w, size_t bytes, sf_diag *d);
void sf_workspace_release(sf_workspace *w);
/* Gives the workspace's pages back to the system, keeping its size: its contents are lost, and
 * the pages come back (zeroed) as a run touches them. For the moments when nothing in it is
 * live and something large is about to be allocated (a low-memory build). */
void sf_workspace_drop_pages(sf_workspace *w);

/* What a run executes with: the thread pool (NULL: the calling thread), a cancel flag polled
 * between nodes (may be NULL), and the run state's workspace. */
typedef struct sf_exec {
  pthreadpool_t pool;
  const atomic_int *cancel;
  sf_workspace *ws;
} sf_exec;

/* Plans g for these input shapes (in sf_graph_input order; their c must match) and ex's
 * thread count, unless pl already holds that plan of g, and reserves the plan's workspace in
 * ex->ws. */
sf_status sf_graph_prepare(const sf_graph *g, sf_plan *pl, const sf_shape *input_shapes, size_t n_inputs,
                           const sf_exec *ex, sf_diag *d);
/* The same plan without a workspace (memory estimates: sf_plan_arena_bytes). */
sf_status sf_graph_plan(const sf_graph *g, sf_plan *pl, const sf_shape *input_shapes, size_t n_inputs, size_t threads,
                        sf_diag *d);
/* Buffer of a value in the prepared plan: write inputs here before run, read outputs after.
 * Valid until the workspace grows (the next prepare of any graph on it). */
float *sf_plan_data(const sf_plan *pl, const sf_exec *ex, sf_vid v);
sf_shape sf_plan_shape(const sf_plan *pl, sf_vid v);
/* Workspace bytes of the plan, and the sum of all value sizes (what a naive allocator would
 * need). 0 when nothing is planned. */
size_t sf_plan_arena_bytes(const sf_plan *pl);
size_t sf_plan_naive_bytes(const sf_plan *pl);
/* Runs the prepared plan; SF_ERR_CANCELLED as soon as ex->cancel is seen set. */
sf_status sf_graph_execute(sf_graph *g, const sf_plan *pl, const sf_exec *ex, sf_diag *d);

/* Multiply-accumulates of a plan of g: conv/linear and attention matmuls (0 without plan). */
typedef struct sf_graph_stats {
  double macs_dense;     /* conv + linear */
  double macs_attention; /* QK^T and PV */
  size_t nodes;
  size_t weights_bytes;  /* packed parameters */
} sf_graph_stats;
void sf_graph_get_stats(const sf_graph *g, const sf_plan *pl, sf_graph_stats *out);

/* ---- parameters, for pack files (io/pack.h) ---------------------------------------------- */

struct sf_pack_blob;
struct sf_igemm_weights;
/* Called for each parameter blob: b names it (network set, data pointing at the graph's own
 * bytes); layer is the GEMM layer a PANELS, BIAS or SCALE blob belongs to (NULL for tensors).
 * A status other than SF_OK stops the walk and is returned. */
typedef sf_status (*sf_graph_param_fn)(void *user, const struct sf_pack_blob *b, const struct sf_igemm_weights *layer);
/* Every parameter of g's nodes in build order: per GEMM layer its panels ("<prefix>.weight"),
 * padded bias ("<prefix>.bias") and q8 scales ("<prefix>.weight_scale"); per norm its scale and
 * shift ("<prefix>.weight", "<prefix>.bias"), as blobs of network (an sf_network bit).
 * SF_ERR_UNSUPPORTED for a layer on XNNPACK (its weights live in XNNPACK's operators: f32 weights
 * on a CPU without the library's GEMM kernels), SF_ERR_BAD_STATE for a dry graph. */
sf_status sf_graph_params(const sf_graph *g, unsigned network, sf_graph_param_fn fn, void *user, sf_diag *d);

/* Debug check: no two values alive at the same time overlap in the workspace (1 = overlap
 * found, with d set). Runs in tests. */
int sf_plan_check(const sf_graph *g, const sf_plan *pl, sf_diag *d);

#endif
