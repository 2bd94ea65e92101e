/* snapfusion bench ops: one-node graphs built, planned and run exactly as the networks do,
 * so what is timed is the library's own lowering of each SD-shaped problem. Each conv and
 * linear row is also timed as one plain XNNPACK operator for comparison. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <xnnpack.h>

#include "bench.h"
#include "core/context.h"
#include "graph/graph.h"
#include "graph/ops/kernels.h"
#include "graph/wsrc.h"

typedef enum { OP_CONV, OP_LINEAR, OP_ATTENTION, OP_GROUPNORM_SILU } op_kind;

typedef struct op_case {
  op_kind kind;
  const char *name;
  size_t h, w, c, out;  /* conv / groupnorm: image h x w x c -> out; linear: h rows */
  size_t kv_len, heads, head_dim; /* attention: h*w queries, kv_len keys (0: self) */
  size_t kernel;
  double goal;
} op_case;

static const op_case CASES[] = {
    {OP_CONV, "conv3x3", 64, 64, 320, 320, 0, 0, 0, 3, 0.60},
    {OP_CONV, "conv3x3", 32, 32, 640, 640, 0, 0, 0, 3, 0.60},
    {OP_CONV, "conv3x3", 16, 16, 1280, 1280, 0, 0, 0, 3, 0.60},
    {OP_CONV, "conv3x3", 8, 8, 1280, 1280, 0, 0, 0, 3, 0},
    {OP_CONV, "conv3x3", 128, 128, 512, 512, 0, 0, 0, 3, 0},
    {OP_CONV, "conv3x3", 256, 256, 256, 256, 0, 0, 0, 3, 0},
    {OP_CONV, "conv3x3", 512, 512, 128, 128, 0, 0, 0, 3, 0},
    {OP_CONV, "conv1x1", 64, 64, 320, 320, 0, 0, 0, 1, 0},
    {OP_LINEAR, "linear", 4096, 1, 320, 320, 0, 0, 0, 0, 0},
    {OP_LINEAR, "linear", 4096, 1, 320, 2560, 0, 0, 0, 0, 0},
    {OP_LINEAR, "linear", 4096, 1, 1280, 320, 0, 0, 0, 0, 0},
    {OP_LINEAR, "linear", 1024, 1, 640, 5120, 0, 0, 0, 0, 0},
    {OP_LINEAR, "linear", 256, 1, 1280, 10240, 0, 0, 0, 0, 0},
    {OP_ATTENTION, "self-attention", 64, 64, 320, 320, 0, 8, 40, 0, 0.40},
    {OP_ATTENTION, "cross-attention", 64, 64, 320, 320, 77, 8, 40, 0, 0},
    {OP_GROUPNORM_SILU, "group norm + SiLU", 64, 64, 320, 320, 0, 0, 0, 0, 0.50},
};

/* XNNPACK's fully-connected alone on SD-1.5 shapes: the practical GEMM ceiling. */
static const size_t FC_REFS[][3] = {
    {4096, 1280, 320}, {4096, 320, 1280}, {4096, 1280, 1280}, {1024, 640, 5120}, {256, 1280, 10240}};

/* Each timed sample is `inner` back-to-back runs, enough for ~20 ms (from the warm-up run):
 * a sub-millisecond op timed once per sample mostly measures thread wake-up jitter. */
static int time_graph(sf_graph *g, const sf_plan *pl, const sf_exec *ex, long long repeat, double *median,
                      double *min, sf_diag *d) {
  double *t = malloc((size_t)repeat * sizeof *t);
  if (t == NULL) return sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "out of memory"), 0;
  long long inner = 1;
  for (long long r = -1; r < repeat; r++) {
    double t0 = bench_now();
    for (long long i = 0; i < inner; i++) {
      if (sf_graph_execute(g, pl, ex, d) != SF_OK) {
        free(t);
        return 0;
      }
    }
    double dt = bench_now() - t0;
    if (r >= 0) t[r] = dt / (double)inner;
    else if (dt > 0 && dt < 0.02) inner = (long long)(0.02 / dt) + 1;
  }
  bench_stats(t, (size_t)repeat, median, min);
  free(t);
  return 1;
}

static int time_xnn(xnn_operator_t op, pthreadpool_t pool, long long repeat, double *median) {
  double *t = malloc((size_t)repeat * sizeof *t), min = 0;
  if (t == NULL) return 0;
  for (long long r = -1; r < repeat; r++) {
    double t0 = bench_now();
    if (xnn_run_operator(op, pool) != xnn_status_success) {
      free(t);
      return 0;
    }
    if (r >= 0) t[r] = bench_now() - t0;
  }
  bench_stats(t, (size_t)repeat, median, &min);
  free(t);
  return 1;
}

