#include "graph/graph.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xnnpack.h>

#include "graph/graph_internal.h"

#define ARENA_ALIGN 64

/* ---- construction ------------------------------------------------------------------ */

sf_graph *sf_graph_create(const char *name) {
  sf_graph *g = calloc(1, sizeof *g);
  if (g == NULL) return NULL;
  snprintf(g->name, sizeof g->name, "%s", name ? name : "graph");
  return g;
}

void sf_graph_destroy(sf_graph *g) {
  if (g == NULL) return;
  for (size_t i = 0; i < g->n_nodes; i++) sf_node_release(&g->nodes[i]);
  free(g->nodes);
  free(g->values);
  free(g->inputs);
  free(g->arena);
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

/* ---- planning -------------------------------------------------------------------------- */

static sf_status infer_shapes(sf_graph *g, sf_diag *d) {
  for (size_t i = 0; i < g->n_nodes; i++) {
    sf_node *n = &g->nodes[i];
    sf_shape a = g->values[n->in[0]].shape;
    sf_shape out = a;
    out.c = g->values[n->out].c;
    switch (n->op) {
      case SF_OP_CONV2D: {
        size_t k = n->p.conv.kernel, s = n->p.conv.stride, p = n->p.conv.pad;
        if (a.h + 2 * p < k || a.w + 2 * p < k)
          return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "%s: input %zux%zu is smaller than the %zux%zu kernel",
                             g->name, a.h, a.w, k, k);
        out.h = (a.h + 2 * p - k) / s + 1;
        out.w = (a.w + 2 * p - k) / s + 1;
        break;
      }
      case SF_OP_ADD: {
        sf_shape b = g->values[n->in[1]].shape;
        int same = b.n == a.n && b.h == a.h && b.w == a.w;
        int bcast = b.n == a.n && b.h == 1 && b.w == 1;
        if (!same && !bcast)
          return sf_diag_set(d, SF_ERR_INTERNAL, "%s: add of [%zu,%zu,%zu] and [%zu,%zu,%zu]", g->name, a.n, a.h,
                             a.w, b.n, b.h, b.w);
        break;
      }
      case SF_OP_CONCAT: {
        sf_shape b = g->values[n->in[1]].shape;
        if (b.n != a.n || b.h != a.h || b.w != a.w)
          return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT,
                             "%s: cannot concatenate %zux%zu with %zux%zu (image sides must be multiples of 8)",
                             g->name, a.h, a.w, b.h, b.w);
        break;
      }
      case SF_OP_UPSAMPLE2X:
        out.h = a.h * 2;
        out.w = a.w * 2;
        break;
      case SF_OP_ATTENTION: {
        sf_shape kv = g->values[n->in[1]].shape;
        if (kv.n != a.n)
          return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "%s: attention batch %zu vs context batch %zu", g->name,
                             a.n, kv.n);
        break;
      }
      default:
        break;
    }
    g->values[n->out].shape = out;
  }
  return SF_OK;
}

typedef struct {
  size_t bytes;
  int first, last; /* node indices during which the buffer is live */
  size_t *offset;
} interval;

static int by_size_desc(const void *pa, const void *pb) {
  const interval *a = pa, *b = pb;
  if (a->bytes != b->bytes) return a->bytes < b->bytes ? 1 : -1;
  return a->first - b->first;
}

/* Greedy-by-size offset assignment: the largest buffers are placed first, each at the
 * lowest offset that does not collide with an already placed buffer whose lifetime
 * intersects. Known to land within a few percent of optimal on CNN graphs. */
