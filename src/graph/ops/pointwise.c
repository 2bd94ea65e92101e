#include "core/pool.h"
#include "graph/ops/pointwise.h"

#include <math.h>

/* Work is cut into fixed 16K-element tiles so every element is computed the same way
 * whatever the thread count. */
#define TILE 16384

typedef struct {
  const float *x;
  float *y;
  size_t n;
  float s;
  int kind;
} pw_args;

enum { PW_RELU, PW_SCALE, PW_TANH_SCALE };

static void pw_task(void *ctx, size_t tile) {
  const pw_args *a = ctx;
  size_t begin = tile * TILE, end = begin + TILE < a->n ? begin + TILE : a->n;
  const float *restrict x = a->x;
  float *y = a->y;
  switch (a->kind) {
    case PW_RELU:
      for (size_t i = begin; i < end; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
      break;
    case PW_SCALE:
      for (size_t i = begin; i < end; i++) y[i] = x[i] * a->s;
      break;
    case PW_TANH_SCALE: {
      float inv = 1.0f / a->s;
      for (size_t i = begin; i < end; i++) y[i] = tanhf(x[i] * inv) * a->s;
      break;
    }
  }
}

static void pw_run(pthreadpool_t pool, const float *x, float *y, size_t n, float s, int kind) {
  pw_args a = {x, y, n, s, kind};
  pthreadpool_parallelize_1d(pool, pw_task, &a, (n + TILE - 1) / TILE, sf_pool_flags(pool));
}

void sf_relu_f32(pthreadpool_t pool, const float *x, float *y, size_t n) { pw_run(pool, x, y, n, 0, PW_RELU); }
void sf_scale_f32(pthreadpool_t pool, const float *x, float *y, size_t n, float s) {
  pw_run(pool, x, y, n, s, PW_SCALE);
}
void sf_tanh_scale_f32(pthreadpool_t pool, const float *x, float *y, size_t n, float s) {
  pw_run(pool, x, y, n, s, PW_TANH_SCALE);
}
