/* Planning a graph for a run state: shape inference, liveness, and the offsets of every value
 * and node scratch in the run's workspace. A plan remembers what it was made for (graph,
 * input shapes, thread count) so sf_graph_prepare replans only when one of them changes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph_internal.h"

#define ARENA_ALIGN 64

sf_plan *sf_plan_create(void) { return calloc(1, sizeof(sf_plan)); }

void sf_plan_destroy(sf_plan *pl) {
  if (pl == NULL) return;
  free(pl->shapes);
  free(pl->offsets);
  free(pl->first);
  free(pl->last);
  free(pl->over);
  free(pl->scratch_bytes);
  free(pl->scratch_offsets);
  free(pl);
}

/* Room for a graph's per-value and per-node tables (kept across replans). */
static sf_status plan_reserve(sf_plan *pl, const sf_graph *g, sf_diag *d) {
  if (g->n_values > pl->cap_values) {
    size_t n = g->n_values;
    sf_shape *shapes = realloc(pl->shapes, n * sizeof *shapes);
    if (shapes) pl->shapes = shapes;
    size_t *offsets = realloc(pl->offsets, n * sizeof *offsets);
    if (offsets) pl->offsets = offsets;
    int *first = realloc(pl->first, n * sizeof *first);
    if (first) pl->first = first;
    int *last = realloc(pl->last, n * sizeof *last);
    if (last) pl->last = last;
    int *over = realloc(pl->over, n * sizeof *over);
    if (over) pl->over = over;
    if (!shapes || !offsets || !first || !last || !over)
      return sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "%s: planner out of memory", g->name);
    pl->cap_values = n;
  }
  if (g->n_nodes > pl->cap_nodes) {
    size_t n = g->n_nodes;
    size_t *sb = realloc(pl->scratch_bytes, n * sizeof *sb);
    if (sb) pl->scratch_bytes = sb;
    size_t *so = realloc(pl->scratch_offsets, n * sizeof *so);
    if (so) pl->scratch_offsets = so;
    if (!sb || !so) return sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "%s: planner out of memory", g->name);
    pl->cap_nodes = n;
  }
  pl->n_values = g->n_values;
  pl->n_nodes = g->n_nodes;
  return SF_OK;
}

static sf_status infer_shapes(const sf_graph *g, sf_plan *pl, sf_diag *d) {
  for (size_t i = 0; i < g->n_nodes; i++) {
    const sf_node *n = &g->nodes[i];
    sf_shape a = pl->shapes[n->in[0]];
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
        sf_shape b = pl->shapes[n->in[1]];
        int same = b.n == a.n && b.h == a.h && b.w == a.w;
        int bcast = b.n == a.n && b.h == 1 && b.w == 1;
        if (!same && !bcast)
          return sf_diag_set(d, SF_ERR_INTERNAL, "%s: add of [%zu,%zu,%zu] and [%zu,%zu,%zu]", g->name, a.n, a.h,
                             a.w, b.n, b.h, b.w);
        break;
      }
      case SF_OP_CONCAT: {
        sf_shape b = pl->shapes[n->in[1]];
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
        sf_shape kv = pl->shapes[n->in[1]];
        if (kv.n != a.n)
          return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "%s: attention batch %zu vs context batch %zu", g->name,
                             a.n, kv.n);
        break;
      }
      default:
        break;
    }
    pl->shapes[n->out] = out;
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

static int same_shape(sf_shape a, sf_shape b) { return a.n == b.n && a.h == b.h && a.w == b.w && a.c == b.c; }

