/* SiLU: x * sigmoid(x). Fixed-size blocks so threads share the work; elementwise, so any split gives the
 * same bits. */
#include "graph/ops/kernels.h"

#include "graph/ops/vmath.h"

enum { SILU_BLOCK = 16384 };

struct silu_ctx {
  const float *x;
  float *y;
};

/* Inlined twice, once with x == y, so both loops vectorise without a runtime alias check. */
static inline void silu_run(const float *x, float *y, size_t n) {
  size_t i = 0;
#ifdef SF_VMATH_AVX2
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, sf_silu_approx_avx2(_mm256_loadu_ps(x + i)));
#endif
  for (; i < n; i++) {
    const float v = x[i];
    y[i] = sf_silu_approx(v);
  }
}

static void silu_block(void *arg, size_t i0, size_t count) {
  const struct silu_ctx *k = arg;
  if (k->x == k->y) {
    silu_run(k->y + i0, k->y + i0, count);
  } else {
    silu_run(k->x + i0, k->y + i0, count);
  }
}

void sf_silu_f32(pthreadpool_t pool, const float *x, float *y, size_t n) {
  struct silu_ctx k = {x, y};
  pthreadpool_parallelize_1d_tile_1d(pool, silu_block, &k, n, SILU_BLOCK, 0);
}
