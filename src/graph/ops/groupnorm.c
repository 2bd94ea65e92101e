/* GroupNorm on NHWC activations.
 *
 * One read of x for the statistics: every sample's pixels are cut into chunks of a size that
 * is a function of the shape only (never of the thread count): GN_CHUNK pixels, more for very
 * large images so the scratch stays at most GN_MAX_CHUNKS partials per channel. A chunk task
 * accumulates per-channel float sums, then squared deviations from the chunk's float mean
 * while the chunk is still cache resident. A (sample, group) task merges
 * the chunk partials in double, in a fixed order, with the exact shifted-sum identity
 *   sum (x - mu)^2 = M2_k + 2 (m_k - mu)(S_k - n_k m_k) + n_k (m_k - mu)^2.
 * The normalise pass reads x a second time, chunk by chunk:
 *   y = (x - mean_f) * scale + bias, bias = beta - (mu - mean_f) * scale,
 * so rounding the mean to float costs nothing. */
#include "core/pool.h"
#include "graph/ops/kernels.h"

#include <math.h>

#include "graph/ops/eltwise.h"

enum { GN_CHUNK = 64, GN_MAX_CHUNKS = 1024 };

static size_t gn_chunk_size(size_t hw) {
  const size_t spread = (hw + GN_MAX_CHUNKS - 1) / GN_MAX_CHUNKS;
  return spread > GN_CHUNK ? spread : GN_CHUNK;
}

static size_t gn_chunk_count(size_t hw) { return (hw + gn_chunk_size(hw) - 1) / gn_chunk_size(hw); }

size_t sf_groupnorm_scratch_size(size_t n, size_t hw, size_t c) {
  /* per (sample, chunk): channel sums and M2 (double), chunk means (float);
   * per sample: mean, scale, bias (float) */
  return n * gn_chunk_count(hw) * c * (2 * sizeof(double) + sizeof(float)) +
         n * 3 * c * sizeof(float);
}

struct gn_ctx {
  const float *x;
  float *y;
  size_t hw, c, groups, chunk, chunks;
  float eps;
  const float *gamma, *beta;
  int silu;
  const sf_eltwise_kernels *k; /* the normalisation (+ SiLU) arithmetic */
  double *partial;   /* [n][chunks][2][c]: sum, M2 about the chunk's float mean */
  float *chunk_mean; /* [n][chunks][c] */
  float *chan_mean;  /* [n][c] group mean rounded to float */
  float *chan_scale; /* [n][c] gamma / std */
  float *chan_bias;  /* [n][c] beta, corrected for the mean's rounding */
};

static size_t gn_chunk_pixels(const struct gn_ctx *g, size_t k) {
  const size_t left = g->hw - k * g->chunk;
  return left < g->chunk ? left : g->chunk;
}

static void gn_chunk_stats(void *arg, size_t s, size_t k) {
  const struct gn_ctx *g = arg;
  const size_t c = g->c;
  const size_t np = gn_chunk_pixels(g, k);
  const float *restrict xs = g->x + (s * g->hw + k * g->chunk) * c;
  double *restrict sum = g->partial + (s * g->chunks + k) * 2 * c;
  double *restrict m2 = sum + c;
  float *restrict shift = g->chunk_mean + (s * g->chunks + k) * c;

  /* Within a chunk (at most a few hundred pixels) float sums lose at most np * 2^-24 of the
   * sum of magnitudes, and the squared deviations are taken about the chunk's own mean so
   * they do not cancel; across chunks everything is merged in double. Float here lets the
   * loops run at 8 (16) lanes instead of 4 (8) double lanes with conversions. */
  enum { CB = 256 };
  float fsum[CB], fm2[CB];
  const float inv_count = 1.0f / (float)np;
  for (size_t c0 = 0; c0 < c; c0 += CB) {
    const size_t cb = c - c0 < CB ? c - c0 : CB;
    for (size_t ch = 0; ch < cb; ch++) fsum[ch] = 0.0f;
    for (size_t p = 0; p < np; p++) {
      const float *restrict row = xs + p * c + c0;
      for (size_t ch = 0; ch < cb; ch++) fsum[ch] += row[ch];
    }
    for (size_t ch = 0; ch < cb; ch++) {
      sum[c0 + ch] = (double)fsum[ch];
      shift[c0 + ch] = fsum[ch] * inv_count;
      fm2[ch] = 0.0f;
    }
    for (size_t p = 0; p < np; p++) {
      const float *restrict row = xs + p * c + c0;
      const float *restrict mu = shift + c0;
      for (size_t ch = 0; ch < cb; ch++) {
        const float d = row[ch] - mu[ch];
        fm2[ch] += d * d;
      }
    }
    for (size_t ch = 0; ch < cb; ch++) m2[c0 + ch] = (double)fm2[ch];
  }
}

