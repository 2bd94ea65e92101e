/* The graph itself: values, nodes, the parameter-free builders, and releasing what nodes
 * hold. Planning is in plan.c, running in run.c. */
#include "graph/graph.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xnnpack.h>

#include "graph/graph_internal.h"
#include "graph/wsrc.h"

/* ---- construction ------------------------------------------------------------------ */

static atomic_uint_fast64_t graph_serials = 1;

sf_graph *sf_graph_create(const char *name) {
  sf_graph *g = calloc(1, sizeof *g);
  if (g == NULL) return NULL;
  if (pthread_mutex_init(&g->xnn_lock, NULL) != 0) {
    free(g);
    return NULL;
  }
  g->serial = atomic_fetch_add(&graph_serials, 1);
  snprintf(g->name, sizeof g->name, "%s", name ? name : "graph");
  return g;
}

void sf_graph_set_sensitive(sf_graph *g, int sensitive) { g->sensitive = sensitive; }

sf_wtype sf_graph_layer_wtype(const sf_graph *g, const sf_wsrc *ws, const char *tensor) {
  switch (sf_wsrc_weight_policy(ws)) {
    case SF_WEIGHTS_FORCE_F32: return SF_WTYPE_F32;
    case SF_WEIGHTS_FORCE_F16: return SF_WTYPE_F16;
    case SF_WEIGHTS_FORCE_Q8: return g->sensitive ? SF_WTYPE_F16 : SF_WTYPE_Q8;
    case SF_WEIGHTS_AS_STORED: break;
  }
  return sf_wsrc_is_f16(ws, tensor) ? SF_WTYPE_F16 : SF_WTYPE_F32;
}

void sf_node_release(sf_node *n) {
  if (n->xop) xnn_delete_operator(n->xop);
  for (size_t p = 0; p < n->n_panels; p++)
    if (n->panels[p]) xnn_delete_operator(n->panels[p]);
  free(n->panels);
  n->panels = NULL;
  n->n_panels = 0;
  if (n->ig) sf_igemm_free(n->ig);
  free(n->ig);
  if (!n->params_external) {
    free((void *)n->gamma);
    free((void *)n->beta);
  }
  free(n->name);
  n->ig = NULL;
  n->xop = NULL;
  n->gamma = n->beta = NULL;
  n->name = NULL;
}

void sf_graph_destroy(sf_graph *g) {
  if (g == NULL) return;
  for (size_t i = 0; i < g->n_nodes; i++) sf_node_release(&g->nodes[i]);
  free(g->nodes);
  free(g->values);
  free(g->inputs);
  pthread_mutex_destroy(&g->xnn_lock);
  free(g);
}

sf_status sf_graph_fail(sf_graph *g, sf_status s, const char *fmt, ...) {
  if (g->build.status == SF_OK) {
    va_list ap;
    va_start(ap, fmt);
    sf_diag_vset(&g->build, s, fmt, ap);
    va_end(ap);
    sf_diag_prefix(&g->build, "%s: ", g->name);
  }
  return s;
}

sf_status sf_graph_build_status(const sf_graph *g, sf_diag *d) {
  if (g->build.status != SF_OK) return sf_diag_set(d, g->build.status, "%s", g->build.msg);
  return SF_OK;
}

static sf_vid new_value(sf_graph *g, size_t channels) {
  if (g->n_values == g->cap_values) {
    size_t cap = g->cap_values ? g->cap_values * 2 : 64;
    sf_value *v = realloc(g->values, cap * sizeof *v);
    if (v == NULL) {
      sf_graph_fail(g, SF_ERR_OUT_OF_MEMORY, "out of memory adding a value");
      return -1;
    }
    g->values = v;
    g->cap_values = cap;
  }
  sf_value *v = &g->values[g->n_values];
  memset(v, 0, sizeof *v);
  v->c = channels;
  v->producer = -1;
  return (sf_vid)g->n_values++;
}

int sf_graph_valid(const sf_graph *g, sf_vid v) {
  return g->build.status == SF_OK && v >= 0 && (size_t)v < g->n_values;
}

size_t sf_graph_channels(const sf_graph *g, sf_vid v) {
  return v >= 0 && (size_t)v < g->n_values ? g->values[v].c : 0;
}

sf_vid sf_graph_input(sf_graph *g, const char *name, size_t channels) {
  if (g->build.status != SF_OK) return -1;
  int *inputs = realloc(g->inputs, (g->n_inputs + 1) * sizeof *inputs);
  if (inputs == NULL) {
    sf_graph_fail(g, SF_ERR_OUT_OF_MEMORY, "out of memory adding input %s", name);
    return -1;
  }
  g->inputs = inputs;
  sf_vid v = new_value(g, channels);
  if (v < 0) return -1;
  g->values[v].is_input = 1;
  g->inputs[g->n_inputs++] = v;
  return v;
}

void sf_graph_mark_output(sf_graph *g, sf_vid v) {
  if (sf_graph_valid(g, v)) g->values[v].is_output = 1;
}