/* GFLOP/s of the problem as a single XNNPACK operator (conv when kernel > 0, else
 * fully-connected over `rows` rows); 0 when it cannot be measured. */
static double direct_xnn_gflops(pthreadpool_t pool, size_t rows, size_t h, size_t w, size_t c, size_t out,
                                size_t kernel, long long repeat) {
  size_t k_elems = c * (kernel ? kernel * kernel : 1);
  size_t in_n = kernel ? h * w * c : rows * c, out_n = kernel ? h * w * out : rows * out;
  float *wt = malloc(out * k_elems * sizeof *wt), *b = malloc(out * sizeof *b);
  float *x = malloc(in_n * sizeof *x), *y = malloc(out_n * sizeof *y);
  xnn_operator_t op = NULL;
  double gflops = 0, median = 0;
  if (wt && b && x && y) {
    bench_fill_random(wt, out * k_elems, 1, 1.0f / sqrtf((float)k_elems));
    bench_fill_random(b, out, 2, 0.1f);
    bench_fill_random(x, in_n, 3, 1.0f);
    enum xnn_status s;
    if (kernel) {
      uint32_t p = (uint32_t)(kernel / 2);
      s = xnn_create_convolution2d_nhwc_f32(p, p, p, p, (uint32_t)kernel, (uint32_t)kernel, 1, 1, 1, 1, 1, c, out, c,
                                            out, wt, b, -INFINITY, INFINITY, 0, &op);
      if (s == xnn_status_success) s = xnn_setup_convolution2d_nhwc_f32(op, 1, h, w, x, y, pool);
    } else {
      s = xnn_create_fully_connected_nc_f32(c, out, c, out, wt, b, -INFINITY, INFINITY, 0, &op);
      if (s == xnn_status_success) s = xnn_setup_fully_connected_nc_f32(op, rows, x, y, pool);
    }
    if (s == xnn_status_success && time_xnn(op, pool, repeat, &median) && median > 0)
      gflops = 2.0 * (double)(kernel ? h * w : rows) * (double)out * (double)k_elems / median * 1e-9;
  }
  if (op) xnn_delete_operator(op);
  free(wt);
  free(b);
  free(x);
  free(y);
  return gflops;
}

/* Name and shape text of a case (as its row shows them). */
static void describe_case(const op_case *k, bench_row *row) {
  snprintf(row->name, sizeof row->name, "%s", k->name);
  switch (k->kind) {
    case OP_CONV:
      snprintf(row->shape, sizeof row->shape, "%zux%zux%zu->%zu", k->h, k->w, k->c, k->out);
      break;
    case OP_LINEAR:
      snprintf(row->shape, sizeof row->shape, "%zux%zu->%zu", k->h, k->c, k->out);
      break;
    case OP_ATTENTION:
      snprintf(row->shape, sizeof row->shape, "%zux%zu tok x %zux%zu", k->h * k->w, k->kv_len ? k->kv_len : k->h * k->w,
               k->heads, k->head_dim);
      break;
    case OP_GROUPNORM_SILU:
      snprintf(row->shape, sizeof row->shape, "%zux%zux%zu, 32 groups", k->h, k->w, k->c);
      break;
  }
}

