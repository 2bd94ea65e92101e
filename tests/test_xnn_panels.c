/* Conv and linear layers whose weights exceed the cache budget are lowered as several
 * XNNPACK operators over output-channel panels (graph/xnn_panels.h). The split must be
 * invisible: bit-identical to one unsplit operator and across thread counts, and equal to a
 * plain double-precision reference within fp32 rounding. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <pthreadpool.h>
#include <xnnpack.h>

#include "core/context.h"
#include "graph/graph_internal.h"
#include "graph/wsrc.h"
#include "graph/xnn_panels.h"
#include "test.h"
#include "test_exec.h"

static void fill(float *x, size_t n, unsigned seed) {
  uint32_t s = seed * 747796405u + 2891336453u;
  for (size_t i = 0; i < n; i++) {
    s = s * 1664525u + 1013904223u;
    x[i] = (float)(s >> 8) / 8388608.0f - 1.0f;
  }
}

static int tasks_seen, sequential_seen;

static void test_panel_sizes(void) {
  /* Fits: one operator. */
  CHECK_EQ_INT(sf_xnn_panel_channels(320, 256 * 4, SF_FC_PANEL_BUDGET), 320);
  CHECK_EQ_INT(sf_xnn_panel_channels(8, 1 << 20, SF_FC_PANEL_BUDGET), 8);
  CHECK_EQ_INT(sf_xnn_panel_channels(0, 4, SF_FC_PANEL_BUDGET), 1);
  /* SD shapes: panels are multiples of 16 within the budget (or 16 when one channel is
   * already over it), and cover the output channels in few panels. */
  static const size_t cases[][2] = {{320, 2880}, {640, 5760}, {1280, 11520}, {1280, 23040}, {2560, 320},
                                    {5120, 640}, {10240, 1280}, {100, 2880}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t out = cases[i][0], per_oc = cases[i][1] * 4;
    size_t p = sf_xnn_panel_channels(out, per_oc, SF_CONV_PANEL_BUDGET);
    CHECK_MSG(p % 16 == 0 && p >= 16 && p <= out, "out %zu: panel %zu", out, p);
    CHECK_MSG(p * per_oc <= SF_CONV_PANEL_BUDGET + 15 * per_oc || p == 16, "out %zu: panel %zu over budget", out, p);
    size_t n = (out + p - 1) / p;
    CHECK_MSG(n * p - out < p, "out %zu: %zu panels of %zu", out, n, p);
  }
}

/* Runs a one-layer graph on pools of 1, 2 and 3 threads; all outputs must be bitwise equal
 * and equal to `expect` (the unsplit operator's output). */
static void run_everywhere(sf_graph *g, sf_vid x, sf_vid y, sf_shape in, const float *input, const float *expect,
                           size_t out_n, const char *what) {
  pthreadpool_t pools[3] = {NULL, pthreadpool_create(2), pthreadpool_create(3)};
  for (int p = 0; p < 3; p++) {
    sf_diag d = {0};
    sf_status s = sf_graph_prepare(g, TP(), &in, 1, TX(pools[p]), &d);
    CHECK_MSG(s == SF_OK, "%s: plan: %s", what, d.msg);
    if (s != SF_OK) continue;
    /* XNNPACK operators are bound to the plan at run time, under the graph's lock. */
    pthread_mutex_lock(&g->xnn_lock);
    s = sf_xnn_setup(g, TP(), test_exec_ws.base, &g->nodes[0], pools[p], &d);
    pthread_mutex_unlock(&g->xnn_lock);
    CHECK_MSG(s == SF_OK, "%s: setup: %s", what, d.msg);
    /* Both ways of running panels are covered: one dispatch of panel tasks when there
     * are enough panels for the threads, else panels in sequence over the pool. */
    const sf_node *n = &g->nodes[0];
    CHECK_EQ_INT(n->panels_in_tasks, sf_xnn_panels_in_tasks(n->n_panels, (size_t)p + 1));
    if (n->panels_in_tasks) tasks_seen++;
    else sequential_seen++;
    memcpy(sf_plan_data(TP(), TX(pools[p]), x), input, sf_shape_numel(in) * sizeof(float));
    s = sf_graph_execute(g, TP(), TX(pools[p]), &d);
    CHECK_MSG(s == SF_OK, "%s: run: %s", what, d.msg);
    if (s != SF_OK) continue;
    const float *out = sf_plan_data(TP(), TX(pools[p]), y);
    size_t bad = 0;
    for (size_t i = 0; i < out_n; i++) bad += memcmp(&out[i], &expect[i], sizeof(float)) != 0;
    CHECK_MSG(bad == 0, "%s on %d thread(s): %zu of %zu values differ from the unsplit operator", what, p + 1, bad,
              out_n);
  }
  for (int p = 1; p < 3; p++) pthreadpool_destroy(pools[p]);
}

