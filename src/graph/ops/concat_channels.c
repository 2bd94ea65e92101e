/* Channel concatenation of two NHWC tensors with the same pixels (UNet skip connections). */
#include "core/pool.h"
#include "graph/ops/kernels.h"

#include <string.h>

enum { CONCAT_TILE_ELEMENTS = 16384 };

struct concat_ctx {
  const float *a, *b;
  float *y;
  size_t ca, cb;
};

static void concat_pixels(void *arg, size_t p0, size_t np) {
  const struct concat_ctx *k = arg;
  const size_t ca = k->ca, cb = k->cb, cy = ca + cb;
  for (size_t p = p0; p < p0 + np; p++) {
    memcpy(k->y + p * cy, k->a + p * ca, ca * sizeof(float));
    memcpy(k->y + p * cy + ca, k->b + p * cb, cb * sizeof(float));
  }
}

void sf_concat_channels_f32(pthreadpool_t pool, const float *a, size_t ca, const float *b, size_t cb,
                            float *y, size_t pixels) {
  const size_t cy = ca + cb;
  if (pixels == 0 || cy == 0) return;
  struct concat_ctx k = {a, b, y, ca, cb};
  const size_t tile = cy >= CONCAT_TILE_ELEMENTS ? 1 : CONCAT_TILE_ELEMENTS / cy;
  pthreadpool_parallelize_1d_tile_1d(pool, concat_pixels, &k, pixels, tile, sf_pool_flags(pool));
}
