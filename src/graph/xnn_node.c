/* conv2d / linear nodes lowered onto XNNPACK operators (on CPUs without the own GEMM's SIMD
 * microkernels, or in graphs that ask for XNNPACK): creation bookkeeping, setup against a
 * plan's workspace, and running, including output-channel panels (graph/xnn_panels.h). */
#include "core/pool.h"
#include <stdatomic.h>
#include <stdlib.h>

#include "graph/graph_internal.h"
#include "graph/xnn_panels.h"

/* XNNPACK allocates when creating operators (packed weights), setting up a convolution (its
 * indirection buffer) and running: its xnn_status_out_of_memory is SF_ERR_OUT_OF_MEMORY. */
static sf_status xnn_fail_status(enum xnn_status xs) {
  return xs == xnn_status_out_of_memory ? SF_ERR_OUT_OF_MEMORY : SF_ERR_BACKEND;
}
static const char *xnn_fail_word(enum xnn_status xs) { return xs == xnn_status_out_of_memory ? ": out of memory" : ""; }

sf_node *sf_xnn_node_add(sf_graph *g, sf_op op, sf_vid x, size_t out_ch, xnn_operator_t *ops, size_t n_panels,
                         size_t panel_oc, enum xnn_status xs, const char *create_fn, const char *prefix) {
  sf_node *n = NULL;
  if (xs != xnn_status_success)
    sf_graph_fail(g, xnn_fail_status(xs), "%s: %s failed (status %d)%s", prefix, create_fn, (int)xs,
                  xnn_fail_word(xs));
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
  g->n_xnn++;
  return n;
}

sf_status sf_xnn_setup(const sf_graph *g, const sf_plan *pl, void *arena, sf_node *n, pthreadpool_t pool,
                       sf_diag *d) {
  sf_shape a = pl->shapes[n->in[0]];
  const float *x = sf_node_in(pl, arena, n, 0);
  float *y = sf_node_out(pl, arena, n);
  size_t count = n->n_panels ? n->n_panels : 1;
  n->panels_in_tasks = n->n_panels && sf_xnn_panels_in_tasks(n->n_panels, sf_pool_threads(pool));
  pthreadpool_t op_pool = n->panels_in_tasks ? NULL : pool;
  for (size_t p = 0; p < count; p++) {
    xnn_operator_t op = n->n_panels ? n->panels[p] : n->xop;
    enum xnn_status xs;
    if (n->op == SF_OP_CONV2D) {
      xs = xnn_setup_convolution2d_nhwc_f32(op, a.n, a.h, a.w, x, y + p * n->panel_oc, op_pool);
      if (xs != xnn_status_success)
        return sf_diag_set(d, xnn_fail_status(xs),
                           "%s: xnn_setup_convolution2d_nhwc_f32 failed (status %d) for %zux%zux%zu%s", g->name,
                           (int)xs, a.n, a.h, a.w, xnn_fail_word(xs));
    } else {
      size_t rows = a.n * a.h * a.w;
      xs = xnn_setup_fully_connected_nc_f32(op, rows, x, y + p * n->panel_oc, op_pool);
      if (xs != xnn_status_success)
        return sf_diag_set(d, xnn_fail_status(xs),
                           "%s: xnn_setup_fully_connected_nc_f32 failed (status %d) for %zu rows%s", g->name,
                           (int)xs, rows, xnn_fail_word(xs));
    }
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

sf_status sf_xnn_run(const sf_graph *g, sf_node *n, pthreadpool_t pool, sf_diag *d) {
  if (n->n_panels && n->panels_in_tasks) {
    struct panel_tasks t = {.ops = n->panels};
    atomic_init(&t.failed, 0);
    pthreadpool_parallelize_1d(pool, run_panel_task, &t, n->n_panels, sf_pool_flags(pool));
    int failed = atomic_load(&t.failed);
    if (failed)
      return sf_diag_set(d, xnn_fail_status((enum xnn_status)(failed - 1)), "%s: xnn_run_operator failed (status %d)%s",
                         g->name, failed - 1, xnn_fail_word((enum xnn_status)(failed - 1)));
    return SF_OK;
  }
  size_t count = n->n_panels ? n->n_panels : 1;
  for (size_t p = 0; p < count; p++) {
    enum xnn_status xs = xnn_run_operator(n->n_panels ? n->panels[p] : n->xop, pool);
    if (xs != xnn_status_success)
      return sf_diag_set(d, xnn_fail_status(xs), "%s: xnn_run_operator failed (status %d)%s", g->name, (int)xs,
                         xnn_fail_word(xs));
  }
  return SF_OK;
}
