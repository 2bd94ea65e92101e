/* Graph internals shared by the builders, the planner, the runner and the node implementations.
 *
 * Layering inside graph/ (each file only uses those listed after it):
 *   plan.c, run.c        planning and running (graph.h's plan/run API)
 *   node_run.c           per-op scratch sizes and run dispatch
 *   params.c             the nodes' parameters as pack blobs (graph.h, sf_graph_params)
 *   *_node.c, norm_nodes.c builders of parameterised nodes (and the GEMM/XNNPACK node runs)
 *   graph.c              the graph itself: values, nodes, parameter-free builders, release
 *   ops/                 the kernels */
#ifndef SF_GRAPH_INTERNAL_H
#define SF_GRAPH_INTERNAL_H

#include <pthread.h>
#include <xnnpack.h>

#include "graph/graph.h"
#include "graph/ops/igemm.h"
#include "graph/wsrc.h"

typedef enum sf_op {
  SF_OP_CONV2D = 1,
  SF_OP_LINEAR,
  SF_OP_GROUPNORM,
  SF_OP_LAYERNORM,
  SF_OP_ACT,
  SF_OP_GEGLU,
  SF_OP_ADD,
  SF_OP_SCALE,
  SF_OP_TANH_SCALE,
  SF_OP_UPSAMPLE2X,
  SF_OP_CONCAT,
  SF_OP_ATTENTION
} sf_op;

/* A value as built: its channel count and where it comes from. Shapes, lifetimes and
 * places in the workspace belong to a plan (struct sf_plan). */
typedef struct sf_value {
  size_t c;
  int producer; /* node index, -1 for inputs */
  int is_input, is_output;
} sf_value;

/* A conv node's geometry; pad is what the planner's (symmetric) shape inference uses, pad_top
 * and pad_left where the first tap reads (they differ from pad only for asymmetric padding). */
typedef struct sf_conv_params {
  size_t kernel, stride, pad, pad_top, pad_left;
} sf_conv_params;

typedef struct sf_node {
  sf_op op;
  sf_vid in[2];
  size_t n_in;
  sf_vid out;
  /* conv / linear on XNNPACK (xop, or panels): weights packed at build. An XNNPACK operator
   * holds the pointers and shapes of its last setup, so a graph with such nodes sets them up
   * at every run, under the graph's xnn_lock (graph/run.c).
   * Large layers are lowered as output-channel panels (n_panels > 0; xop is then NULL): one
   * operator per slice of panel_oc output channels, writing into the shared output through
   * its channel stride, so each slice's packed weights stay in cache while every pixel/row
   * streams past them. panels_in_tasks (chosen at setup from the pool size): each panel runs
   * whole on one thread, all panels in one parallel dispatch; else panels run one after
   * another, each over the pool. */
  xnn_operator_t xop;
  xnn_operator_t *panels;
  size_t n_panels, panel_oc;
  int panels_in_tasks;
  /* conv / linear on the library's own indirect GEMM (graph/ops/igemm.h): no setup, no state. */
  sf_igemm_weights *ig;
  const float *gamma, *beta; /* norms */
  int params_external;  /* gamma and beta belong to a mapped pack (not freed) */
  char *name;           /* the layer's checkpoint prefix (GEMM and norm nodes), for packs */
  union {
    sf_conv_params conv;
    struct { size_t groups; float eps; int silu; } gn;
    struct { float eps; } ln;
    struct { size_t q_off, k_off, v_off, heads, head_dim; int causal; } attn;
    sf_act act;
    float scale;
  } p;
} sf_node;

/* Immutable once built, except the XNNPACK operators' setup state (see sf_node.xop). */
struct sf_graph {
  char name[48];
  uint64_t serial;      /* unique per graph ever created: what a plan is keyed on */
  sf_diag build;        /* first build error, sticky */
  sf_value *values;
  size_t n_values, cap_values;
  sf_node *nodes;
  size_t n_nodes, cap_nodes;
  int *inputs;
  size_t n_inputs;
  size_t weights_bytes;
  size_t n_xnn;         /* nodes on XNNPACK operators */
  pthread_mutex_t xnn_lock;
  int xnnpack_gemm;     /* conv / linear on XNNPACK even where the own GEMM is available */
  int sensitive;        /* layers being built now are sensitive to quantisation */
  int dry;              /* built from a dry weight source (wsrc.h): planned, never run */
};

/* The storage type of a conv / linear layer whose weight tensor is `tensor`. */
sf_wtype sf_graph_layer_wtype(const sf_graph *g, const sf_wsrc *ws, const char *tensor);

/* One plan of one graph: the shapes of every value for given input shapes and thread count,
 * each value's and each node scratch's place in the workspace. Owned by a run state. */
enum { SF_PLAN_MAX_INPUTS = 4 };
struct sf_plan {
  uint64_t serial;      /* of the graph planned (0: nothing planned) */
  size_t n_values, n_nodes, cap_values, cap_nodes;
  sf_shape *shapes;     /* per value */
  size_t *offsets;      /* per value */
  int *first, *last;    /* per value: liveness in node indices */
  int *over;            /* per value: the input value whose buffer it is computed over (in place:
                         * the input dies at that node), or -1 */
  size_t *scratch_bytes, *scratch_offsets; /* per node */
  sf_shape inputs[SF_PLAN_MAX_INPUTS];
  size_t n_inputs, threads;
  size_t arena_bytes, naive_bytes;
};

