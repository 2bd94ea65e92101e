/* QuickGELU (CLIP): x * sigmoid(1.702 x). Fixed-size blocks so threads share the work; elementwise, so any split gives the
 * same bits. */
#include "graph/ops/kernels.h"

#include "graph/ops/vmath.h"

enum { QUICK_GELU_BLOCK = 16384 };

struct quick_gelu_ctx {
  const float *x;
  float *y;
};

/* Inlined twice, once with x == y, so both loops vectorise without a runtime alias check. */
static inline void quick_gelu_run(const float *x, float *y, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const float v = x[i];
    y[i] = v / (1.0f + sf_exp_approx(-1.702f * v));
  }
}

static void quick_gelu_block(void *arg, size_t i0, size_t count) {
  const struct quick_gelu_ctx *k = arg;
  if (k->x == k->y) {
    quick_gelu_run(k->y + i0, k->y + i0, count);
  } else {
    quick_gelu_run(k->x + i0, k->y + i0, count);
  }
}

void sf_quick_gelu_f32(pthreadpool_t pool, const float *x, float *y, size_t n) {
  struct quick_gelu_ctx k = {x, y};
  pthreadpool_parallelize_1d_tile_1d(pool, quick_gelu_block, &k, n, QUICK_GELU_BLOCK, 0);
}
