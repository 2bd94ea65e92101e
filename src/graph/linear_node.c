/* Linear layers over the rows of an [n,h,w,c] value: on the library's indirect GEMM when the
 * CPU runs its SIMD microkernels (graph/ops/igemm.h), else on XNNPACK's fully-connected
 * operator. PyTorch's [out, in] weight layout is what both take. Large
 * weight matrices become several operators over output-channel panels
 * (graph/xnn_panels.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph_internal.h"
#include "graph/wsrc.h"
#include "graph/xnn_panels.h"

static sf_vid add_linear(sf_graph *g, sf_wsrc *ws, const char *const *prefixes, size_t count, sf_vid x,
                         size_t out_each, int bias) {
  if (!sf_graph_valid(g, x)) return -1;
  size_t in_f = sf_graph_channels(g, x);
  size_t out_f = out_each * count;
  char wname[256];
  snprintf(wname, sizeof wname, "%s.weight", prefixes[0]);
  const sf_wtype wt = sf_graph_layer_wtype(g, ws, wname);
  /* A pack holds the fused layer as one, named after its first part. */
  if (sf_wsrc_is_pack(ws)) return sf_igemm_node_add_packed(g, ws, x, out_f, in_f, 1, NULL, prefixes[0], wt, bias);
  if (sf_wsrc_is_dry(ws)) { /* checked, not read */
    sf_wsrc_note_stage(ws, 0, out_f * in_f);
    int ok = 1;
    for (size_t i = 0; ok && i < count; i++) {
      char name[256];
      snprintf(name, sizeof name, "%s.weight", prefixes[i]);
      int64_t wshape[2] = {(int64_t)out_each, (int64_t)in_f}, bshape[1] = {(int64_t)out_each};
      ok = sf_wsrc_check(ws, name, 2, wshape);
      snprintf(name, sizeof name, "%s.bias", prefixes[i]);
      if (ok && bias) ok = sf_wsrc_check(ws, name, 1, bshape);
    }
    if (!ok) {
      sf_diag tmp = {0};
      sf_wsrc_status(ws, 0, &tmp);
      sf_graph_fail(g, tmp.status != SF_OK ? tmp.status : SF_ERR_INTERNAL, "%s", tmp.msg);
      return -1;
    }
    return sf_dry_layer_add(g, ws, x, out_f, in_f, 1, bias, NULL, wt);
  }
  /* The fused parts (e.g. q, k, v) are fetched side by side into one staged matrix. */
  float *w = sf_wsrc_stage(ws, 0, out_f * in_f);
  float *b = bias ? malloc(out_f * sizeof *b) : NULL;
  int ok = w != NULL && (!bias || b != NULL);
  for (size_t i = 0; ok && i < count; i++) {
    char name[256];
    snprintf(name, sizeof name, "%s.weight", prefixes[i]);
    int64_t wshape[2] = {(int64_t)out_each, (int64_t)in_f};
    ok = sf_wsrc_fetch_into(ws, name, 2, wshape, SF_INIT_FAN_IN, in_f, w + i * out_each * in_f);
    if (ok && bias) {
      snprintf(name, sizeof name, "%s.bias", prefixes[i]);
      int64_t bshape[1] = {(int64_t)out_each};
      ok = sf_wsrc_fetch_into(ws, name, 1, bshape, SF_INIT_FAN_IN, in_f, b + i * out_each);
    }
  }
  if (!ok) {
    free(b);
    sf_diag tmp = {0};
    sf_wsrc_status(ws, 0, &tmp);
    if (tmp.status != SF_OK) sf_graph_fail(g, tmp.status, "%s", tmp.msg);
    else sf_graph_fail(g, SF_ERR_OUT_OF_MEMORY, "out of memory packing %s", prefixes[0]);
    return -1;
  }
  if (sf_graph_uses_igemm_for(g, ws, wt)) return sf_igemm_node_add(g, x, out_f, w, b, in_f, 1, NULL, prefixes[0], wt, sf_wsrc_pool(ws));
  size_t panel_oc = sf_xnn_panel_channels(out_f, in_f * sizeof(float), SF_FC_PANEL_BUDGET);
  size_t n_panels = (out_f + panel_oc - 1) / panel_oc;
  xnn_operator_t *ops = calloc(n_panels, sizeof *ops);
  enum xnn_status xs = ops ? xnn_status_success : xnn_status_out_of_memory;
  for (size_t p = 0; xs == xnn_status_success && p < n_panels; p++) {
    size_t o0 = p * panel_oc, oc = out_f - o0 < panel_oc ? out_f - o0 : panel_oc;
    xs = xnn_create_fully_connected_nc_f32(in_f, oc, in_f, out_f, w + o0 * in_f, b ? b + o0 : NULL, -INFINITY,
                                           INFINITY, 0, &ops[p]);
  }
  free(b);
  sf_node *n = sf_xnn_node_add(g, SF_OP_LINEAR, x, out_f, ops, n_panels, panel_oc, xs,
                               "xnn_create_fully_connected_nc_f32", prefixes[0]);
  if (n == NULL) return -1;
  g->weights_bytes += (out_f * in_f + (bias ? out_f : 0)) * sizeof(float);
  return n->out;
}

sf_vid sf_g_linear(sf_graph *g, sf_wsrc *ws, const char *prefix, sf_vid x, size_t out_features, int bias) {
  return add_linear(g, ws, &prefix, 1, x, out_features, bias);
}

sf_vid sf_g_linear_fused(sf_graph *g, sf_wsrc *ws, const char *const *prefixes, size_t count, sf_vid x,
                         size_t out_each, int bias) {
  return add_linear(g, ws, prefixes, count, x, out_each, bias);
}