static void test_conv(size_t in_ch, size_t out_ch, size_t stride, size_t h, size_t w) {
  char what[96];
  snprintf(what, sizeof what, "conv3x3 %zux%zux%zu->%zu stride %zu", h, w, in_ch, out_ch, stride);
  size_t k = 3, kk = 9, K = in_ch * kk;
  sf_graph *g = sf_graph_create("t");
  g->xnnpack_gemm = 1; /* this test is about the XNNPACK lowering */
  sf_wsrc *ws = sf_wsrc_random(5, "t");
  sf_vid x = sf_graph_input(g, "x", in_ch);
  sf_vid y = sf_g_conv2d(g, ws, "c", x, out_ch, k, stride, 1, 1);
  sf_graph_mark_output(g, y);
  sf_diag d = {0};
  CHECK_MSG(sf_graph_build_status(g, &d) == SF_OK, "%s: %s", what, d.msg);
  CHECK_MSG(g->n_nodes == 1 && g->nodes[0].n_panels > 1, "%s: expected a panelled conv", what);

  /* The same weights (random streams are per tensor name), OIHW -> OHWI. */
  sf_wsrc *ws2 = sf_wsrc_random(5, "t");
  int64_t wshape[4] = {(int64_t)out_ch, (int64_t)in_ch, 3, 3}, bshape[1] = {(int64_t)out_ch};
  float *wt = sf_wsrc_fetch(ws2, "c.weight", 4, wshape, SF_INIT_FAN_IN, K);
  float *b = sf_wsrc_fetch(ws2, "c.bias", 1, bshape, SF_INIT_FAN_IN, K);
  float *ohwi = malloc(out_ch * K * sizeof *ohwi);
  size_t oh = (h + 2 - k) / stride + 1, ow = (w + 2 - k) / stride + 1;
  float *input = malloc(h * w * in_ch * sizeof *input), *ref = malloc(oh * ow * out_ch * sizeof *ref);
  CHECK(wt && b && ohwi && input && ref);
  if (!(wt && b && ohwi && input && ref)) return;
  for (size_t o = 0; o < out_ch; o++)
    for (size_t i = 0; i < in_ch; i++)
      for (size_t t = 0; t < kk; t++) ohwi[(o * kk + t) * in_ch + i] = wt[(o * in_ch + i) * kk + t];
  fill(input, h * w * in_ch, 3);
  xnn_operator_t op = NULL;
  CHECK(xnn_create_convolution2d_nhwc_f32(1, 1, 1, 1, 3, 3, (uint32_t)stride, (uint32_t)stride, 1, 1, 1, in_ch,
                                          out_ch, in_ch, out_ch, ohwi, b, -INFINITY, INFINITY, 0,
                                          &op) == xnn_status_success);
  CHECK(xnn_setup_convolution2d_nhwc_f32(op, 1, h, w, input, ref, NULL) == xnn_status_success);
  CHECK(xnn_run_operator(op, NULL) == xnn_status_success);
  xnn_delete_operator(op);

  /* And the unsplit operator itself against a double-precision reference. */
  double worst = 0;
  size_t nonfinite = 0; /* counted: a NaN must not hide behind the max */
  for (size_t oy = 0; oy < oh; oy++)
    for (size_t ox = 0; ox < ow; ox++)
      for (size_t o = 0; o < out_ch; o++) {
        double acc = b[o], mag = fabs(b[o]);
        for (size_t ky = 0; ky < 3; ky++)
          for (size_t kx = 0; kx < 3; kx++) {
            long iy = (long)(oy * stride + ky) - 1, ix = (long)(ox * stride + kx) - 1;
            if (iy < 0 || ix < 0 || iy >= (long)h || ix >= (long)w) continue;
            const float *px = input + ((size_t)iy * w + (size_t)ix) * in_ch;
            const float *wk = ohwi + (o * kk + ky * 3 + kx) * in_ch;
            for (size_t i = 0; i < in_ch; i++) {
              acc += (double)px[i] * wk[i];
              mag += fabs((double)px[i] * wk[i]);
            }
          }
        double err = fabs(ref[(oy * ow + ox) * out_ch + o] - acc) / (mag + 1e-30);
        if (!isfinite(ref[(oy * ow + ox) * out_ch + o])) nonfinite++;
        else if (err > worst) worst = err;
      }
  CHECK_MSG(nonfinite == 0, "%s: unsplit XNNPACK: %zu non-finite outputs", what, nonfinite);
  CHECK_MSG(worst < 1e-5, "%s: unsplit XNNPACK vs double reference: relative error %g", what, worst);

  run_everywhere(g, x, y, (sf_shape){1, h, w, in_ch}, input, ref, oh * ow * out_ch, what);
  free(wt);
  free(b);
  free(ohwi);
  free(input);
  free(ref);
  sf_wsrc_destroy(ws);
  sf_wsrc_destroy(ws2);
  sf_graph_destroy(g);
}

