/* conv2d with per-side padding, on the library's indirect GEMM or XNNPACK's NHWC convolution
 * like a symmetric conv (SF_OP_CONV2D); only the top/left paddings differ, and both backends
 * apply them while reading (no padded copy of the input). */
#include "graph/conv2d_asym.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "graph/graph_internal.h"
#include "graph/wsrc.h"

sf_vid sf_g_conv2d_asym(sf_graph *g, sf_wsrc *ws, const char *prefix, sf_vid x, size_t out_ch, size_t kernel,
                        size_t stride, size_t pad_top, size_t pad_right, size_t pad_bottom, size_t pad_left,
                        int bias) {
  if (!sf_graph_valid(g, x)) return -1;
  size_t total = pad_top + pad_bottom;
  size_t pad = (total + 1) / 2;
  if (pad_left + pad_right != total || kernel == 0 || stride == 0) {
    sf_graph_fail(g, SF_ERR_INTERNAL, "%s: unsupported asymmetric padding (%zu,%zu,%zu,%zu)", prefix, pad_top,
                  pad_right, pad_bottom, pad_left);
    return -1;
  }
  size_t in_ch = sf_graph_channels(g, x);
  size_t kk = kernel * kernel;
  char wname[256];
  snprintf(wname, sizeof wname, "%s.weight", prefix);
  const sf_wtype wt = sf_graph_layer_wtype(g, ws, wname);
  const int igemm = sf_graph_uses_igemm_for(g, ws, wt);
  /* pad: for the planner's (symmetric) shape inference, see the header */
  const sf_conv_params cp = {
      .kernel = kernel, .stride = stride, .pad = pad, .pad_top = pad_top, .pad_left = pad_left};
  if (sf_wsrc_is_pack(ws)) return sf_igemm_node_add_packed(g, ws, x, out_ch, in_ch, kk, &cp, prefix, wt, bias);
  float *w = NULL, *b = NULL;
  if (!sf_conv_fetch(g, ws, prefix, out_ch, in_ch, kernel, bias, !igemm, &w, &b)) return -1;
  if (sf_wsrc_is_dry(ws)) return sf_dry_layer_add(g, ws, x, out_ch, in_ch, kk, bias, &cp, wt);
  if (igemm) return sf_igemm_node_add(g, x, out_ch, w, b, in_ch, kk, &cp, prefix, wt, sf_wsrc_pool(ws));
  const float *ohwi = w;
  xnn_operator_t *ops = calloc(1, sizeof *ops);
  enum xnn_status xs = ops ? xnn_create_convolution2d_nhwc_f32(
                                 (uint32_t)pad_top, (uint32_t)pad_right, (uint32_t)pad_bottom, (uint32_t)pad_left,
                                 (uint32_t)kernel, (uint32_t)kernel, (uint32_t)stride, (uint32_t)stride, 1, 1, 1,
                                 in_ch, out_ch, in_ch, out_ch, ohwi, b, -INFINITY, INFINITY, 0, &ops[0])
                           : xnn_status_out_of_memory;
  free(b);
  sf_node *n = sf_xnn_node_add(g, SF_OP_CONV2D, x, out_ch, ops, 1, out_ch, xs, "xnn_create_convolution2d_nhwc_f32",
                               prefix);
  if (n == NULL) return -1;
  n->p.conv = cp;
  g->weights_bytes += (out_ch * kk * in_ch + (bias ? out_ch : 0)) * sizeof(float);
  return n->out;
}