static size_t assign_offsets(interval *iv, size_t n, sf_diag *d, int *ok) {
  qsort(iv, n, sizeof *iv, by_size_desc);
  size_t total = 0;
  size_t *cand = malloc((n + 1) * sizeof *cand);
  if (cand == NULL) {
    *ok = 0;
    sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "planner: out of memory");
    return 0;
  }
  for (size_t i = 0; i < n; i++) {
    if (iv[i].bytes == 0) {
      *iv[i].offset = 0;
      continue;
    }
    /* Candidate offsets: 0 and the end of every placed, overlapping-in-time buffer. */
    size_t nc = 0;
    cand[nc++] = 0;
    for (size_t j = 0; j < i; j++)
      if (iv[j].bytes && iv[j].first <= iv[i].last && iv[i].first <= iv[j].last)
        cand[nc++] = *iv[j].offset + iv[j].bytes;
    size_t best = SIZE_MAX;
    for (size_t c = 0; c < nc; c++) {
      size_t off = cand[c];
      if (off >= best) continue;
      int clash = 0;
      for (size_t j = 0; j < i && !clash; j++)
        if (iv[j].bytes && iv[j].first <= iv[i].last && iv[i].first <= iv[j].last &&
            off < *iv[j].offset + iv[j].bytes && *iv[j].offset < off + iv[i].bytes)
          clash = 1;
      if (!clash) best = off;
    }
    *iv[i].offset = best;
    if (best + iv[i].bytes > total) total = best + iv[i].bytes;
  }
  free(cand);
  *ok = 1;
  return total;
}

static size_t round_up(size_t x) { return (x + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN; }

sf_status sf_graph_plan(sf_graph *g, const sf_shape *input_shapes, size_t n_inputs, pthreadpool_t pool,
                        sf_diag *d) {
  if (g->build.status != SF_OK) return sf_diag_set(d, g->build.status, "%s", g->build.msg);
  if (n_inputs != g->n_inputs)
    return sf_diag_set(d, SF_ERR_INTERNAL, "%s: %zu input shapes for %zu inputs", g->name, n_inputs, g->n_inputs);
  for (size_t i = 0; i < n_inputs; i++) {
    sf_value *v = &g->values[g->inputs[i]];
    if (input_shapes[i].c != v->c)
      return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "%s: input %zu has %zu channels, expected %zu", g->name, i,
                         input_shapes[i].c, v->c);
    if (sf_shape_numel(input_shapes[i]) == 0)
      return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "%s: input %zu is empty", g->name, i);
    v->shape = input_shapes[i];
  }
  g->planned = 0;
  sf_status s = infer_shapes(g, d);
  if (s != SF_OK) return s;

  /* Liveness: a value lives from its producer to its last consumer; inputs from the
   * start, outputs to the end. A node's scratch lives only during the node. */
  for (size_t v = 0; v < g->n_values; v++) {
    sf_value *val = &g->values[v];
    val->first = val->producer < 0 ? 0 : val->producer;
    val->last = val->is_output ? (int)g->n_nodes : val->first;
  }
  for (size_t i = 0; i < g->n_nodes; i++)
    for (size_t k = 0; k < g->nodes[i].n_in; k++) {
      sf_value *val = &g->values[g->nodes[i].in[k]];
      if ((int)i > val->last) val->last = (int)i;
    }
  size_t n_iv = g->n_values + g->n_nodes;
  interval *iv = calloc(n_iv, sizeof *iv);
  if (iv == NULL) return sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "%s: planner out of memory", g->name);
  size_t k = 0;
  g->naive_bytes = 0;
  for (size_t v = 0; v < g->n_values; v++) {
    iv[k] = (interval){round_up(sf_shape_numel(g->values[v].shape) * sizeof(float)), g->values[v].first,
                       g->values[v].last, &g->values[v].offset};
    g->naive_bytes += iv[k].bytes;
    k++;
  }
  for (size_t i = 0; i < g->n_nodes; i++) {
    sf_node *n = &g->nodes[i];
    n->scratch_bytes = round_up(sf_node_scratch_bytes(g, n, pool));
    iv[k++] = (interval){n->scratch_bytes, (int)i, (int)i, &n->scratch_offset};
    g->naive_bytes += n->scratch_bytes;
  }
  int ok;
  size_t total = assign_offsets(iv, n_iv, d, &ok);
  free(iv);
  if (!ok) return d->status;
  if (total > g->arena_cap) {
    free(g->arena);
    g->arena = NULL;
    g->arena_cap = 0;
    if (posix_memalign(&g->arena, ARENA_ALIGN, total ? total : ARENA_ALIGN) != 0)
      return sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "%s: cannot allocate a %.1f MiB activation arena", g->name,
                         total / 1048576.0);
    g->arena_cap = total;
  }
  g->arena_bytes = total;
  for (size_t i = 0; i < g->n_nodes; i++) {
    s = sf_node_setup(g, &g->nodes[i], pool, d);
    if (s != SF_OK) return s;
  }
  g->planned = 1;
  return SF_OK;
}

