/* SiLU: x * sigmoid(x). Fixed-size blocks so threads share the work; elementwise, so any split
 * gives the same bits. The arithmetic is the per-ISA kernel's (graph/ops/eltwise.h). */
#include "core/pool.h"
#include "graph/ops/eltwise.h"
#include "graph/ops/kernels.h"

enum { SILU_BLOCK = 16384 };

struct silu_ctx {
  const float *x;
  float *y;
  const sf_eltwise_kernels *k;
};

static void silu_block(void *arg, size_t i0, size_t count) {
  const struct silu_ctx *s = arg;
  s->k->silu(s->x + i0, s->y + i0, count);
}

void sf_silu_f32(pthreadpool_t pool, const float *x, float *y, size_t n) {
  struct silu_ctx s = {x, y, sf_eltwise()};
  pthreadpool_parallelize_1d_tile_1d(pool, silu_block, &s, n, SILU_BLOCK, sf_pool_flags(pool));
}
