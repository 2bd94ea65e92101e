/* Custom compute kernels (src/graph/ops/kernels.h) against naive references written here,
 * on awkward shapes; every kernel also has to give the same bits on pools of 1, 2 and 4 threads
 * as on the calling thread, and in place where in place is allowed. */
#include <float.h>
#include <math.h>
#include <pthreadpool.h>
#include <stdint.h>

#include "graph/ops/kernels.h"
#include "graph/ops/vmath.h"
#include "test.h"

static pthreadpool_t pools[3]; /* 1, 2 and 4 threads */
static const size_t pool_threads[3] = {1, 2, 4};

static uint64_t rng_state = 0x9E3779B97F4A7C15u;
static float rnd(float lo, float hi) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return lo + (hi - lo) * (float)((rng_state >> 40) * (1.0 / 16777216.0));
}

static float *falloc(size_t n) {
  float *p = malloc((n ? n : 1) * sizeof(float));
  if (!p) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  return p;
}

static float *frand(size_t n, float lo, float hi) {
  float *p = falloc(n);
  for (size_t i = 0; i < n; i++) p[i] = rnd(lo, hi);
  return p;
}

/* |got - ref| <= atol + rtol |ref| everywhere; reports the worst element. */
static void check_close(const char *what, const float *got, const double *ref, size_t n, double rtol,
                        double atol) {
  size_t worst = 0, bad = 0, nonfinite = 0;
  double worst_ratio = 0.0; /* error / allowed error */
  for (size_t i = 0; i < n; i++) {
    const double ratio = fabs((double)got[i] - ref[i]) / (atol + rtol * fabs(ref[i]));
    if (!(ratio <= 1.0)) bad++;
    if (!isfinite(got[i]) || !isfinite(ratio)) { /* counted, and out of the max */
      nonfinite++;
    } else if (ratio > worst_ratio) {
      worst_ratio = ratio;
      worst = i;
    }
  }
  if (getenv("SF_TEST_VERBOSE")) printf("%-64s error/tolerance %.3f\n", what, worst_ratio);
  CHECK_MSG(nonfinite == 0, "%s: %zu of %zu values not finite", what, nonfinite, n);
  CHECK_MSG(bad == 0, "%s: %zu of %zu outside tolerance; worst [%zu] got %.9g ref %.9g", what, bad,
            n, worst, n ? (double)got[worst] : 0.0, n ? ref[worst] : 0.0);
}

static void check_same(const char *what, const float *a, const float *b, size_t n) {
  CHECK_MSG(memcmp(a, b, n * sizeof(float)) == 0, "%s: outputs differ bitwise", what);
}

/* ---- vmath ------------------------------------------------------------------------------- */

static double ulp_at(double v) {
  const float f = fabsf((float)v);
  if (f < FLT_MIN) return 0x1p-149;
  return (double)(nextafterf(f, INFINITY) - f);
}

static void test_vmath(void) {
  double max_ulp = 0.0;
  size_t nonfinite = 0;
  for (float x = -87.0f; x < 88.7f; x += 0.000731f) {
    const double e = exp((double)x);
    const double u = fabs((double)sf_exp_approx(x) - e) / ulp_at(e);
    if (!isfinite(u)) nonfinite++; /* the inputs are in range: the result must be finite */
    else if (u > max_ulp) max_ulp = u;
  }
  CHECK_MSG(nonfinite == 0, "exp: %zu non-finite results on [-87, 88.7]", nonfinite);
  CHECK_MSG(max_ulp < 2.0, "exp: max error %.3f ulp", max_ulp);
  CHECK(sf_exp_approx(0.0f) == 1.0f);
  CHECK(isinf(sf_exp_approx(100.0f)));
  CHECK(sf_exp_approx(-200.0f) >= 0.0f && sf_exp_approx(-200.0f) < 1e-44f);
  CHECK(fabs(sf_exp_approx(-95.0f) - exp(-95.0)) < 2e-45); /* subnormal result */
  CHECK(isnan(sf_exp_approx(NAN)));

  double max_abs = 0.0, max_rel = 0.0;
  nonfinite = 0;
  for (int i = -1000000; i <= 1000000; i++) {
    const float x = (float)i * 1e-5f;
    const double e = erf((double)x);
    const double err = fabs((double)sf_erf_approx(x) - e);
    if (!isfinite(err)) {
      nonfinite++;
      continue;
    }
    if (err > max_abs) max_abs = err;
    if (e != 0.0 && err / fabs(e) > max_rel) max_rel = err / fabs(e);
  }
  CHECK_MSG(nonfinite == 0, "erf: %zu non-finite results on [-10, 10]", nonfinite);
  CHECK_MSG(max_abs < 1e-6, "erf: max abs error %.3g on [-10, 10]", max_abs);
  CHECK_MSG(max_rel < 2e-7, "erf: max rel error %.3g on [-10, 10]", max_rel);
  CHECK(sf_erf_approx(INFINITY) == 1.0f && sf_erf_approx(-INFINITY) == -1.0f);
  CHECK(sf_erf_approx(1e-30f) == (float)(1e-30 * 1.1283791670955126));
  CHECK(isnan(sf_erf_approx(NAN)));
}