size_t sf_graph_arena_bytes(const sf_graph *g) { return g->arena_bytes; }
size_t sf_graph_naive_bytes(const sf_graph *g) { return g->naive_bytes; }

sf_shape sf_graph_shape(const sf_graph *g, sf_vid v) {
  sf_shape zero = {0, 0, 0, 0};
  return v >= 0 && (size_t)v < g->n_values ? g->values[v].shape : zero;
}

float *sf_graph_data(sf_graph *g, sf_vid v) {
  if (!g->planned || v < 0 || (size_t)v >= g->n_values) return NULL;
  return (float *)((char *)g->arena + g->values[v].offset);
}

sf_status sf_graph_run(sf_graph *g, pthreadpool_t pool, const atomic_int *cancel, sf_diag *d) {
  if (!g->planned) return sf_diag_set(d, SF_ERR_BAD_STATE, "%s: run before plan", g->name);
  for (size_t i = 0; i < g->n_nodes; i++) {
    if (cancel != NULL && atomic_load_explicit(cancel, memory_order_relaxed))
      return sf_diag_set(d, SF_ERR_CANCELLED, "cancelled");
    sf_status s = sf_node_run(g, &g->nodes[i], pool, d);
    if (s != SF_OK) return s;
  }
  return SF_OK;
}

void sf_graph_get_stats(const sf_graph *g, sf_graph_stats *out) {
  memset(out, 0, sizeof *out);
  out->nodes = g->n_nodes;
  out->weights_bytes = g->weights_bytes;
  for (size_t i = 0; i < g->n_nodes; i++) {
    const sf_node *n = &g->nodes[i];
    sf_shape o = g->values[n->out].shape;
    sf_shape a = g->values[n->in[0]].shape;
    switch (n->op) {
      case SF_OP_CONV2D:
        out->macs_dense += (double)sf_shape_numel(o) * (double)a.c * (double)(n->p.conv.kernel * n->p.conv.kernel);
        break;
      case SF_OP_LINEAR:
        out->macs_dense += (double)sf_shape_numel(o) * (double)a.c;
        break;
      case SF_OP_ATTENTION: {
        sf_shape kv = g->values[n->in[1]].shape;
        out->macs_attention += 2.0 * (double)(o.n * o.h * o.w) * (double)(kv.h * kv.w) * (double)o.c;
        break;
      }
      default:
        break;
    }
  }
}

int sf_graph_check_plan(const sf_graph *g, sf_diag *d) {
  /* Every pair of buffers alive at the same node must be disjoint in the arena. */
  size_t nb = g->n_values + g->n_nodes;
  for (size_t i = 0; i < nb; i++) {
    size_t oi, bi;
    int fi, li;
    sf_plan_buffer(g, i, &oi, &bi, &fi, &li);
    if (bi == 0) continue;
    if (oi + bi > g->arena_bytes) {
      sf_diag_set(d, SF_ERR_INTERNAL, "%s: buffer %zu ends past the arena", g->name, i);
      return 1;
    }
    for (size_t j = i + 1; j < nb; j++) {
      size_t oj, bj;
      int fj, lj;
      sf_plan_buffer(g, j, &oj, &bj, &fj, &lj);
      if (bj == 0) continue;
      if (fi <= lj && fj <= li && oi < oj + bj && oj < oi + bi) {
        sf_diag_set(d, SF_ERR_INTERNAL, "%s: buffers %zu and %zu overlap while both alive", g->name, i, j);
        return 1;
      }
    }
  }
  return 0;
}

void sf_plan_buffer(const sf_graph *g, size_t i, size_t *off, size_t *bytes, int *first, int *last) {
  if (i < g->n_values) {
    const sf_value *v = &g->values[i];
    *off = v->offset;
    *bytes = sf_shape_numel(v->shape) * sizeof(float);
    *first = v->first;
    *last = v->last;
  } else {
    const sf_node *n = &g->nodes[i - g->n_values];
    *off = n->scratch_offset;
    *bytes = n->scratch_bytes;
    *first = *last = (int)(i - g->n_values);
  }
}
