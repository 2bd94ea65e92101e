/* 2-D transposes in 32x32 tiles (a tile of source and destination stays in L1), and the
 * NCHW <-> NHWC layout changes built on them (one [c, hw] transpose per sample). */
#include "core/pool.h"
#include "graph/ops/kernels.h"

enum { TR_TILE = 32 };

struct tr_ctx {
  const float *x;
  float *y;
  size_t rows, cols; /* per matrix */
};

static inline void tr_tile(const float *restrict x, float *restrict y, size_t rows, size_t cols,
                           size_t i0, size_t j0, size_t ni, size_t nj) {
  for (size_t i = i0; i < i0 + ni; i++) {
    for (size_t j = j0; j < j0 + nj; j++) y[j * rows + i] = x[i * cols + j];
  }
}

static void tr_task(void *arg, size_t m, size_t i0, size_t j0, size_t ni, size_t nj) {
  const struct tr_ctx *t = arg;
  const size_t plane = t->rows * t->cols;
  tr_tile(t->x + m * plane, t->y + m * plane, t->rows, t->cols, i0, j0, ni, nj);
}

static void tr_batched(pthreadpool_t pool, const float *x, float *y, size_t batch, size_t rows,
                       size_t cols) {
  if (batch == 0 || rows == 0 || cols == 0) return;
  struct tr_ctx t = {x, y, rows, cols};
  pthreadpool_parallelize_3d_tile_2d(pool, tr_task, &t, batch, rows, cols, TR_TILE, TR_TILE, sf_pool_flags(pool));
}

void sf_transpose_2d_f32(pthreadpool_t pool, const float *x, float *y, size_t rows, size_t cols) {
  tr_batched(pool, x, y, 1, rows, cols);
}

void sf_nchw_to_nhwc_f32(pthreadpool_t pool, const float *x, float *y, size_t n, size_t c, size_t h,
                         size_t w) {
  tr_batched(pool, x, y, n, c, h * w);
}

void sf_nhwc_to_nchw_f32(pthreadpool_t pool, const float *x, float *y, size_t n, size_t h, size_t w,
                         size_t c) {
  tr_batched(pool, x, y, n, h * w, c);
}