/* Whether conv / linear nodes of weight type t built from ws use the library's indirect GEMM:
 * always for f16 and q8 (XNNPACK takes f32 only), for f32 unless the graph or the weight source
 * asks for XNNPACK (SF_PARAM_GEMM_BACKEND). On CPUs without SIMD kernels the portable ones run:
 * slower than XNNPACK, but the same bits as every other CPU. */
static inline int sf_graph_uses_igemm_for(const sf_graph *g, const sf_wsrc *ws, sf_wtype t) {
  return t != SF_WTYPE_F32 || !(g->xnnpack_gemm || (ws != NULL && sf_wsrc_xnnpack_gemm(ws)));
}

sf_status sf_graph_fail(sf_graph *g, sf_status s, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int sf_graph_valid(const sf_graph *g, sf_vid v);
/* Appends a node producing a new value with out_channels; NULL after a build error. */
sf_node *sf_graph_add_node(sf_graph *g, sf_op op, const sf_vid *in, size_t n_in, size_t out_channels);

static inline size_t sf_pool_threads(pthreadpool_t pool) { return pool ? pthreadpool_get_threads_count(pool) : 1; }

static inline float *sf_plan_ptr(const sf_plan *pl, void *arena, sf_vid v) {
  return (float *)((char *)arena + pl->offsets[v]);
}
static inline float *sf_node_in(const sf_plan *pl, void *arena, const sf_node *n, size_t i) {
  return sf_plan_ptr(pl, arena, n->in[i]);
}
static inline float *sf_node_out(const sf_plan *pl, void *arena, const sf_node *n) {
  return sf_plan_ptr(pl, arena, n->out);
}

/* Per-op behaviour (graph/node_run.c dispatches; the GEMM and XNNPACK nodes live in their own
 * files). */
size_t sf_node_scratch_bytes(const sf_graph *g, const sf_plan *pl, const sf_node *n, size_t threads);
sf_status sf_node_run(const sf_graph *g, const sf_plan *pl, void *arena, size_t node, pthreadpool_t pool,
                      sf_diag *d);
/* Frees a node's weights and operators (graph.c, at destroy). */
void sf_node_release(sf_node *n);

/* A conv's weights, in PyTorch's OIHW layout (ws's staging slot 0) or, with to_ohwi, in
 * XNNPACK's OHWI layout (slot 1); staged: not to be freed. And its bias (malloc'd, or NULL
 * without bias). 0 after failing the graph. */
int sf_conv_fetch(sf_graph *g, sf_wsrc *ws, const char *prefix, size_t out_ch, size_t in_ch, size_t kernel,
                  int bias, int to_ohwi, float **w, float **b);

/* ---- XNNPACK nodes (graph/xnn_node.c) ---- */
/* The node of a conv / linear whose n_panels XNNPACK operators were just created (xs: the
 * status of the creates, stopped at the first failure). On failure the operators are
 * deleted, the graph failed (naming create_fn and prefix) and NULL returned. Takes ops. */
sf_node *sf_xnn_node_add(sf_graph *g, sf_op op, sf_vid x, size_t out_ch, xnn_operator_t *ops, size_t n_panels,
                         size_t panel_oc, enum xnn_status xs, const char *create_fn, const char *prefix);
/* Binds an XNNPACK node's operators to this plan's shapes and workspace (caller holds
 * g->xnn_lock). */
sf_status sf_xnn_setup(const sf_graph *g, const sf_plan *pl, void *arena, sf_node *n, pthreadpool_t pool,
                       sf_diag *d);
sf_status sf_xnn_run(const sf_graph *g, sf_node *n, pthreadpool_t pool, sf_diag *d);

/* ---- own-GEMM nodes (graph/igemm_node.c) ---- */
/* A conv (conv != NULL) / linear node on the library's indirect GEMM, with weights w
 * [out_ch][cin][taps] (OIHW for a conv; taps 1 for a linear layer) packed here; takes bias b
 * (malloc'd, NULL: none), stored as type, packed over pool (NULL: the calling thread; the
 * loader's, see sf_wsrc_pool). Returns the node's output, or -1 after failing the graph. */
sf_vid sf_igemm_node_add(sf_graph *g, sf_vid x, size_t out_ch, const float *w, float *b, size_t cin, size_t taps,
                         const sf_conv_params *conv, const char *prefix, sf_wtype type, pthreadpool_t pool);
sf_status sf_igemm_node_run(const sf_plan *pl, void *arena, const sf_node *n, pthreadpool_t pool);
/* The same node with its weights prepacked in ws, a pack source (graph/wsrc.h), used in place. */
sf_vid sf_igemm_node_add_packed(sf_graph *g, sf_wsrc *ws, sf_vid x, size_t out_ch, size_t cin, size_t taps,
                                const sf_conv_params *conv, const char *prefix, sf_wtype type, int bias);

/* ---- dry builds (graph/dry_node.c) ---- */
/* The conv (conv != NULL) / linear node a layer of weights [out_ch][cin][taps] of type would be,
 * counting the bytes its packed weights would take, with none packed; marks the graph dry. */
sf_vid sf_dry_layer_add(sf_graph *g, const sf_wsrc *ws, sf_vid x, size_t out_ch, size_t cin, size_t taps, int bias,
                        const sf_conv_params *conv, sf_wtype type);

#endif
