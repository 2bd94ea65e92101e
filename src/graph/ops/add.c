/* Elementwise y = a + b. */
#include "core/pool.h"
#include "graph/ops/kernels.h"

enum { ADD_BLOCK = 16384 };

struct add_ctx {
  const float *a, *b;
  float *y;
};

static void add_block(void *arg, size_t i0, size_t count) {
  const struct add_ctx *k = arg;
  const float *a = k->a + i0, *b = k->b + i0;
  float *y = k->y + i0;
  for (size_t i = 0; i < count; i++) y[i] = a[i] + b[i];
}

void sf_add_f32(pthreadpool_t pool, const float *a, const float *b, float *y, size_t n) {
  struct add_ctx k = {a, b, y};
  pthreadpool_parallelize_1d_tile_1d(pool, add_block, &k, n, ADD_BLOCK, sf_pool_flags(pool));
}