/* ---- normalisation -------------------------------------------------------------------------- */

static void ref_groupnorm(const float *x, double *y, size_t n, size_t hw, size_t c, size_t groups,
                          float eps, const float *gamma, const float *beta, int silu) {
  const size_t cg = c / groups;
  for (size_t s = 0; s < n; s++) {
    for (size_t g = 0; g < groups; g++) {
      double sum = 0.0, sq = 0.0;
      for (size_t p = 0; p < hw; p++)
        for (size_t ch = g * cg; ch < (g + 1) * cg; ch++) sum += x[(s * hw + p) * c + ch];
      const double mean = sum / (double)(hw * cg);
      for (size_t p = 0; p < hw; p++)
        for (size_t ch = g * cg; ch < (g + 1) * cg; ch++) {
          const double d = x[(s * hw + p) * c + ch] - mean;
          sq += d * d;
        }
      const double rstd = 1.0 / sqrt(sq / (double)(hw * cg) + (double)eps);
      for (size_t p = 0; p < hw; p++)
        for (size_t ch = g * cg; ch < (g + 1) * cg; ch++) {
          const size_t i = (s * hw + p) * c + ch;
          double v = (x[i] - mean) * rstd * (gamma ? gamma[ch] : 1.0) + (beta ? beta[ch] : 0.0);
          if (silu) v = v / (1.0 + exp(-v));
          y[i] = v;
        }
    }
  }
}

static void test_groupnorm(void) {
  static const struct {
    size_t n, hw, c, groups;
    float mean, spread;
  } cases[] = {
      {1, 1, 3, 1, 0.0f, 1.0f},     {2, 15, 13, 1, 0.5f, 2.0f},  {2, 15, 32, 8, 3.0f, 0.5f},
      {1, 200, 64, 32, -1.0f, 4.0f}, {2, 130, 96, 32, 0.0f, 1.0f}, {1, 1, 32, 32, 1.0f, 1.0f},
      {1, 4096, 40, 8, 10.0f, 1.0f},  {1, 70001, 6, 3, 2.0f, 1.0f}, /* > 1024 chunks of 64 */
  };
  for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
    const size_t n = cases[ci].n, hw = cases[ci].hw, c = cases[ci].c, groups = cases[ci].groups;
    const size_t total = n * hw * c;
    float *x = frand(total, cases[ci].mean - cases[ci].spread, cases[ci].mean + cases[ci].spread);
    float *gamma = frand(c, 0.5f, 1.5f), *beta = frand(c, -0.5f, 0.5f);
    void *scratch = malloc(sf_groupnorm_scratch_size(n, hw, c));
    double *ref = malloc(total * sizeof(double));
    float *y = falloc(total), *yt = falloc(total);
    if (!scratch || !ref) exit(2);
    for (int silu = 0; silu <= 1; silu++) {
      for (int affine = 0; affine <= 1; affine++) {
        const float *gm = affine ? gamma : NULL, *bt = affine ? beta : NULL;
        char what[128];
        snprintf(what, sizeof what, "groupnorm n=%zu hw=%zu c=%zu g=%zu silu=%d affine=%d", n, hw, c,
                 groups, silu, affine);
        sf_groupnorm_f32(NULL, x, y, n, hw, c, groups, 1e-5f, gm, bt, silu, scratch);
        ref_groupnorm(x, ref, n, hw, c, groups, 1e-5f, gm, bt, silu);
        check_close(what, y, ref, total, 1e-5, 1e-6);
        for (int p = 0; p < 3; p++) {
          sf_groupnorm_f32(pools[p], x, yt, n, hw, c, groups, 1e-5f, gm, bt, silu, scratch);
          check_same(what, y, yt, total);
        }
        memcpy(yt, x, total * sizeof(float));
        sf_groupnorm_f32(pools[2], yt, yt, n, hw, c, groups, 1e-5f, gm, bt, silu, scratch);
        check_same(what, y, yt, total);
      }
    }
    free(x), free(gamma), free(beta), free(scratch), free(ref), free(y), free(yt);
  }
}

