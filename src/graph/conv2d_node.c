/* conv2d on the library's indirect GEMM when the CPU runs its SIMD microkernels (see
 * graph/ops/igemm.h), else lowered onto XNNPACK's NHWC convolution. PyTorch stores weights OIHW,
 * which the GEMM packs directly; XNNPACK wants OHWI, so for it they are transposed once here
 * and packed by XNNPACK at create.
 * Layers with large weights become several operators over output-channel panels
 * (graph/xnn_panels.h explains why and how they are sized). */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "graph/graph_internal.h"
#include "graph/wsrc.h"
#include "graph/xnn_panels.h"

int sf_conv_fetch(sf_graph *g, sf_wsrc *ws, const char *prefix, size_t out_ch, size_t in_ch, size_t kernel,
                  int bias, int to_ohwi, float **w_out, float **b_out) {
  char name[256];
  snprintf(name, sizeof name, "%s.weight", prefix);
  int64_t wshape[4] = {(int64_t)out_ch, (int64_t)in_ch, (int64_t)kernel, (int64_t)kernel};
  size_t kk = kernel * kernel, fan_in = in_ch * kk, count = out_ch * kk * in_ch;
  *w_out = *b_out = NULL;
  if (sf_wsrc_is_dry(ws)) { /* checked, not read */
    sf_wsrc_note_stage(ws, 0, count);
    if (to_ohwi) sf_wsrc_note_stage(ws, 1, count);
    int64_t bshape[1] = {(int64_t)out_ch};
    int ok = sf_wsrc_check(ws, name, 4, wshape);
    snprintf(name, sizeof name, "%s.bias", prefix);
    if (ok && bias) ok = sf_wsrc_check(ws, name, 1, bshape);
    if (!ok) {
      sf_diag tmp = {0};
      sf_wsrc_status(ws, 0, &tmp);
      sf_graph_fail(g, tmp.status != SF_OK ? tmp.status : SF_ERR_INTERNAL, "%s", tmp.msg);
    }
    return ok;
  }
  float *w = sf_wsrc_stage(ws, 0, count);
  int ok = w != NULL && sf_wsrc_fetch_into(ws, name, 4, wshape, SF_INIT_FAN_IN, fan_in, w);
  float *b = NULL;
  if (ok && bias) {
    snprintf(name, sizeof name, "%s.bias", prefix);
    int64_t bshape[1] = {(int64_t)out_ch};
    b = sf_wsrc_fetch(ws, name, 1, bshape, SF_INIT_FAN_IN, fan_in);
    ok = b != NULL;
  }
  float *ohwi = ok && to_ohwi ? sf_wsrc_stage(ws, 1, count) : w;
  if (!ok || ohwi == NULL) {
    free(b);
    sf_diag tmp = {0};
    sf_wsrc_status(ws, 0, &tmp);
    if (tmp.status != SF_OK) sf_graph_fail(g, tmp.status, "%s", tmp.msg);
    else sf_graph_fail(g, SF_ERR_OUT_OF_MEMORY, "out of memory packing %s", prefix);
    return 0;
  }
  /* PyTorch OIHW -> XNNPACK OHWI */
  if (to_ohwi)
    for (size_t o = 0; o < out_ch; o++)
      for (size_t i = 0; i < in_ch; i++)
        for (size_t k = 0; k < kk; k++) ohwi[(o * kk + k) * in_ch + i] = w[(o * in_ch + i) * kk + k];
  *w_out = ohwi;
  *b_out = b;
  return 1;
}

sf_vid sf_g_conv2d(sf_graph *g, sf_wsrc *ws, const char *prefix, sf_vid x, size_t out_ch, size_t kernel,
                   size_t stride, size_t pad, int bias) {
  if (!sf_graph_valid(g, x)) return -1;
  size_t in_ch = sf_graph_channels(g, x);
  char wname[256];
  snprintf(wname, sizeof wname, "%s.weight", prefix);
  const sf_wtype wt = sf_graph_layer_wtype(g, ws, wname);
  const int igemm = sf_graph_uses_igemm_for(g, ws, wt);
  size_t kk = kernel * kernel;
  size_t K = kk * in_ch;
  const sf_conv_params cp = {.kernel = kernel, .stride = stride, .pad = pad, .pad_top = pad, .pad_left = pad};
  if (sf_wsrc_is_pack(ws)) return sf_igemm_node_add_packed(g, ws, x, out_ch, in_ch, kk, &cp, prefix, wt, bias);
  float *w = NULL, *b = NULL;
  if (!sf_conv_fetch(g, ws, prefix, out_ch, in_ch, kernel, bias, !igemm, &w, &b)) return -1;
  if (sf_wsrc_is_dry(ws)) return sf_dry_layer_add(g, ws, x, out_ch, in_ch, kk, bias, &cp, wt);
  if (igemm) return sf_igemm_node_add(g, x, out_ch, w, b, in_ch, kk, &cp, prefix, wt, sf_wsrc_pool(ws));
  const float *ohwi = w;
  size_t panel_oc = sf_xnn_panel_channels(out_ch, K * sizeof(float), SF_CONV_PANEL_BUDGET);
  size_t n_panels = (out_ch + panel_oc - 1) / panel_oc;
  xnn_operator_t *ops = calloc(n_panels, sizeof *ops);
  enum xnn_status xs = ops ? xnn_status_success : xnn_status_out_of_memory;
  for (size_t p = 0; xs == xnn_status_success && p < n_panels; p++) {
    size_t o0 = p * panel_oc, oc = out_ch - o0 < panel_oc ? out_ch - o0 : panel_oc;
    xs = xnn_create_convolution2d_nhwc_f32((uint32_t)pad, (uint32_t)pad, (uint32_t)pad, (uint32_t)pad,
                                           (uint32_t)kernel, (uint32_t)kernel, (uint32_t)stride, (uint32_t)stride,
                                           1, 1, 1, in_ch, oc, in_ch, out_ch, ohwi + o0 * K, b ? b + o0 : NULL,
                                           -INFINITY, INFINITY, 0, &ops[p]);
  }
  free(b);
  sf_node *n = sf_xnn_node_add(g, SF_OP_CONV2D, x, out_ch, ops, n_panels, panel_oc, xs,
                               "xnn_create_convolution2d_nhwc_f32", prefix);
  if (n == NULL) return -1;
  n->p.conv = cp;
  g->weights_bytes += (out_ch * kk * in_ch + (bias ? out_ch : 0)) * sizeof(float);
  return n->out;
}