static void test_linear(size_t rows, size_t in_f, size_t out_f) {
  char what[64];
  snprintf(what, sizeof what, "linear %zux%zu->%zu", rows, in_f, out_f);
  sf_graph *g = sf_graph_create("t");
  g->xnnpack_gemm = 1; /* this test is about the XNNPACK lowering */
  sf_wsrc *ws = sf_wsrc_random(9, "t");
  sf_vid x = sf_graph_input(g, "x", in_f);
  sf_vid y = sf_g_linear(g, ws, "l", x, out_f, 1);
  sf_graph_mark_output(g, y);
  sf_diag d = {0};
  CHECK_MSG(sf_graph_build_status(g, &d) == SF_OK, "%s: %s", what, d.msg);
  CHECK_MSG(g->n_nodes == 1 && g->nodes[0].n_panels > 1, "%s: expected a panelled linear", what);
  sf_wsrc *ws2 = sf_wsrc_random(9, "t");
  int64_t wshape[2] = {(int64_t)out_f, (int64_t)in_f}, bshape[1] = {(int64_t)out_f};
  float *wt = sf_wsrc_fetch(ws2, "l.weight", 2, wshape, SF_INIT_FAN_IN, in_f);
  float *b = sf_wsrc_fetch(ws2, "l.bias", 1, bshape, SF_INIT_FAN_IN, in_f);
  float *input = malloc(rows * in_f * sizeof *input), *ref = malloc(rows * out_f * sizeof *ref);
  CHECK(wt && b && input && ref);
  if (!(wt && b && input && ref)) return;
  fill(input, rows * in_f, 4);
  xnn_operator_t op = NULL;
  CHECK(xnn_create_fully_connected_nc_f32(in_f, out_f, in_f, out_f, wt, b, -INFINITY, INFINITY, 0, &op) ==
        xnn_status_success);
  CHECK(xnn_setup_fully_connected_nc_f32(op, rows, input, ref, NULL) == xnn_status_success);
  CHECK(xnn_run_operator(op, NULL) == xnn_status_success);
  xnn_delete_operator(op);
  double worst = 0;
  size_t nonfinite = 0; /* counted: a NaN must not hide behind the max */
  for (size_t r = 0; r < rows; r++)
    for (size_t o = 0; o < out_f; o++) {
      double acc = b[o], mag = fabs(b[o]);
      for (size_t i = 0; i < in_f; i++) {
        acc += (double)input[r * in_f + i] * wt[o * in_f + i];
        mag += fabs((double)input[r * in_f + i] * wt[o * in_f + i]);
      }
      double err = fabs(ref[r * out_f + o] - acc) / (mag + 1e-30);
      if (!isfinite(ref[r * out_f + o])) nonfinite++;
      else if (err > worst) worst = err;
    }
  CHECK_MSG(nonfinite == 0, "%s: unsplit XNNPACK: %zu non-finite outputs", what, nonfinite);
  CHECK_MSG(worst < 1e-5, "%s: unsplit XNNPACK vs double reference: relative error %g", what, worst);
  run_everywhere(g, x, y, (sf_shape){1, 1, rows, in_f}, input, ref, rows * out_f, what);
  free(wt);
  free(b);
  free(input);
  free(ref);
  sf_wsrc_destroy(ws);
  sf_wsrc_destroy(ws2);
  sf_graph_destroy(g);
}

int main(void) {
  sf_diag d = {0};
  if (sf_backend_init(&d) != SF_OK) {
    fprintf(stderr, "backend: %s\n", d.msg);
    return 1;
  }
  test_panel_sizes();
  /* 320 -> 96 (1.1 MB of weights): two panels of 48; then 2 panels with a partial last one. */
  test_conv(320, 96, 1, 9, 7);
  test_conv(320, 100, 2, 10, 8);
  test_conv(640, 256, 1, 6, 5); /* 8 panels: tasks on 2 threads, sequential on 3 */
  test_linear(37, 1280, 160);
  test_linear(5, 640, 600);
  test_linear(37, 1280, 1024); /* 14 panels */
  CHECK(tasks_seen >= 3 && sequential_seen >= 3);
  TEST_MAIN_END();
}