sf_node *sf_graph_add_node(sf_graph *g, sf_op op, const sf_vid *in, size_t n_in, size_t out_channels) {
  if (g->build.status != SF_OK) return NULL;
  for (size_t i = 0; i < n_in; i++)
    if (!sf_graph_valid(g, in[i])) {
      sf_graph_fail(g, SF_ERR_INTERNAL, "node input %zu is not a value", i);
      return NULL;
    }
  if (g->n_nodes == g->cap_nodes) {
    size_t cap = g->cap_nodes ? g->cap_nodes * 2 : 64;
    sf_node *n = realloc(g->nodes, cap * sizeof *n);
    if (n == NULL) {
      sf_graph_fail(g, SF_ERR_OUT_OF_MEMORY, "out of memory adding a node");
      return NULL;
    }
    g->nodes = n;
    g->cap_nodes = cap;
  }
  sf_vid out = new_value(g, out_channels);
  if (out < 0) return NULL;
  sf_node *node = &g->nodes[g->n_nodes];
  memset(node, 0, sizeof *node);
  node->op = op;
  node->n_in = n_in;
  for (size_t i = 0; i < n_in; i++) node->in[i] = in[i];
  node->out = out;
  g->values[out].producer = (int)g->n_nodes;
  g->n_nodes++;
  return node;
}

/* ---- parameter-free builders ------------------------------------------------------- */

sf_vid sf_g_act(sf_graph *g, sf_vid x, sf_act act) {
  sf_node *n = sf_graph_add_node(g, SF_OP_ACT, &x, 1, sf_graph_channels(g, x));
  if (n == NULL) return -1;
  n->p.act = act;
  return n->out;
}

sf_vid sf_g_geglu(sf_graph *g, sf_vid x) {
  size_t c = sf_graph_channels(g, x);
  if (c % 2 != 0) {
    sf_graph_fail(g, SF_ERR_BAD_MODEL, "GEGLU input has an odd channel count %zu", c);
    return -1;
  }
  sf_node *n = sf_graph_add_node(g, SF_OP_GEGLU, &x, 1, c / 2);
  return n ? n->out : -1;
}

sf_vid sf_g_add(sf_graph *g, sf_vid a, sf_vid b) {
  if (sf_graph_channels(g, a) != sf_graph_channels(g, b)) {
    sf_graph_fail(g, SF_ERR_BAD_MODEL, "add of %zu and %zu channels", sf_graph_channels(g, a),
                  sf_graph_channels(g, b));
    return -1;
  }
  sf_vid in[2] = {a, b};
  sf_node *n = sf_graph_add_node(g, SF_OP_ADD, in, 2, sf_graph_channels(g, a));
  return n ? n->out : -1;
}

sf_vid sf_g_scale(sf_graph *g, sf_vid x, float s) {
  sf_node *n = sf_graph_add_node(g, SF_OP_SCALE, &x, 1, sf_graph_channels(g, x));
  if (n == NULL) return -1;
  n->p.scale = s;
  return n->out;
}

sf_vid sf_g_tanh_scale(sf_graph *g, sf_vid x, float s) {
  sf_node *n = sf_graph_add_node(g, SF_OP_TANH_SCALE, &x, 1, sf_graph_channels(g, x));
  if (n == NULL) return -1;
  n->p.scale = s;
  return n->out;
}

sf_vid sf_g_upsample2x(sf_graph *g, sf_vid x) {
  sf_node *n = sf_graph_add_node(g, SF_OP_UPSAMPLE2X, &x, 1, sf_graph_channels(g, x));
  return n ? n->out : -1;
}

sf_vid sf_g_concat(sf_graph *g, sf_vid a, sf_vid b) {
  sf_vid in[2] = {a, b};
  sf_node *n = sf_graph_add_node(g, SF_OP_CONCAT, in, 2, sf_graph_channels(g, a) + sf_graph_channels(g, b));
  return n ? n->out : -1;
}

sf_vid sf_g_attention(sf_graph *g, sf_vid q_src, size_t q_off, sf_vid kv_src, size_t k_off, size_t v_off,
                      size_t heads, size_t head_dim, int causal) {
  size_t inner = heads * head_dim;
  if (heads == 0 || head_dim == 0 || q_off + inner > sf_graph_channels(g, q_src) ||
      k_off + inner > sf_graph_channels(g, kv_src) || v_off + inner > sf_graph_channels(g, kv_src)) {
    sf_graph_fail(g, SF_ERR_BAD_MODEL, "attention slices (%zu heads x %zu) do not fit the inputs", heads, head_dim);
    return -1;
  }
  sf_vid in[2] = {q_src, kv_src};
  sf_node *n = sf_graph_add_node(g, SF_OP_ATTENTION, in, 2, inner);
  if (n == NULL) return -1;
  n->p.attn.q_off = q_off;
  n->p.attn.k_off = k_off;
  n->p.attn.v_off = v_off;
  n->p.attn.heads = heads;
  n->p.attn.head_dim = head_dim;
  n->p.attn.causal = causal;
  return n->out;
}