static void gn_group_stats(void *arg, size_t s, size_t grp) {
  const struct gn_ctx *g = arg;
  const size_t c = g->c, cg = c / g->groups, c0 = grp * cg;
  const double total = (double)g->hw * (double)cg;

  double sum = 0.0;
  for (size_t k = 0; k < g->chunks; k++) {
    const double *ks = g->partial + (s * g->chunks + k) * 2 * c;
    for (size_t ch = c0; ch < c0 + cg; ch++) sum += ks[ch];
  }
  const double mu = sum / total;

  double m2 = 0.0;
  for (size_t k = 0; k < g->chunks; k++) {
    const double np = (double)gn_chunk_pixels(g, k);
    const double *ks = g->partial + (s * g->chunks + k) * 2 * c;
    const double *km2 = ks + c;
    const float *kshift = g->chunk_mean + (s * g->chunks + k) * c;
    for (size_t ch = c0; ch < c0 + cg; ch++) {
      const double shift = (double)kshift[ch];
      const double d = shift - mu;
      m2 += km2[ch] + 2.0 * d * (ks[ch] - np * shift) + np * d * d;
    }
  }
  const double var = m2 > 0.0 ? m2 / total : 0.0;
  const double rstd = 1.0 / sqrt(var + (double)g->eps);

  const float mean_f = (float)mu;
  for (size_t ch = c0; ch < c0 + cg; ch++) {
    const double scale = rstd * (g->gamma ? (double)g->gamma[ch] : 1.0);
    const float scale_f = (float)scale;
    g->chan_mean[s * c + ch] = mean_f;
    g->chan_scale[s * c + ch] = scale_f;
    g->chan_bias[s * c + ch] =
        (float)((g->beta ? (double)g->beta[ch] : 0.0) - (mu - (double)mean_f) * (double)scale_f);
  }
}

static void gn_normalize(void *arg, size_t s, size_t k) {
  const struct gn_ctx *g = arg;
  const size_t c = g->c;
  const size_t np = gn_chunk_pixels(g, k);
  const float *x = g->x + (s * g->hw + k * g->chunk) * c;
  float *y = g->y + (s * g->hw + k * g->chunk) * c;
  const float *mean = g->chan_mean + s * c, *scale = g->chan_scale + s * c;
  const float *bias = g->chan_bias + s * c;
  g->k->norm_rows(x, y, np, c, mean, scale, bias, g->silu);
}

void sf_groupnorm_f32(pthreadpool_t pool, const float *x, float *y, size_t n, size_t hw, size_t c,
                      size_t groups, float eps, const float *gamma, const float *beta, int fuse_silu,
                      void *scratch) {
  if (n == 0 || hw == 0 || c == 0 || groups == 0) return;
  const size_t chunks = gn_chunk_count(hw);
  double *partial = scratch;
  float *chunk_mean = (float *)(partial + n * chunks * 2 * c);
  float *per_channel = chunk_mean + n * chunks * c;
  struct gn_ctx g = {
      .x = x, .y = y, .hw = hw, .c = c, .groups = groups, .chunk = gn_chunk_size(hw), .chunks = chunks, .eps = eps,
      .gamma = gamma, .beta = beta, .silu = fuse_silu, .partial = partial, .k = sf_eltwise(),
      .chunk_mean = chunk_mean,
      .chan_mean = per_channel, .chan_scale = per_channel + n * c,
      .chan_bias = per_channel + 2 * n * c,
  };
  pthreadpool_parallelize_2d(pool, gn_chunk_stats, &g, n, chunks, sf_pool_flags(pool));
  /* Merging the chunk partials is ~chunks * c additions (tens of microseconds): on the calling
   * thread, it saves a pool dispatch, whose wake-up costs more than the work on a loaded
   * machine. */
  for (size_t s = 0; s < n; s++)
    for (size_t grp = 0; grp < groups; grp++) gn_group_stats(&g, s, grp);
  pthreadpool_parallelize_2d(pool, gn_normalize, &g, n, chunks, sf_pool_flags(pool));
}