static void test_layernorm(void) {
  static const struct {
    size_t rows, c;
  } cases[] = {{3, 3}, {77, 37}, {77, 320}, {2, 1}, {5, 1283}};
  for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
    const size_t rows = cases[ci].rows, c = cases[ci].c, total = rows * c;
    float *x = frand(total, -2.0f, 6.0f);
    float *gamma = frand(c, 0.5f, 1.5f), *beta = frand(c, -0.5f, 0.5f);
    float *y = falloc(total), *yt = falloc(total);
    double *ref = malloc(total * sizeof(double));
    if (!ref) exit(2);
    for (int affine = 0; affine <= 1; affine++) {
      const float *gm = affine ? gamma : NULL, *bt = affine ? beta : NULL;
      for (size_t r = 0; r < rows; r++) {
        double sum = 0.0, sq = 0.0;
        for (size_t j = 0; j < c; j++) sum += x[r * c + j];
        const double mean = sum / (double)c;
        for (size_t j = 0; j < c; j++) sq += (x[r * c + j] - mean) * (x[r * c + j] - mean);
        const double rstd = 1.0 / sqrt(sq / (double)c + 1e-5);
        for (size_t j = 0; j < c; j++)
          ref[r * c + j] = (x[r * c + j] - mean) * rstd * (gm ? gm[j] : 1.0) + (bt ? bt[j] : 0.0);
      }
      char what[96];
      snprintf(what, sizeof what, "layernorm rows=%zu c=%zu affine=%d", rows, c, affine);
      sf_layernorm_f32(NULL, x, y, rows, c, 1e-5f, gm, bt);
      check_close(what, y, ref, total, 1e-5, 1e-6);
      for (int p = 0; p < 3; p++) {
        sf_layernorm_f32(pools[p], x, yt, rows, c, 1e-5f, gm, bt);
        check_same(what, y, yt, total);
      }
      memcpy(yt, x, total * sizeof(float));
      sf_layernorm_f32(pools[2], yt, yt, rows, c, 1e-5f, gm, bt);
      check_same(what, y, yt, total);
    }
    free(x), free(gamma), free(beta), free(y), free(yt), free(ref);
  }
}

/* ---- activations -------------------------------------------------------------------------- */

typedef void (*unary_fn)(pthreadpool_t, const float *, float *, size_t);

static double ref_gelu(double v) { return 0.5 * v * (1.0 + erf(v / sqrt(2.0))); }

static void test_unary(const char *what, unary_fn fn, double (*ref_fn)(double), double rtol,
                       double atol) {
  const size_t n = 3 * 16384 + 37; /* several blocks and a ragged tail */
  float *x = frand(n, -12.0f, 12.0f);
  for (size_t i = 0; i < 2000; i++) x[i] = rnd(-1.5f, 1.5f); /* dense near 0 */
  x[0] = 0.0f, x[1] = -0.0f, x[2] = 90.0f, x[3] = -90.0f, x[4] = 1e-20f, x[5] = -1e-20f;
  float *y = falloc(n), *yt = falloc(n);
  double *ref = malloc(n * sizeof(double));
  if (!ref) exit(2);
  for (size_t i = 0; i < n; i++) ref[i] = ref_fn(x[i]);
  fn(NULL, x, y, n);
  check_close(what, y, ref, n, rtol, atol);
  for (int p = 0; p < 3; p++) {
    fn(pools[p], x, yt, n);
    check_same(what, y, yt, n);
  }
  memcpy(yt, x, n * sizeof(float));
  fn(pools[1], yt, yt, n);
  check_same(what, y, yt, n);
  fn(NULL, x, y, 0); /* empty input is a no-op */
  free(x), free(y), free(yt), free(ref);
}

static double ref_silu(double v) { return v / (1.0 + exp(-v)); }
/* PyTorch evaluates 1.702 * x as a float32 tensor op; that product's rounding moves the result
 * by up to ~|1.702 x| * 6e-8 relative, so the reference rounds it the same way. */
static double ref_quick_gelu(double v) {
  const float z = 1.702f * (float)v;
  return v / (1.0 + exp(-(double)z));
}

