/* Residual combinations: y = a * alpha + b, and diffusers' (a + b) / divisor (kept as a true
 * division so results round like the reference rather than via a reciprocal). */
#include "core/pool.h"
#include "graph/ops/kernels.h"

enum { SCALE_ADD_BLOCK = 16384 };

struct scale_add_ctx {
  const float *a, *b;
  float *y;
  float s;
};

static void scale_add_block(void *arg, size_t i0, size_t count) {
  const struct scale_add_ctx *k = arg;
  const float *a = k->a + i0, *b = k->b + i0;
  float *y = k->y + i0;
  const float alpha = k->s;
  for (size_t i = 0; i < count; i++) y[i] = a[i] * alpha + b[i];
}

static void add_div_block(void *arg, size_t i0, size_t count) {
  const struct scale_add_ctx *k = arg;
  const float *a = k->a + i0, *b = k->b + i0;
  float *y = k->y + i0;
  const float divisor = k->s;
  for (size_t i = 0; i < count; i++) y[i] = (a[i] + b[i]) / divisor;
}

void sf_scale_add_f32(pthreadpool_t pool, const float *a, float alpha, const float *b, float *y,
                      size_t n) {
  struct scale_add_ctx k = {a, b, y, alpha};
  pthreadpool_parallelize_1d_tile_1d(pool, scale_add_block, &k, n, SCALE_ADD_BLOCK, sf_pool_flags(pool));
}

void sf_add_div_f32(pthreadpool_t pool, const float *a, const float *b, float divisor, float *y,
                    size_t n) {
  struct scale_add_ctx k = {a, b, y, divisor};
  pthreadpool_parallelize_1d_tile_1d(pool, add_div_block, &k, n, SCALE_ADD_BLOCK, sf_pool_flags(pool));
}
