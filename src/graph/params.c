/* A graph's parameters as pack blobs (graph.h, sf_graph_params): what pack files are written
 * from. The blobs point at the graph's own packed bytes, so writing a pack copies nothing. */
#include <stdio.h>
#include <string.h>

#include "graph/graph_internal.h"
#include "io/pack.h"

static sf_status named(sf_pack_blob *b, const char *prefix, const char *suffix, sf_diag *d) {
  int n = snprintf(b->name, sizeof b->name, "%s%s", prefix, suffix);
  if (n < 0 || (size_t)n >= sizeof b->name)
    return sf_diag_set(d, SF_ERR_UNSUPPORTED, "layer %s: name longer than a pack holds (%d bytes)", prefix,
                       SF_PACK_NAME_BYTES - 1);
  return SF_OK;
}

static sf_status vector(const char *prefix, const char *suffix, unsigned network, uint32_t kind, const float *v,
                        size_t count, const sf_igemm_weights *layer, sf_graph_param_fn fn, void *user, sf_diag *d) {
  sf_pack_blob b;
  memset(&b, 0, sizeof b);
  sf_status s = named(&b, prefix, suffix, d);
  if (s != SF_OK) return s;
  b.network = network;
  b.kind = kind;
  b.dtype = SF_PACK_F32;
  b.ndim = 1;
  b.shape[0] = count;
  b.size = (uint64_t)count * sizeof(float);
  b.data = v;
  return fn(user, &b, layer);
}

sf_status sf_graph_params(const sf_graph *g, unsigned network, sf_graph_param_fn fn, void *user, sf_diag *d) {
  if (g->dry) return sf_diag_set(d, SF_ERR_BAD_STATE, "%s: built for inspection only: it has no weights", g->name);
  static const uint32_t dtypes[SF_WTYPE_COUNT] = {SF_PACK_F32, SF_PACK_F16, SF_PACK_I8};
  for (size_t i = 0; i < g->n_nodes; i++) {
    const sf_node *n = &g->nodes[i];
    if (n->xop != NULL || n->n_panels > 0)
      return sf_diag_set(d, SF_ERR_UNSUPPORTED,
                         "%s: a layer runs on XNNPACK (f32 weights on a CPU without the library's GEMM kernels), "
                         "whose packed weights cannot be saved: pack with f16 or q8 weights",
                         g->name);
    if (n->ig == NULL && n->gamma == NULL) continue;
    if (n->name == NULL) return sf_diag_set(d, SF_ERR_INTERNAL, "%s: node %zu has parameters and no name", g->name, i);
    sf_status s;
    if (n->ig != NULL) {
      const sf_igemm_weights *w = n->ig;
      sf_pack_blob b;
      memset(&b, 0, sizeof b);
      if ((s = named(&b, n->name, ".weight", d)) != SF_OK) return s;
      b.network = network;
      b.kind = SF_PACK_PANELS;
      b.dtype = dtypes[w->type];
      b.ndim = 3;
      b.shape[0] = w->n_tiles;
      b.shape[1] = w->k;
      b.shape[2] = w->nr;
      b.param = w->n;
      b.size = sf_igemm_panel_bytes(w);
      b.data = w->packed;
      if ((s = fn(user, &b, w)) != SF_OK) return s;
      const size_t cols = w->n_tiles * w->nr;
      if ((s = vector(n->name, ".bias", network, SF_PACK_BIAS, w->bias, cols, w, fn, user, d)) != SF_OK) return s;
      if (w->type == SF_WTYPE_Q8 &&
          (s = vector(n->name, ".weight_scale", network, SF_PACK_SCALE, w->scale, cols, w, fn, user, d)) != SF_OK)
        return s;
    } else {
      const size_t c = g->values[n->out].c;
      if ((s = vector(n->name, ".weight", network, SF_PACK_TENSOR, n->gamma, c, NULL, fn, user, d)) != SF_OK) return s;
      if ((s = vector(n->name, ".bias", network, SF_PACK_TENSOR, n->beta, c, NULL, fn, user, d)) != SF_OK) return s;
    }
  }
  return SF_OK;
}
