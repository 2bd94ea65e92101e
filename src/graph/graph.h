/* The operator graph every network is built on.
 *
 * Lifecycle (XNNPACK's, one level up): build once (nodes are appended in execution
 * order; weights are packed into XNNPACK operators as nodes are created), then for each
 * set of input shapes plan (shape inference, liveness, arena offsets, operator setup),
 * then run any number of times. Re-planning with other shapes (another image size,
 * batch 1 or 2) reuses the packed weights.
 *
 * Values are float32 tensors [n, h, w, c]: NHWC images, and sequences as [n, 1, tokens,
 * c]. The channel count is fixed when the graph is built; n, h and w come from the
 * inputs at plan time. All values live in one arena assigned by liveness, so the memory
 * of a layer is reused by later layers. */
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

/* Shapes of the inputs in sf_graph_input order (their c must match). */
sf_status sf_graph_plan(sf_graph *g, const sf_shape *input_shapes, size_t n_inputs,
                        pthreadpool_t pool, sf_diag *d);
/* Arena bytes of the current plan, and the sum of all value sizes (what a naive
 * allocator would need). */
size_t sf_graph_arena_bytes(const sf_graph *g);
size_t sf_graph_naive_bytes(const sf_graph *g);
sf_shape sf_graph_shape(const sf_graph *g, sf_vid v);
/* Buffer of a value in the current plan: write inputs here before run, read outputs
 * after. Valid until the next plan. */
float *sf_graph_data(sf_graph *g, sf_vid v);

/* cancel may be NULL; it is polled between nodes. Returns SF_ERR_CANCELLED when set. */
sf_status sf_graph_run(sf_graph *g, pthreadpool_t pool, const atomic_int *cancel, sf_diag *d);

/* Multiply-accumulates of the planned graph: conv/linear and attention matmuls. */
typedef struct sf_graph_stats {
  double macs_dense;     /* conv + linear */
  double macs_attention; /* QK^T and PV */
  size_t nodes;
  size_t weights_bytes;  /* packed f32 parameters */
} sf_graph_stats;
void sf_graph_get_stats(const sf_graph *g, sf_graph_stats *out);

/* Debug mode: before running, verifies that no two values alive at the same time
 * overlap in the arena (1 = overlap found, with d set). Runs in tests. */
int sf_graph_check_plan(const sf_graph *g, sf_diag *d);

#endif