static size_t round_up(size_t x) { return (x + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN; }

/* The input of node i its output may be computed over (in place), or -1: kernels that allow
 * y == x (graph/ops/kernels.h: group norm takes its statistics in a first pass; layer norm and
 * the activations handle it; same-shape add), and an input that dies at this node, is no graph
 * output and has the output's size. The workspace then holds one buffer for both: in the VAE
 * decoder's full-resolution blocks that is a whole 512x512x128 activation less. */
static int in_place_input(const sf_graph *g, const sf_plan *pl, size_t i) {
  const sf_node *n = &g->nodes[i];
  switch (n->op) {
    case SF_OP_GROUPNORM:
    case SF_OP_LAYERNORM:
      break;
    case SF_OP_ACT:
      if (n->p.act == SF_ACT_RELU) return -1; /* its kernel takes x as restrict */
      break;
    case SF_OP_ADD: /* a broadcast add (a [n,1,1,c] second operand) over its first operand only */
      break;
    default:
      return -1;
  }
  size_t out_bytes = sf_shape_numel(pl->shapes[n->out]) * sizeof(float);
  size_t n_in = n->op == SF_OP_ADD && !same_shape(pl->shapes[n->in[0]], pl->shapes[n->in[1]]) ? 1 : n->n_in;
  for (size_t k = 0; k < n_in; k++) {
    sf_vid v = n->in[k];
    if (pl->last[v] == (int)i && !g->values[v].is_output && sf_shape_numel(pl->shapes[v]) * sizeof(float) == out_bytes)
      return v;
  }
  return -1;
}


static int plan_matches(const sf_plan *pl, const sf_graph *g, const sf_shape *in, size_t n_in, size_t threads) {
  if (pl->serial != g->serial || pl->n_inputs != n_in || pl->threads != threads) return 0;
  for (size_t i = 0; i < n_in; i++)
    if (!same_shape(pl->inputs[i], in[i])) return 0;
  return 1;
}

static sf_status plan_graph(const sf_graph *g, sf_plan *pl, const sf_shape *input_shapes, size_t n_inputs,
                            size_t threads, sf_diag *d) {
  pl->serial = 0;
  if (g->build.status != SF_OK) return sf_diag_set(d, g->build.status, "%s", g->build.msg);
  if (n_inputs != g->n_inputs || n_inputs > SF_PLAN_MAX_INPUTS)
    return sf_diag_set(d, SF_ERR_INTERNAL, "%s: %zu input shapes for %zu inputs", g->name, n_inputs, g->n_inputs);
  sf_status s = plan_reserve(pl, g, d);
  if (s != SF_OK) return s;
  for (size_t i = 0; i < n_inputs; i++) {
    const sf_value *v = &g->values[g->inputs[i]];
    if (input_shapes[i].c != v->c)
      return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "%s: input %zu has %zu channels, expected %zu", g->name, i,
                         input_shapes[i].c, v->c);
    if (sf_shape_numel(input_shapes[i]) == 0)
      return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "%s: input %zu is empty", g->name, i);
    pl->shapes[g->inputs[i]] = input_shapes[i];
  }
  s = infer_shapes(g, pl, d);
  if (s != SF_OK) return s;

  /* Liveness: a value lives from its producer to its last consumer; inputs from the
   * start, outputs to the end. A node's scratch lives only during the node. */
  for (size_t v = 0; v < g->n_values; v++) {
    const sf_value *val = &g->values[v];
    pl->first[v] = val->producer < 0 ? 0 : val->producer;
    pl->last[v] = val->is_output ? (int)g->n_nodes : pl->first[v];
  }
  for (size_t i = 0; i < g->n_nodes; i++)
    for (size_t k = 0; k < g->nodes[i].n_in; k++) {
      sf_vid v = g->nodes[i].in[k];
      if ((int)i > pl->last[v]) pl->last[v] = (int)i;
    }
  /* In place: a node's output takes over the buffer of an input that dies there; the buffer (kept
   * by the first value of such a chain) then lives until the last value of the chain dies. */
  for (size_t v = 0; v < g->n_values; v++) pl->over[v] = -1;
  for (size_t i = 0; i < g->n_nodes; i++) pl->over[g->nodes[i].out] = in_place_input(g, pl, i);
  size_t n_iv = g->n_values + g->n_nodes;
  interval *iv = calloc(n_iv ? n_iv : 1, sizeof *iv);
  int *buffer_last = calloc(g->n_values ? g->n_values : 1, sizeof *buffer_last);
  if (iv == NULL || buffer_last == NULL) {
    free(iv);
    free(buffer_last);
    return sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "%s: planner out of memory", g->name);
  }
  /* values come in creation order, so a chain's first value precedes the rest */
  for (size_t v = 0; v < g->n_values; v++) buffer_last[v] = pl->last[v];
  for (size_t v = g->n_values; v-- > 0;) {
    size_t root = v;
    while (pl->over[root] >= 0) root = (size_t)pl->over[root];
    if (buffer_last[v] > buffer_last[root]) buffer_last[root] = buffer_last[v];
  }
  size_t k = 0;
  pl->naive_bytes = 0;
  for (size_t v = 0; v < g->n_values; v++) {
    size_t bytes = round_up(sf_shape_numel(pl->shapes[v]) * sizeof(float));
    pl->naive_bytes += bytes;
    if (pl->over[v] >= 0) continue; /* placed with its chain's first value */
    iv[k++] = (interval){bytes, pl->first[v], buffer_last[v], &pl->offsets[v]};
  }
  free(buffer_last);
  for (size_t i = 0; i < g->n_nodes; i++) {
    pl->scratch_bytes[i] = round_up(sf_node_scratch_bytes(g, pl, &g->nodes[i], threads));
    iv[k++] = (interval){pl->scratch_bytes[i], (int)i, (int)i, &pl->scratch_offsets[i]};
    pl->naive_bytes += pl->scratch_bytes[i];
  }
  int ok;
  size_t total = assign_offsets(iv, k, d, &ok);
  free(iv);
  if (!ok) return d->status;
  for (size_t v = 0; v < g->n_values; v++) /* in creation order: over[v] < v is placed already */
    if (pl->over[v] >= 0) pl->offsets[v] = pl->offsets[pl->over[v]];
  pl->arena_bytes = total;
  for (size_t i = 0; i < n_inputs; i++) pl->inputs[i] = input_shapes[i];
  pl->n_inputs = n_inputs;
  pl->threads = threads;
  pl->serial = g->serial;
  return SF_OK;
}

