/* conv2d / linear nodes on the library's own indirect GEMM (graph/ops/igemm.h): weights are
 * packed into its panel layout once here (or taken prepacked from a pack file, in place); a run needs no setup and no scratch, so the same
 * node serves any image size and batch. */
#include <stdlib.h>
#include <string.h>

#include "graph/graph_internal.h"
#include "graph/wsrc.h"

sf_vid sf_igemm_node_add(sf_graph *g, sf_vid x, size_t out_ch, const float *w, float *b, size_t cin, size_t taps,
                         const sf_conv_params *conv, const char *prefix, sf_wtype type, pthreadpool_t pool) {
  sf_igemm_weights *ig = malloc(sizeof *ig);
  char *name = strdup(prefix);
  int packed = ig != NULL && name != NULL &&
               sf_igemm_pack_typed_pool(pool, ig, w, b, out_ch, cin, taps, SF_IGEMM_ISA_BEST, type);
  free(b);
  if (!packed) {
    free(ig);
    free(name);
    sf_graph_fail(g, SF_ERR_OUT_OF_MEMORY, "out of memory packing %s", prefix);
    return -1;
  }
  sf_node *n = sf_graph_add_node(g, conv ? SF_OP_CONV2D : SF_OP_LINEAR, &x, 1, out_ch);
  if (n == NULL) {
    sf_igemm_free(ig);
    free(ig);
    free(name);
    return -1;
  }
  n->ig = ig;
  n->name = name;
  if (conv) n->p.conv = *conv;
  g->weights_bytes += sf_igemm_weights_bytes(ig);
  return n->out;
}

sf_vid sf_igemm_node_add_packed(sf_graph *g, sf_wsrc *ws, sf_vid x, size_t out_ch, size_t cin, size_t taps,
                                const sf_conv_params *conv, const char *prefix, sf_wtype type, int bias) {
  if (!sf_graph_valid(g, x)) return -1;
  sf_igemm_weights *ig = malloc(sizeof *ig);
  char *name = strdup(prefix);
  if (ig == NULL || name == NULL) {
    free(ig);
    free(name);
    sf_graph_fail(g, SF_ERR_OUT_OF_MEMORY, "out of memory adding %s", prefix);
    return -1;
  }
  if (!sf_wsrc_pack_gemm(ws, prefix, out_ch, cin, taps, type, bias, ig)) {
    free(ig);
    free(name);
    sf_diag e = {0};
    sf_wsrc_status(ws, 0, &e);
    sf_graph_fail(g, e.status != SF_OK ? e.status : SF_ERR_INTERNAL, "%s", e.status != SF_OK ? e.msg : prefix);
    return -1;
  }
  sf_node *n = sf_graph_add_node(g, conv ? SF_OP_CONV2D : SF_OP_LINEAR, &x, 1, out_ch);
  if (n == NULL) {
    free(ig);
    free(name);
    return -1;
  }
  n->ig = ig;
  n->name = name;
  if (conv) n->p.conv = *conv;
  g->weights_bytes += sf_igemm_weights_bytes(ig);
  return n->out;
}

sf_status sf_igemm_node_run(const sf_plan *pl, void *arena, const sf_node *n, pthreadpool_t pool) {
  sf_shape a = pl->shapes[n->in[0]], o = pl->shapes[n->out];
  const float *x = sf_node_in(pl, arena, n, 0);
  float *y = sf_node_out(pl, arena, n);
  if (n->op == SF_OP_LINEAR) {
    sf_igemm_linear_f32(pool, n->ig, x, y, a.n * a.h * a.w);
    return SF_OK;
  }
  sf_igemm_conv c = {.batch = a.n, .ih = a.h, .iw = a.w, .cin = a.c, .oh = o.h, .ow = o.w,
                     .kh = n->p.conv.kernel, .kw = n->p.conv.kernel, .stride = n->p.conv.stride,
                     .pad_top = n->p.conv.pad_top, .pad_left = n->p.conv.pad_left};
  sf_igemm_conv_f32(pool, n->ig, &c, x, y, o.c);
  return SF_OK;
}
