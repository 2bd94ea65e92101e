/* Graph internals shared by the builder, the planner and the node implementations. */
#ifndef SF_GRAPH_INTERNAL_H
#define SF_GRAPH_INTERNAL_H

#include <xnnpack.h>

#include "graph/graph.h"
#include "graph/ops/igemm.h"

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

typedef struct sf_value {
  size_t c;
  sf_shape shape;       /* of the current plan */
  int producer;         /* node index, -1 for inputs */
  int is_input, is_output;
  int first, last;      /* liveness in node indices */
  size_t offset;        /* in the arena */
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
  size_t scratch_bytes, scratch_offset;
  xnn_operator_t xop;   /* conv / linear: weights packed at build */
  /* conv / linear lowered as output-channel panels (n_panels > 0; xop is then NULL): one
   * XNNPACK operator per slice of panel_oc output channels, writing into the shared output
   * through its channel stride, so each slice's packed weights stay in cache while every
   * pixel/row streams past them. Released by sf_xnn_release. panels_in_tasks (chosen at
   * setup from the pool size): each panel runs whole on one thread, all panels in one
   * parallel dispatch; else panels run one after another, each over the pool. */
  xnn_operator_t *panels;
  size_t n_panels, panel_oc;
  int panels_in_tasks;
  /* conv / linear on the library's own indirect GEMM (graph/ops/igemm.h) instead of XNNPACK,
   * when the CPU runs its SIMD microkernels; xop and panels are then unused. */
  sf_igemm_weights *ig;
  float *gamma, *beta;  /* norms */
  union {
    sf_conv_params conv;
    struct { size_t groups; float eps; int silu; } gn;
    struct { float eps; } ln;
    struct { size_t q_off, k_off, v_off, heads, head_dim; int causal; } attn;
    sf_act act;
    float scale;
  } p;
} sf_node;

struct sf_graph {
  char name[48];
  sf_diag build;        /* first build error, sticky */
  sf_value *values;
  size_t n_values, cap_values;
  sf_node *nodes;
  size_t n_nodes, cap_nodes;
  int *inputs;
  size_t n_inputs;
  void *arena;
  size_t arena_cap, arena_bytes, naive_bytes;
  size_t weights_bytes;
  int planned;
  int xnnpack_gemm;     /* conv / linear on XNNPACK even where the own GEMM is available */
};

/* Whether conv / linear nodes added from now on use the library's indirect GEMM. */
static inline int sf_graph_uses_igemm(const sf_graph *g) { return !g->xnnpack_gemm && sf_igemm_available(); }

sf_status sf_graph_fail(sf_graph *g, sf_status s, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int sf_graph_valid(const sf_graph *g, sf_vid v);
/* Appends a node producing a new value with out_channels; NULL after a build error. */
sf_node *sf_graph_add_node(sf_graph *g, sf_op op, const sf_vid *in, size_t n_in, size_t out_channels);
void sf_plan_buffer(const sf_graph *g, size_t i, size_t *off, size_t *bytes, int *first, int *last);

static inline float *sf_node_in(sf_graph *g, const sf_node *n, size_t i) {
  return (float *)((char *)g->arena + g->values[n->in[i]].offset);
}
static inline float *sf_node_out(sf_graph *g, const sf_node *n) {
  return (float *)((char *)g->arena + g->values[n->out].offset);
}

/* Per-op behaviour (graph/nodes.c dispatches; conv and linear live in their own files). */
size_t sf_node_scratch_bytes(const sf_graph *g, const sf_node *n, pthreadpool_t pool);
sf_status sf_node_setup(sf_graph *g, sf_node *n, pthreadpool_t pool, sf_diag *d);
sf_status sf_node_run(sf_graph *g, sf_node *n, pthreadpool_t pool, sf_diag *d);
void sf_node_release(sf_node *n);

/* A conv's weights, in PyTorch's OIHW layout (ws's staging slot 0) or, with to_ohwi, in
 * XNNPACK's OHWI layout (slot 1); staged: not to be freed. And its bias (malloc'd, or NULL
 * without bias). 0 after failing the graph. */
int sf_conv_fetch(sf_graph *g, sf_wsrc *ws, const char *prefix, size_t out_ch, size_t in_ch, size_t kernel,
                  int bias, int to_ohwi, float **w, float **b);
sf_status sf_conv2d_setup(sf_graph *g, sf_node *n, pthreadpool_t pool, sf_diag *d);
sf_status sf_linear_setup(sf_graph *g, sf_node *n, pthreadpool_t pool, sf_diag *d);
sf_status sf_xnn_run(sf_graph *g, sf_node *n, pthreadpool_t pool, sf_diag *d);
/* The node of a conv / linear whose n_panels XNNPACK operators were just created (xs: the
 * status of the creates, stopped at the first failure). On failure the operators are
 * deleted, the graph failed (naming create_fn and prefix) and NULL returned. Takes ops. */
sf_node *sf_xnn_node_add(sf_graph *g, sf_op op, sf_vid x, size_t out_ch, xnn_operator_t *ops, size_t n_panels,
                         size_t panel_oc, enum xnn_status xs, const char *create_fn, const char *prefix);
/* A conv (conv != NULL) / linear node on the library's indirect GEMM, with weights w
 * [out_ch][cin][taps] (OIHW for a conv; taps 1 for a linear layer) packed here; takes bias b
 * (malloc'd, NULL: none). Returns the node's output, or -1 after failing the graph. */
sf_vid sf_igemm_node_add(sf_graph *g, sf_vid x, size_t out_ch, const float *w, float *b, size_t cin, size_t taps,
                         const sf_conv_params *conv, const char *prefix);
sf_status sf_igemm_node_run(sf_graph *g, sf_node *n, pthreadpool_t pool);
/* Deletes the panel operators of a conv / linear node (a no-op for other nodes). */
void sf_xnn_release(sf_node *n);

#endif
