/* LayerNorm over the last dimension. One row is one reduction, done by one task in a fixed
 * order; sixteen independent float lanes keep the sums vectorised and short. */
#include "core/pool.h"
#include "graph/ops/kernels.h"

#include <math.h>

enum { LN_LANES = 16, LN_TILE_ELEMENTS = 8192 };

struct ln_ctx {
  const float *x;
  float *y;
  size_t c;
  float eps;
  const float *gamma, *beta;
};

static float ln_lane_sum(const float acc[LN_LANES]) {
  double s = 0.0;
  for (int k = 0; k < LN_LANES; k++) s += (double)acc[k];
  return (float)s;
}

static inline void ln_row(const float *x, float *y, size_t c, float eps, const float *gamma,
                          const float *beta) {
  float acc[LN_LANES] = {0};
  size_t i = 0;
  for (; i + LN_LANES <= c; i += LN_LANES) {
    for (int k = 0; k < LN_LANES; k++) acc[k] += x[i + k];
  }
  for (size_t k = 0; i < c; i++, k++) acc[k] += x[i];
  const float mean = ln_lane_sum(acc) / (float)c;

  float sq[LN_LANES] = {0};
  i = 0;
  for (; i + LN_LANES <= c; i += LN_LANES) {
    for (int k = 0; k < LN_LANES; k++) {
      const float d = x[i + k] - mean;
      sq[k] += d * d;
    }
  }
  for (size_t k = 0; i < c; i++, k++) {
    const float d = x[i] - mean;
    sq[k] += d * d;
  }
  const float rstd = (float)(1.0 / sqrt((double)(ln_lane_sum(sq) / (float)c) + (double)eps));

  if (gamma && beta) {
    for (size_t j = 0; j < c; j++) y[j] = (x[j] - mean) * rstd * gamma[j] + beta[j];
  } else if (gamma) {
    for (size_t j = 0; j < c; j++) y[j] = (x[j] - mean) * rstd * gamma[j];
  } else if (beta) {
    for (size_t j = 0; j < c; j++) y[j] = (x[j] - mean) * rstd + beta[j];
  } else {
    for (size_t j = 0; j < c; j++) y[j] = (x[j] - mean) * rstd;
  }
}

static void ln_rows(void *arg, size_t r0, size_t nr) {
  const struct ln_ctx *l = arg;
  for (size_t r = r0; r < r0 + nr; r++) {
    const float *x = l->x + r * l->c;
    float *y = l->y + r * l->c;
    if (x == y) {
      ln_row(y, y, l->c, l->eps, l->gamma, l->beta);
    } else {
      ln_row(x, y, l->c, l->eps, l->gamma, l->beta);
    }
  }
}

void sf_layernorm_f32(pthreadpool_t pool, const float *x, float *y, size_t rows, size_t c, float eps,
                      const float *gamma, const float *beta) {
  if (rows == 0 || c == 0) return;
  struct ln_ctx l = {x, y, c, eps, gamma, beta};
  const size_t tile = c >= LN_TILE_ELEMENTS ? 1 : LN_TILE_ELEMENTS / c;
  pthreadpool_parallelize_1d_tile_1d(pool, ln_rows, &l, rows, tile, sf_pool_flags(pool));
}
