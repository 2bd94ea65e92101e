/* diffusers GEGLU after its projection: hidden, gate = proj(x).chunk(2, -1);
 * out = hidden * gelu(gate). The arithmetic is the per-ISA kernel's (graph/ops/eltwise.h). */
#include "core/pool.h"
#include "graph/ops/eltwise.h"
#include "graph/ops/kernels.h"

enum { GEGLU_TILE_ELEMENTS = 16384 };

struct geglu_ctx {
  const float *x;
  float *y;
  size_t c;
  const sf_eltwise_kernels *k;
};

static void geglu_rows(void *arg, size_t r0, size_t nr) {
  const struct geglu_ctx *g = arg;
  const size_t c = g->c;
  for (size_t r = r0; r < r0 + nr; r++) {
    const float *hidden = g->x + r * 2 * c;
    g->k->geglu_row(hidden, hidden + c, g->y + r * c, c);
  }
}

void sf_geglu_f32(pthreadpool_t pool, const float *x, float *y, size_t rows, size_t c) {
  if (rows == 0 || c == 0) return;
  struct geglu_ctx g = {x, y, c, sf_eltwise()};
  const size_t tile = c >= GEGLU_TILE_ELEMENTS ? 1 : GEGLU_TILE_ELEMENTS / c;
  pthreadpool_parallelize_1d_tile_1d(pool, geglu_rows, &g, rows, tile, sf_pool_flags(pool));
}