sf_status sf_graph_prepare(const sf_graph *g, sf_plan *pl, const sf_shape *input_shapes, size_t n_inputs,
                           const sf_exec *ex, sf_diag *d) {
  if (g == NULL || pl == NULL || ex == NULL || ex->ws == NULL)
    return sf_diag_set(d, SF_ERR_INTERNAL, "graph prepare: NULL argument");
  size_t threads = sf_pool_threads(ex->pool);
  if (!plan_matches(pl, g, input_shapes, n_inputs, threads)) {
    sf_status s = plan_graph(g, pl, input_shapes, n_inputs, threads, d);
    if (s != SF_OK) return s;
  }
  sf_status s = sf_workspace_reserve(ex->ws, pl->arena_bytes, d);
  if (s != SF_OK) sf_diag_prefix(d, "%s: ", g->name);
  return s;
}

sf_status sf_graph_plan(const sf_graph *g, sf_plan *pl, const sf_shape *input_shapes, size_t n_inputs, size_t threads,
                        sf_diag *d) {
  if (g == NULL || pl == NULL || threads == 0) return sf_diag_set(d, SF_ERR_INTERNAL, "graph plan: NULL argument");
  if (plan_matches(pl, g, input_shapes, n_inputs, threads)) return SF_OK;
  return plan_graph(g, pl, input_shapes, n_inputs, threads, d);
}

size_t sf_plan_arena_bytes(const sf_plan *pl) { return pl && pl->serial ? pl->arena_bytes : 0; }
size_t sf_plan_naive_bytes(const sf_plan *pl) { return pl && pl->serial ? pl->naive_bytes : 0; }

