/* diffusers GEGLU after its projection: hidden, gate = proj(x).chunk(2, -1);
 * out = hidden * gelu(gate). */
#include "graph/ops/kernels.h"

#include "graph/ops/vmath.h"

enum { GEGLU_TILE_ELEMENTS = 16384 };

struct geglu_ctx {
  const float *x;
  float *y;
  size_t c;
};

static void geglu_rows(void *arg, size_t r0, size_t nr) {
  const struct geglu_ctx *g = arg;
  const size_t c = g->c;
  for (size_t r = r0; r < r0 + nr; r++) {
    const float *restrict hidden = g->x + r * 2 * c;
    const float *restrict gate = hidden + c;
    float *restrict y = g->y + r * c;
    for (size_t j = 0; j < c; j++) y[j] = hidden[j] * sf_gelu_erf_approx(gate[j]);
  }
}

void sf_geglu_f32(pthreadpool_t pool, const float *x, float *y, size_t rows, size_t c) {
  if (rows == 0 || c == 0) return;
  struct geglu_ctx g = {x, y, c};
  const size_t tile = c >= GEGLU_TILE_ELEMENTS ? 1 : GEGLU_TILE_ELEMENTS / c;
  pthreadpool_parallelize_1d_tile_1d(pool, geglu_rows, &g, rows, tile, 0);
}
