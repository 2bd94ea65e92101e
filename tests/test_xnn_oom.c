/* XNNPACK's own allocations that fail come out of a graph as SF_ERR_OUT_OF_MEMORY (issue 16):
 * creating its operators (packed weights), setting up a convolution (its indirection buffer).
 * The tiny-sd walk of tests/alloc_fail never reaches XNNPACK on CPUs with the own GEMM's SIMD
 * kernels, so this program lowers conv and linear layers onto XNNPACK explicitly and walks
 * every allocation XNNPACK makes while building, planning and running them. It initialises
 * XNNPACK before the library does, with an allocator whose N-th call fails (the library's own
 * xnn_initialize(NULL) then keeps that allocator). */
#include <stdlib.h>
#include <string.h>

#include <pthreadpool.h>
#include <xnnpack.h>

#include "core/context.h"
#include "graph/graph_internal.h"
#include "graph/wsrc.h"
#include "test.h"
#include "test_exec.h"

static long calls, fail_at, live;

static int fail_now(void) { return ++calls == fail_at; }

static void *t_allocate(void *ctx, size_t n) {
  (void)ctx;
  if (fail_now()) return NULL;
  void *p = malloc(n);
  live += p != NULL;
  return p;
}

static void *t_reallocate(void *ctx, void *p, size_t n) {
  (void)ctx;
  if (fail_now()) return NULL;
  void *q = realloc(p, n);
  live += q != NULL && p == NULL;
  return q;
}

static void t_deallocate(void *ctx, void *p) {
  (void)ctx;
  live -= p != NULL;
  free(p);
}

static void *t_aligned_allocate(void *ctx, size_t align, size_t n) {
  (void)ctx;
  if (fail_now()) return NULL;
  void *p = NULL;
  if (posix_memalign(&p, align < sizeof(void *) ? sizeof(void *) : align, n) != 0) return NULL;
  live++;
  return p;
}

static void t_aligned_deallocate(void *ctx, void *p) { t_deallocate(ctx, p); }

static const struct xnn_allocator failing = {NULL, t_allocate, t_reallocate, t_deallocate, t_aligned_allocate,
                                             t_aligned_deallocate};

/* One conv3x3 and one linear on XNNPACK, planned and run on pool; the first failure's status
 * and message. */
static sf_status run_graph(pthreadpool_t pool, sf_diag *d) {
  sf_graph *g = sf_graph_create("xnn");
  if (g == NULL) return sf_diag_set(d, SF_ERR_OUT_OF_MEMORY, "sf_graph_create");
  g->xnnpack_gemm = 1;
  sf_wsrc *ws = sf_wsrc_random(3, "xnn");
  sf_vid x = sf_graph_input(g, "x", 8);
  sf_vid c = sf_g_conv2d(g, ws, "c", x, 16, 3, 1, 1, 1);
  sf_vid y = sf_g_linear(g, ws, "l", c, 24, 1);
  sf_graph_mark_output(g, y);
  sf_status s = sf_graph_build_status(g, d);
  sf_shape in = {1, 8, 8, 8};
  if (s == SF_OK) s = sf_graph_prepare(g, TP(), &in, 1, TX(pool), d);
  if (s == SF_OK) {
    memset(sf_plan_data(TP(), TX(pool), x), 0, 8 * 8 * 8 * sizeof(float));
    s = sf_graph_execute(g, TP(), TX(pool), d);
  }
  sf_wsrc_destroy(ws);
  sf_graph_destroy(g);
  return s;
}

int main(void) {
  CHECK(xnn_initialize(&failing) == xnn_status_success);
  sf_diag d = {0};
  CHECK_MSG(sf_backend_init(&d) == SF_OK, "%s", d.msg); /* the library's own xnn_initialize(NULL) */
  pthreadpool_t pool = pthreadpool_create(2);
  CHECK(pool != NULL);

  /* Without failures: how many allocations XNNPACK makes. */
  fail_at = 0;
  calls = 0;
  sf_diag_clear(&d);
  CHECK_MSG(run_graph(pool, &d) == SF_OK, "%s", d.msg);
  long total = calls;
  CHECK_MSG(live == 0, "%ld XNNPACK blocks alive after destroying the graph", live);
  CHECK_MSG(total >= 4, "XNNPACK made only %ld allocations: is the graph on XNNPACK?", total);
  printf("XNNPACK allocations in building and running the graph: %ld\n", total);

  for (fail_at = 1; fail_at <= total; fail_at++) {
    calls = 0;
    sf_diag_clear(&d);
    sf_status s = run_graph(pool, &d);
    CHECK_MSG(s == SF_ERR_OUT_OF_MEMORY, "XNNPACK allocation %ld failing: status %d (%s)", fail_at, (int)s, d.msg);
    CHECK_MSG(strstr(d.msg, "out of memory") != NULL, "XNNPACK allocation %ld failing: message '%s'", fail_at, d.msg);
    CHECK_MSG(live == 0, "XNNPACK allocation %ld failing: %ld XNNPACK blocks alive after destroying the graph",
              fail_at, live);
    live = 0;
  }
  pthreadpool_destroy(pool);
  TEST_MAIN_END();
}
