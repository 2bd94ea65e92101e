/* y[s, p, :] = x[s, p, :] + v[s, :]: a per-sample channel vector broadcast over pixels. */
#include "core/pool.h"
#include "graph/ops/kernels.h"

enum { ADD_BIAS_TILE_ELEMENTS = 16384 };

struct add_bias_ctx {
  const float *x, *v;
  float *y;
  size_t hw, c;
};

static void add_bias_pixels(void *arg, size_t s, size_t p0, size_t np) {
  const struct add_bias_ctx *k = arg;
  const size_t c = k->c;
  const float *restrict v = k->v + s * c;
  for (size_t p = p0; p < p0 + np; p++) {
    const float *x = k->x + (s * k->hw + p) * c;
    float *y = k->y + (s * k->hw + p) * c;
    for (size_t ch = 0; ch < c; ch++) y[ch] = x[ch] + v[ch];
  }
}

void sf_add_bias_f32(pthreadpool_t pool, const float *x, const float *v, float *y, size_t n,
                     size_t hw, size_t c) {
  if (n == 0 || hw == 0 || c == 0) return;
  struct add_bias_ctx k = {x, v, y, hw, c};
  const size_t tile = c >= ADD_BIAS_TILE_ELEMENTS ? 1 : ADD_BIAS_TILE_ELEMENTS / c;
  pthreadpool_parallelize_2d_tile_1d(pool, add_bias_pixels, &k, n, hw, tile, sf_pool_flags(pool));
}
