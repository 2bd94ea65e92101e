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
  const int igemm = sf_graph_uses_igemm(g);
  float *w = NULL, *b = NULL;
  if (!sf_conv_fetch(g, ws, prefix, out_ch, in_ch, kernel, bias, !igemm, &w, &b)) return -1;
  size_t kk = kernel * kernel;
  size_t K = kk * in_ch;
  if (igemm) {
    const sf_conv_params cp = {.kernel = kernel, .stride = stride, .pad = pad, .pad_top = pad, .pad_left = pad};
    return sf_igemm_node_add(g, x, out_ch, w, b, in_ch, kk, &cp, prefix);
  }
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
  n->p.conv = (sf_conv_params){.kernel = kernel, .stride = stride, .pad = pad, .pad_top = pad, .pad_left = pad};
  g->weights_bytes += (out_ch * kk * in_ch + (bias ? out_ch : 0)) * sizeof(float);
  return n->out;
}

static size_t pool_threads(pthreadpool_t pool) { return pool ? pthreadpool_get_threads_count(pool) : 1; }

sf_status sf_conv2d_setup(sf_graph *g, sf_node *n, pthreadpool_t pool, sf_diag *d) {
  sf_shape a = g->values[n->in[0]].shape;
  const float *x = sf_node_in(g, n, 0);
  float *y = sf_node_out(g, n);
  size_t count = n->n_panels ? n->n_panels : 1;
  n->panels_in_tasks = n->n_panels && sf_xnn_panels_in_tasks(n->n_panels, pool_threads(pool));
  pthreadpool_t op_pool = n->panels_in_tasks ? NULL : pool;
  for (size_t p = 0; p < count; p++) {
    xnn_operator_t op = n->n_panels ? n->panels[p] : n->xop;
    enum xnn_status xs = xnn_setup_convolution2d_nhwc_f32(op, a.n, a.h, a.w, x, y + p * n->panel_oc, op_pool);
    if (xs != xnn_status_success)
      return sf_diag_set(d, SF_ERR_BACKEND,
                         "%s: xnn_setup_convolution2d_nhwc_f32 failed (status %d) for %zux%zux%zu", g->name,
                         (int)xs, a.n, a.h, a.w);
  }
  return SF_OK;
}

struct panel_tasks {
  xnn_operator_t *ops;
  atomic_int failed; /* first failing status + 1; 0 while all succeed */
};

static void run_panel_task(void *arg, size_t i) {
  struct panel_tasks *t = arg;
  enum xnn_status xs = xnn_run_operator(t->ops[i], NULL);
  if (xs != xnn_status_success) {
    int expected = 0;
    atomic_compare_exchange_strong(&t->failed, &expected, (int)xs + 1);
  }
}

sf_status sf_xnn_run(sf_graph *g, sf_node *n, pthreadpool_t pool, sf_diag *d) {
  if (n->n_panels && n->panels_in_tasks) {
    struct panel_tasks t = {.ops = n->panels};
    atomic_init(&t.failed, 0);
    pthreadpool_parallelize_1d(pool, run_panel_task, &t, n->n_panels, 0);
    int failed = atomic_load(&t.failed);
    if (failed)
      return sf_diag_set(d, SF_ERR_BACKEND, "%s: xnn_run_operator failed (status %d)", g->name, failed - 1);
    return SF_OK;
  }
  size_t count = n->n_panels ? n->n_panels : 1;
  for (size_t p = 0; p < count; p++) {
    enum xnn_status xs = xnn_run_operator(n->n_panels ? n->panels[p] : n->xop, pool);
    if (xs != xnn_status_success)
      return sf_diag_set(d, SF_ERR_BACKEND, "%s: xnn_run_operator failed (status %d)", g->name, (int)xs);
  }
  return SF_OK;
}

sf_node *sf_xnn_node_add(sf_graph *g, sf_op op, sf_vid x, size_t out_ch, xnn_operator_t *ops, size_t n_panels,
                         size_t panel_oc, enum xnn_status xs, const char *create_fn, const char *prefix) {
  sf_node *n = NULL;
  if (xs != xnn_status_success)
    sf_graph_fail(g, xs == xnn_status_out_of_memory ? SF_ERR_OUT_OF_MEMORY : SF_ERR_BACKEND,
                  "%s: %s failed (status %d)", prefix, create_fn, (int)xs);
  else
    n = sf_graph_add_node(g, op, &x, 1, out_ch);
  if (n == NULL) {
    for (size_t p = 0; ops && p < n_panels; p++)
      if (ops[p]) xnn_delete_operator(ops[p]);
    free(ops);
    return NULL;
  }
  if (n_panels == 1) {
    n->xop = ops[0];
    free(ops);
  } else {
    n->panels = ops;
    n->n_panels = n_panels;
    n->panel_oc = panel_oc;
  }
  return n;
}

void sf_xnn_release(sf_node *n) {
  for (size_t p = 0; p < n->n_panels; p++)
    if (n->panels[p]) xnn_delete_operator(n->panels[p]);
  free(n->panels);
  n->panels = NULL;
  n->n_panels = 0;
}