static void test_activations(void) {
  /* Tolerances: a few float roundings relative to the value; GELU additionally inherits
   * erf's ~1e-7 absolute error times 0.5|x| where 1 + erf cancels for negative x. */
  test_unary("silu", sf_silu_f32, ref_silu, 5e-7, 1e-37);
  test_unary("quick_gelu", sf_quick_gelu_f32, ref_quick_gelu, 5e-7, 1e-37);
  test_unary("gelu_erf", sf_gelu_erf_f32, ref_gelu, 5e-7, 1e-6);

  static const size_t shapes[][2] = {{77, 37}, {1, 1}, {3, 1280}};
  for (size_t si = 0; si < 3; si++) {
    const size_t rows = shapes[si][0], c = shapes[si][1];
    float *x = frand(rows * 2 * c, -5.0f, 5.0f);
    float *y = falloc(rows * c), *yt = falloc(rows * c);
    double *ref = malloc(rows * c * sizeof(double));
    if (!ref) exit(2);
    for (size_t r = 0; r < rows; r++)
      for (size_t j = 0; j < c; j++)
        ref[r * c + j] = (double)x[r * 2 * c + j] * ref_gelu(x[r * 2 * c + c + j]);
    char what[64];
    snprintf(what, sizeof what, "geglu rows=%zu c=%zu", rows, c);
    sf_geglu_f32(NULL, x, y, rows, c);
    check_close(what, y, ref, rows * c, 1e-6, 5e-6);
    for (int p = 0; p < 3; p++) {
      sf_geglu_f32(pools[p], x, yt, rows, c);
      check_same(what, y, yt, rows * c);
    }
    free(x), free(y), free(yt), free(ref);
  }
}

/* ---- data movement -------------------------------------------------------------------------- */

static void test_upsample(void) {
  static const size_t shapes[][4] = {{1, 1, 1, 3}, {2, 3, 5, 13}, {1, 4, 4, 37}};
  for (size_t si = 0; si < 3; si++) {
    const size_t n = shapes[si][0], h = shapes[si][1], w = shapes[si][2], c = shapes[si][3];
    float *x = frand(n * h * w * c, -1.0f, 1.0f);
    const size_t ny = n * 4 * h * w * c;
    float *y = falloc(ny), *yt = falloc(ny);
    sf_upsample_nearest2x_f32(NULL, x, y, n, h, w, c);
    size_t bad = 0;
    for (size_t s = 0; s < n; s++)
      for (size_t i = 0; i < 2 * h; i++)
        for (size_t j = 0; j < 2 * w; j++)
          for (size_t ch = 0; ch < c; ch++)
            bad += y[((s * 2 * h + i) * 2 * w + j) * c + ch] != x[((s * h + i / 2) * w + j / 2) * c + ch];
    CHECK_MSG(bad == 0, "upsample %zux%zux%zux%zu: %zu wrong", n, h, w, c, bad);
    for (int p = 0; p < 3; p++) {
      sf_upsample_nearest2x_f32(pools[p], x, yt, n, h, w, c);
      check_same("upsample", y, yt, ny);
    }
    free(x), free(y), free(yt);
  }
}

static void test_concat(void) {
  static const size_t shapes[][3] = {{15, 13, 37}, {1, 3, 1}, {4096, 320, 320}, {7, 0, 5}};
  for (size_t si = 0; si < 4; si++) {
    const size_t px = shapes[si][0], ca = shapes[si][1], cb = shapes[si][2];
    float *a = frand(px * ca, -1.0f, 1.0f), *b = frand(px * cb, -1.0f, 1.0f);
    float *y = falloc(px * (ca + cb)), *yt = falloc(px * (ca + cb));
    sf_concat_channels_f32(NULL, a, ca, b, cb, y, px);
    size_t bad = 0;
    for (size_t p = 0; p < px; p++) {
      for (size_t j = 0; j < ca; j++) bad += y[p * (ca + cb) + j] != a[p * ca + j];
      for (size_t j = 0; j < cb; j++) bad += y[p * (ca + cb) + ca + j] != b[p * cb + j];
    }
    CHECK_MSG(bad == 0, "concat px=%zu ca=%zu cb=%zu: %zu wrong", px, ca, cb, bad);
    for (int p = 0; p < 3; p++) {
      sf_concat_channels_f32(pools[p], a, ca, b, cb, yt, px);
      check_same("concat", y, yt, px * (ca + cb));
    }
    free(a), free(b), free(y), free(yt);
  }
}