sf_shape sf_plan_shape(const sf_plan *pl, sf_vid v) {
  sf_shape zero = {0, 0, 0, 0};
  return pl && pl->serial && v >= 0 && (size_t)v < pl->n_values ? pl->shapes[v] : zero;
}

float *sf_plan_data(const sf_plan *pl, const sf_exec *ex, sf_vid v) {
  if (pl == NULL || !pl->serial || ex == NULL || ex->ws == NULL || ex->ws->base == NULL || v < 0 ||
      (size_t)v >= pl->n_values || ex->ws->cap < pl->arena_bytes)
    return NULL;
  return sf_plan_ptr(pl, ex->ws->base, v);
}

void sf_graph_get_stats(const sf_graph *g, const sf_plan *pl, sf_graph_stats *out) {
  memset(out, 0, sizeof *out);
  out->nodes = g->n_nodes;
  out->weights_bytes = g->weights_bytes;
  if (pl == NULL || pl->serial != g->serial) return;
  for (size_t i = 0; i < g->n_nodes; i++) {
    const sf_node *n = &g->nodes[i];
    sf_shape o = pl->shapes[n->out];
    sf_shape a = pl->shapes[n->in[0]];
    switch (n->op) {
      case SF_OP_CONV2D:
        out->macs_dense += (double)sf_shape_numel(o) * (double)a.c * (double)(n->p.conv.kernel * n->p.conv.kernel);
        break;
      case SF_OP_LINEAR:
        out->macs_dense += (double)sf_shape_numel(o) * (double)a.c;
        break;
      case SF_OP_ATTENTION: {
        sf_shape kv = pl->shapes[n->in[1]];
        out->macs_attention += 2.0 * (double)(o.n * o.h * o.w) * (double)(kv.h * kv.w) * (double)o.c;
        break;
      }
      default:
        break;
    }
  }
}

static void plan_buffer(const sf_plan *pl, size_t i, size_t *off, size_t *bytes, int *first, int *last) {
  if (i < pl->n_values) {
    *off = pl->offsets[i];
    *bytes = sf_shape_numel(pl->shapes[i]) * sizeof(float);
    *first = pl->first[i];
    *last = pl->last[i];
  } else {
    *off = pl->scratch_offsets[i - pl->n_values];
    *bytes = pl->scratch_bytes[i - pl->n_values];
    *first = *last = (int)(i - pl->n_values);
  }
}

int sf_plan_check(const sf_graph *g, const sf_plan *pl, sf_diag *d) {
  if (pl == NULL || pl->serial != g->serial) {
    sf_diag_set(d, SF_ERR_INTERNAL, "%s: not planned", g->name);
    return 1;
  }
  /* Every pair of buffers alive at the same node must be disjoint in the workspace. */
  size_t nb = pl->n_values + pl->n_nodes;
  for (size_t i = 0; i < nb; i++) {
    size_t oi, bi;
    int fi, li;
    plan_buffer(pl, i, &oi, &bi, &fi, &li);
    if (bi == 0) continue;
    if (oi + bi > pl->arena_bytes) {
      sf_diag_set(d, SF_ERR_INTERNAL, "%s: buffer %zu ends past the workspace", g->name, i);
      return 1;
    }
    for (size_t j = i + 1; j < nb; j++) {
      size_t oj, bj;
      int fj, lj;
      plan_buffer(pl, j, &oj, &bj, &fj, &lj);
      if (bj == 0) continue;
      /* a value computed over another (in place) shares its buffer at the node that hands it on */
      int handoff = i < pl->n_values && j < pl->n_values && oi == oj &&
                    ((pl->over[j] == (int)i && li == fj) || (pl->over[i] == (int)j && lj == fi));
      if (fi <= lj && fj <= li && oi < oj + bj && oj < oi + bi && !handoff) {
        sf_diag_set(d, SF_ERR_INTERNAL, "%s: buffers %zu and %zu overlap while both alive", g->name, i, j);
        return 1;
      }
    }
  }
  return 0;
}
