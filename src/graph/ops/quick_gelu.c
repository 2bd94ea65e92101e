/* QuickGELU (CLIP): x * sigmoid(1.702 x). Fixed-size blocks so threads share the work;
 * elementwise, so any split gives the same bits. The arithmetic is the per-ISA kernel's
 * (graph/ops/eltwise.h). */
#include "core/pool.h"
#include "graph/ops/eltwise.h"
#include "graph/ops/kernels.h"

enum { QUICK_GELU_BLOCK = 16384 };

struct quick_gelu_ctx {
  const float *x;
  float *y;
  const sf_eltwise_kernels *k;
};

static void quick_gelu_block(void *arg, size_t i0, size_t count) {
  const struct quick_gelu_ctx *q = arg;
  q->k->quick_gelu(q->x + i0, q->y + i0, count);
}

void sf_quick_gelu_f32(pthreadpool_t pool, const float *x, float *y, size_t n) {
  struct quick_gelu_ctx q = {x, y, sf_eltwise()};
  pthreadpool_parallelize_1d_tile_1d(pool, quick_gelu_block, &q, n, QUICK_GELU_BLOCK, sf_pool_flags(pool));
}