static void test_transpose(void) {
  static const size_t shapes[][2] = {{37, 77}, {1, 1}, {33, 65}, {3, 1}};
  for (size_t si = 0; si < 4; si++) {
    const size_t rows = shapes[si][0], cols = shapes[si][1];
    float *x = frand(rows * cols, -1.0f, 1.0f);
    float *y = falloc(rows * cols), *yt = falloc(rows * cols);
    sf_transpose_2d_f32(NULL, x, y, rows, cols);
    size_t bad = 0;
    for (size_t i = 0; i < rows; i++)
      for (size_t j = 0; j < cols; j++) bad += y[j * rows + i] != x[i * cols + j];
    CHECK_MSG(bad == 0, "transpose %zux%zu: %zu wrong", rows, cols, bad);
    for (int p = 0; p < 3; p++) {
      sf_transpose_2d_f32(pools[p], x, yt, rows, cols);
      check_same("transpose", y, yt, rows * cols);
    }
    free(x), free(y), free(yt);
  }

  static const size_t nchw[][4] = {{2, 13, 3, 5}, {1, 3, 1, 1}, {2, 37, 9, 7}};
  for (size_t si = 0; si < 3; si++) {
    const size_t n = nchw[si][0], c = nchw[si][1], h = nchw[si][2], w = nchw[si][3];
    const size_t total = n * c * h * w;
    float *x = frand(total, -1.0f, 1.0f);
    float *y = falloc(total), *yt = falloc(total), *back = falloc(total);
    sf_nchw_to_nhwc_f32(NULL, x, y, n, c, h, w);
    size_t bad = 0;
    for (size_t s = 0; s < n; s++)
      for (size_t ch = 0; ch < c; ch++)
        for (size_t i = 0; i < h; i++)
          for (size_t j = 0; j < w; j++)
            bad += y[((s * h + i) * w + j) * c + ch] != x[((s * c + ch) * h + i) * w + j];
    CHECK_MSG(bad == 0, "nchw_to_nhwc %zux%zux%zux%zu: %zu wrong", n, c, h, w, bad);
    sf_nhwc_to_nchw_f32(NULL, y, back, n, h, w, c);
    check_same("nhwc_to_nchw round trip", x, back, total);
    for (int p = 0; p < 3; p++) {
      sf_nchw_to_nhwc_f32(pools[p], x, yt, n, c, h, w);
      check_same("nchw_to_nhwc", y, yt, total);
      sf_nhwc_to_nchw_f32(pools[p], y, yt, n, h, w, c);
      check_same("nhwc_to_nchw", x, yt, total);
    }
    free(x), free(y), free(yt), free(back);
  }
}

/* ---- elementwise -------------------------------------------------------------------------- */

static void test_elementwise(void) {
  const size_t n = 2 * 16384 + 13;
  float *a = frand(n, -3.0f, 3.0f), *b = frand(n, -3.0f, 3.0f);
  float *y = falloc(n), *yt = falloc(n);
  size_t bad;

  sf_add_f32(NULL, a, b, y, n);
  bad = 0;
  for (size_t i = 0; i < n; i++) bad += y[i] != a[i] + b[i];
  CHECK_MSG(bad == 0, "add: %zu wrong", bad);
  for (int p = 0; p < 3; p++) {
    memcpy(yt, a, n * sizeof(float));
    sf_add_f32(pools[p], yt, b, yt, n); /* in place over a */
    check_same("add in place", y, yt, n);
  }

  const float alpha = 0.7071f;
  sf_scale_add_f32(NULL, a, alpha, b, y, n);
  bad = 0;
  for (size_t i = 0; i < n; i++) {
    const float prod = a[i] * alpha;
    bad += y[i] != prod + b[i];
  }
  CHECK_MSG(bad == 0, "scale_add: %zu wrong", bad);
  for (int p = 0; p < 3; p++) {
    memcpy(yt, b, n * sizeof(float));
    sf_scale_add_f32(pools[p], a, alpha, yt, yt, n); /* in place over b */
    check_same("scale_add in place", y, yt, n);
  }

  sf_add_div_f32(NULL, a, b, 3.0f, y, n);
  bad = 0;
  for (size_t i = 0; i < n; i++) {
    const float sum = a[i] + b[i];
    bad += y[i] != sum / 3.0f;
  }
  CHECK_MSG(bad == 0, "add_div: %zu wrong", bad);
  for (int p = 0; p < 3; p++) {
    memcpy(yt, a, n * sizeof(float));
    sf_add_div_f32(pools[p], yt, b, 3.0f, yt, n);
    check_same("add_div in place", y, yt, n);
  }

  static const size_t shapes[][3] = {{2, 15, 13}, {1, 1, 3}, {2, 4096, 37}, {1, 77, 320}};
  for (size_t si = 0; si < 4; si++) {
    const size_t ns = shapes[si][0], hw = shapes[si][1], c = shapes[si][2], total = ns * hw * c;
    float *x = frand(total, -1.0f, 1.0f), *v = frand(ns * c, -1.0f, 1.0f);
    float *o = falloc(total), *ot = falloc(total);
    sf_add_bias_f32(NULL, x, v, o, ns, hw, c);
    bad = 0;
    for (size_t s = 0; s < ns; s++)
      for (size_t p = 0; p < hw; p++)
        for (size_t ch = 0; ch < c; ch++)
          bad += o[(s * hw + p) * c + ch] != x[(s * hw + p) * c + ch] + v[s * c + ch];
    CHECK_MSG(bad == 0, "add_bias %zux%zux%zu: %zu wrong", ns, hw, c, bad);
    for (int p = 0; p < 3; p++) {
      memcpy(ot, x, total * sizeof(float));
      sf_add_bias_f32(pools[p], ot, v, ot, ns, hw, c);
      check_same("add_bias in place", o, ot, total);
    }
    free(x), free(v), free(o), free(ot);
  }
  free(a), free(b), free(y), free(yt);
}

