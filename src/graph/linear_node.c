/* Linear layers on XNNPACK's fully-connected operator over the rows of an [n,h,w,c]
 * value. PyTorch's [out, in] weight layout is what XNNPACK expects without flags. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph_internal.h"
#include "graph/wsrc.h"

static sf_vid add_linear(sf_graph *g, sf_wsrc *ws, const char *const *prefixes, size_t count, sf_vid x,
                         size_t out_each, int bias) {
  if (!sf_graph_valid(g, x)) return -1;
  size_t in_f = sf_graph_channels(g, x);
  size_t out_f = out_each * count;
  float *w = malloc(out_f * in_f * sizeof *w);
  float *b = bias ? malloc(out_f * sizeof *b) : NULL;
  int ok = w != NULL && (!bias || b != NULL);
  for (size_t i = 0; ok && i < count; i++) {
    char name[256];
    snprintf(name, sizeof name, "%s.weight", prefixes[i]);
    int64_t wshape[2] = {(int64_t)out_each, (int64_t)in_f};
    float *part = sf_wsrc_fetch(ws, name, 2, wshape, SF_INIT_FAN_IN, in_f);
    if (part == NULL) {
      ok = 0;
      break;
    }
    memcpy(w + i * out_each * in_f, part, out_each * in_f * sizeof *w);
    free(part);
    if (bias) {
      snprintf(name, sizeof name, "%s.bias", prefixes[i]);
      int64_t bshape[1] = {(int64_t)out_each};
      part = sf_wsrc_fetch(ws, name, 1, bshape, SF_INIT_FAN_IN, in_f);
      if (part == NULL) {
        ok = 0;
        break;
      }
      memcpy(b + i * out_each, part, out_each * sizeof *b);
      free(part);
    }
  }
  if (!ok) {
    free(w);
    free(b);
    sf_diag tmp = {0};
    sf_wsrc_status(ws, 0, &tmp);
    if (tmp.status != SF_OK) sf_graph_fail(g, tmp.status, "%s", tmp.msg);
    else sf_graph_fail(g, SF_ERR_OUT_OF_MEMORY, "out of memory packing %s", prefixes[0]);
    return -1;
  }
  xnn_operator_t op = NULL;
  enum xnn_status xs =
      xnn_create_fully_connected_nc_f32(in_f, out_f, in_f, out_f, w, b, -INFINITY, INFINITY, 0, &op);
  free(w);
  free(b);
  if (xs != xnn_status_success) {
    sf_graph_fail(g, xs == xnn_status_out_of_memory ? SF_ERR_OUT_OF_MEMORY : SF_ERR_BACKEND,
                  "%s: xnn_create_fully_connected_nc_f32 failed (status %d)", prefixes[0], (int)xs);
    return -1;
  }
  sf_node *n = sf_graph_add_node(g, SF_OP_LINEAR, &x, 1, out_f);
  if (n == NULL) {
    xnn_delete_operator(op);
    return -1;
  }
  n->xop = op;
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

sf_status sf_linear_setup(sf_graph *g, sf_node *n, pthreadpool_t pool, sf_diag *d) {
  sf_shape a = g->values[n->in[0]].shape;
  size_t rows = a.n * a.h * a.w;
  enum xnn_status xs = xnn_setup_fully_connected_nc_f32(n->xop, rows, sf_node_in(g, n, 0), sf_node_out(g, n), pool);
  if (xs != xnn_status_success)
    return sf_diag_set(d, SF_ERR_BACKEND, "%s: xnn_setup_fully_connected_nc_f32 failed (status %d) for %zu rows",
                       g->name, (int)xs, rows);
  return SF_OK;
}
