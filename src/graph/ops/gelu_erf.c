/* GELU, exact erf form (torch.nn.functional.gelu default). Fixed-size blocks so threads share the work; elementwise, so any split gives the
 * same bits. */
#include "graph/ops/kernels.h"

#include "graph/ops/vmath.h"

enum { GELU_ERF_BLOCK = 16384 };

struct gelu_erf_ctx {
  const float *x;
  float *y;
};

/* Inlined twice, once with x == y, so both loops vectorise without a runtime alias check. */
static inline void gelu_erf_run(const float *x, float *y, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const float v = x[i];
    y[i] = sf_gelu_erf_approx(v);
  }
}

static void gelu_erf_block(void *arg, size_t i0, size_t count) {
  const struct gelu_erf_ctx *k = arg;
  if (k->x == k->y) {
    gelu_erf_run(k->y + i0, k->y + i0, count);
  } else {
    gelu_erf_run(k->x + i0, k->y + i0, count);
  }
}

void sf_gelu_erf_f32(pthreadpool_t pool, const float *x, float *y, size_t n) {
  struct gelu_erf_ctx k = {x, y};
  pthreadpool_parallelize_1d_tile_1d(pool, gelu_erf_block, &k, n, GELU_ERF_BLOCK, 0);
}