/* ---- timestep embedding ----------------------------------------------------------------------- */

static void test_timestep_embedding(void) {
  const float t[3] = {0.0f, 1.0f, 999.0f};
  static const struct {
    size_t dim;
    int flip;
    float shift, scale;
  } cases[] = {{320, 1, 0.0f, 1.0f}, {7, 0, 1.0f, 1.0f}, {256, 0, 1.0f, 2.5f}};
  for (size_t ci = 0; ci < 3; ci++) {
    const size_t dim = cases[ci].dim, half = dim / 2;
    float out[3 * 320];
    sf_timestep_embedding_f32(t, 3, dim, cases[ci].flip, cases[ci].shift, cases[ci].scale, 10000.0f,
                              out);
    /* Reference: the same float32 roundings of the intermediates, sin/cos evaluated in double,
     * so the only slack is libm's sinf/cosf/expf last-bit behaviour. */
    const float neg_log = (float)-log(10000.0);
    const float denom = (float)((double)half - (double)cases[ci].shift);
    size_t bad = 0;
    for (size_t s = 0; s < 3; s++) {
      for (size_t i = 0; i < half; i++) {
        const float exponent = (neg_log * (float)i) / denom;
        const float freq = (float)exp((double)exponent);
        const float prod = t[s] * freq;
        const float arg = cases[ci].scale * prod;
        const double sv = sin((double)arg), cv = cos((double)arg);
        const float got_sin = out[s * dim + (cases[ci].flip ? half + i : i)];
        const float got_cos = out[s * dim + (cases[ci].flip ? i : half + i)];
        /* one ulp of freq moves arg by ~6e-8 |arg|, i.e. sin by up to that much */
        const double tol = 2e-7 + 1.2e-7 * fabs((double)arg);
        bad += !(fabs(got_sin - sv) <= tol) + !(fabs(got_cos - cv) <= tol);
      }
      if (dim % 2) bad += out[s * dim + dim - 1] != 0.0f;
    }
    CHECK_MSG(bad == 0, "timestep_embedding dim=%zu flip=%d: %zu wrong", dim, cases[ci].flip, bad);
    /* t = 0: sin half exactly 0, cos half exactly 1 */
    bad = 0;
    for (size_t i = 0; i < half; i++)
      bad += out[cases[ci].flip ? half + i : i] != 0.0f || out[cases[ci].flip ? i : half + i] != 1.0f;
    CHECK_MSG(bad == 0, "timestep_embedding dim=%zu at t=0: %zu wrong", dim, bad);
  }
}

int main(void) {
  for (int p = 0; p < 3; p++) {
    pools[p] = pthreadpool_create(pool_threads[p]);
    if (!pools[p]) {
      fprintf(stderr, "pthreadpool_create(%zu) failed\n", pool_threads[p]);
      return 1;
    }
  }
  test_vmath();
  test_groupnorm();
  test_layernorm();
  test_activations();
  test_upsample();
  test_concat();
  test_transpose();
  test_elementwise();
  test_timestep_embedding();
  for (int p = 0; p < 3; p++) pthreadpool_destroy(pools[p]);
  TEST_MAIN_END();
}