static int run_case(const op_case *k, pthreadpool_t pool, long long repeat, bench_row *row, sf_diag *d) {
  sf_graph *g = sf_graph_create("bench");
  sf_wsrc *ws = sf_wsrc_random(7, "bench");
  if (g == NULL || ws == NULL) {
    sf_graph_destroy(g);
    sf_wsrc_destroy(ws);
    sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "out of memory");
    return 0;
  }
  sf_shape shapes[2];
  size_t n_inputs = 1;
  sf_vid x = -1, kv = -1, y = -1;
  switch (k->kind) {
    case OP_CONV:
      x = sf_graph_input(g, "x", k->c);
      y = sf_g_conv2d(g, ws, "conv", x, k->out, k->kernel, 1, k->kernel / 2, 1);
      shapes[0] = (sf_shape){1, k->h, k->w, k->c};
      row->flops = 2.0 * (double)(k->h * k->w) * (double)k->out * (double)(k->c * k->kernel * k->kernel);
      break;
    case OP_LINEAR:
      x = sf_graph_input(g, "x", k->c);
      y = sf_g_linear(g, ws, "fc", x, k->out, 1);
      shapes[0] = (sf_shape){1, 1, k->h, k->c};
      row->flops = 2.0 * (double)k->h * (double)k->out * (double)k->c;
      break;
    case OP_ATTENTION: {
      size_t dm = k->heads * k->head_dim, kv_len = k->kv_len ? k->kv_len : k->h * k->w;
      x = sf_graph_input(g, "q", dm);
      kv = sf_graph_input(g, "kv", 2 * dm);
      y = sf_g_attention(g, x, 0, kv, 0, dm, k->heads, k->head_dim, 0);
      shapes[0] = (sf_shape){1, k->h, k->w, dm};
      shapes[1] = k->kv_len ? (sf_shape){1, 1, kv_len, 2 * dm} : (sf_shape){1, k->h, k->w, 2 * dm};
      n_inputs = 2;
      row->flops = 4.0 * (double)(k->h * k->w) * (double)kv_len * (double)k->head_dim * (double)k->heads;
      break;
    }
    case OP_GROUPNORM_SILU:
      x = sf_graph_input(g, "x", k->c);
      y = sf_g_groupnorm(g, ws, "gn", x, 32, 1e-5f, 1);
      shapes[0] = (sf_shape){1, k->h, k->w, k->c};
      row->bytes = 2.0 * (double)(k->h * k->w * k->c) * sizeof(float);
      break;
  }
  describe_case(k, row);
  row->goal = k->goal;
  sf_graph_mark_output(g, y);
  sf_workspace wspace = {0};
  sf_exec ex = {.pool = pool, .cancel = NULL, .ws = &wspace};
  sf_plan *pl = sf_plan_create();
  int ok = pl != NULL && sf_graph_build_status(g, d) == SF_OK &&
           sf_graph_prepare(g, pl, shapes, n_inputs, &ex, d) == SF_OK;
  if (ok) {
    bench_fill_random(sf_plan_data(pl, &ex, x), sf_shape_numel(shapes[0]), 11, 1.0f);
    if (kv >= 0) bench_fill_random(sf_plan_data(pl, &ex, kv), sf_shape_numel(shapes[1]), 12, 1.0f);
    ok = time_graph(g, pl, &ex, repeat, &row->median_s, &row->min_s, d);
  }
  sf_plan_destroy(pl);
  sf_workspace_release(&wspace);
  sf_wsrc_destroy(ws);
  sf_graph_destroy(g);
  if (ok && (k->kind == OP_CONV || k->kind == OP_LINEAR))
    row->direct_gflops = direct_xnn_gflops(pool, k->h, k->h, k->w, k->c, k->out,
                                           k->kind == OP_CONV ? k->kernel : 0, repeat);
  return ok;
}

int bench_ops(const bench_opts *o, sf_context *ctx, bench_refs *refs, bench_row *rows, size_t *n_rows) {
  pthreadpool_t pool = ctx->pool;
  double s = bench_stream_bandwidth_gbs(pool, (size_t)128 << 20, o->probe_seconds);
  refs->have_stream = s > 0;
  refs->stream_gbs = s;
  for (size_t i = 0; i < sizeof FC_REFS / sizeof FC_REFS[0]; i++) {
    double gf = direct_xnn_gflops(pool, FC_REFS[i][0], 0, 0, FC_REFS[i][1], FC_REFS[i][2], 0, o->repeat);
    if (gf > refs->fc_best_gflops) {
      refs->fc_best_gflops = gf;
      refs->have_fc = 1;
      snprintf(refs->fc_best_shape, sizeof refs->fc_best_shape, "%zux%zu->%zu", FC_REFS[i][0], FC_REFS[i][1],
               FC_REFS[i][2]);
    }
  }
  size_t n = 0;
  for (size_t i = 0; i < sizeof CASES / sizeof CASES[0] && n < BENCH_MAX_ROWS; i++) {
    sf_diag d = {0};
    if (o->only) {
      bench_row probe;
      memset(&probe, 0, sizeof probe);
      describe_case(&CASES[i], &probe);
      if (strstr(probe.name, o->only) == NULL && strstr(probe.shape, o->only) == NULL) continue;
    }
    if (!run_case(&CASES[i], pool, o->repeat, &rows[n], &d)) {
      fprintf(stderr, "snapfusion bench ops: %s: %s\n", CASES[i].name, d.msg);
      return CLI_EXIT_FAIL;
    }
    n++;
  }
  *n_rows = n;
  return 0;
}
