/* GELU, exact erf form (torch.nn.functional.gelu default). Fixed-size blocks so threads share
 * the work; elementwise, so any split gives the same bits. The arithmetic is the per-ISA
 * kernel's (graph/ops/eltwise.h). */
#include "core/pool.h"
#include "graph/ops/eltwise.h"
#include "graph/ops/kernels.h"

enum { GELU_ERF_BLOCK = 16384 };

struct gelu_erf_ctx {
  const float *x;
  float *y;
  const sf_eltwise_kernels *k;
};

static void gelu_erf_block(void *arg, size_t i0, size_t count) {
  const struct gelu_erf_ctx *g = arg;
  g->k->gelu_erf(g->x + i0, g->y + i0, count);
}

void sf_gelu_erf_f32(pthreadpool_t pool, const float *x, float *y, size_t n) {
  struct gelu_erf_ctx g = {x, y, sf_eltwise()};
  pthreadpool_parallelize_1d_tile_1d(pool, gelu_erf_block, &g, n, GELU_ERF_BLOCK, sf_pool_flags(pool));
}
