/* Branch-free float32 exp / erf / sigmoid written so that GCC and Clang vectorise the loops
 * that call them (libm's expf and erff are opaque calls that block vectorisation).
 * Header-only on purpose: each per-ISA kernel file inlines these into its own loops. */
#ifndef SF_GRAPH_OPS_VMATH_H
#define SF_GRAPH_OPS_VMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Always a fused multiply-add, so every build and every CPU rounds alike: fmaf is one
 * instruction where the file is compiled for FMA (the per-ISA kernel files, AArch64) and
 * glibc's exact software fma otherwise. Only the per-ISA elementwise kernels
 * (graph/ops/eltwise.h) include this header. */
#define SF_MADD(a, b, c) fmaf((a), (b), (c))

static inline float sf_f32_from_bits(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

static inline uint32_t sf_f32_to_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

/* exp(x), < 2 ulp over the normal range; subnormal results and overflow to +inf come out
 * right because 2^n is applied as two factors; NaN propagates.
 * Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, then a degree-7 Taylor polynomial
 * (truncation error 5e-9 relative, well under rounding). */
static inline float sf_exp_approx(float x) {
  const float magic = 0x1.8p23f; /* adding it rounds to an integer held in the low mantissa bits */
  x = x < -104.0f ? -104.0f : x;
  x = x > 89.0f ? 89.0f : x;
  const float t = SF_MADD(x, 0x1.715476p+0f, magic);
  const float kn = t - magic;
  const int32_t n = (int32_t)(sf_f32_to_bits(t) - sf_f32_to_bits(magic));
  float r = SF_MADD(kn, -0x1.62e400p-1f, x); /* ln2 high part: 16 significant bits, exact product */
  r = SF_MADD(kn, -0x1.7f7d1cp-20f, r);      /* ln2 low part */
  float p = 1.0f / 5040.0f;
  p = SF_MADD(p, r, 1.0f / 720.0f);
  p = SF_MADD(p, r, 1.0f / 120.0f);
  p = SF_MADD(p, r, 1.0f / 24.0f);
  p = SF_MADD(p, r, 1.0f / 6.0f);
  p = SF_MADD(p, r, 0.5f);
  p = SF_MADD(p, r, 1.0f);
  p = SF_MADD(p, r, 1.0f);
  const int32_t n1 = n >> 1;
  const int32_t n2 = n - n1;
  const float s1 = sf_f32_from_bits((uint32_t)(n1 + 127) << 23);
  const float s2 = sf_f32_from_bits((uint32_t)(n2 + 127) << 23);
  return p * s1 * s2;
}

/* x * sigmoid(x) = x / (1 + exp(-x)); the limits (0 for x -> -inf, x for x -> +inf) hold. */
static inline float sf_silu_approx(float x) {
  return x / (1.0f + sf_exp_approx(-x));
}

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define SF_VMATH_AVX2 1
/* sf_exp_approx on 8 lanes, operation for operation, so it gives the same bits as the scalar
 * function on every input. Written out because GCC vectorises the scalar clamps as
 * compare-and-blend sequences (it keeps their NaN behaviour), which made SiLU cost twice
 * its arithmetic; MAXPS/MINPS return their second operand when either is NaN, which is
 * exactly `x < lo ? lo : x` with x second. */
static inline __m256 sf_exp_approx_avx2(__m256 x) {
  const __m256 magic = _mm256_set1_ps(0x1.8p23f);
  x = _mm256_max_ps(_mm256_set1_ps(-104.0f), x);
  x = _mm256_min_ps(_mm256_set1_ps(89.0f), x);
  const __m256 t = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), magic);
  const __m256 kn = _mm256_sub_ps(t, magic);
  const __m256i n = _mm256_sub_epi32(_mm256_castps_si256(t), _mm256_castps_si256(magic));
  __m256 r = _mm256_fmadd_ps(kn, _mm256_set1_ps(-0x1.62e400p-1f), x);
  r = _mm256_fmadd_ps(kn, _mm256_set1_ps(-0x1.7f7d1cp-20f), r);
  __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  const __m256i n1 = _mm256_srai_epi32(n, 1);
  const __m256i n2 = _mm256_sub_epi32(n, n1);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
  const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
  return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

/* sf_silu_approx on 8 lanes (same bits). */
static inline __m256 sf_silu_approx_avx2(__m256 x) {
  const __m256 e = sf_exp_approx_avx2(_mm256_sub_ps(_mm256_setzero_ps(), x));
  return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}
#endif


/* erf(x) with max relative error ~1e-7.
 * |x| < 1: x * P(x^2), P a degree-6 Chebyshev fit of erf(sqrt u)/sqrt u on [0, 1].
 * |x| >= 1: 1 - exp(-x^2) * r * Q(r - 0.625), r = 1/|x| clamped to [1/4, 1], Q a degree-9
 * Chebyshev fit of x erfc(x) exp(x^2); beyond |x| = 4 erfc is below half an ulp of 1.
 * Coefficients fitted with mpmath.chebyfit (40 digits). */
static inline float sf_erf_approx(float x) {
  const float a = fabsf(x);
  const float u = a * a;
  float ps = 7.875875063e-5f;
  ps = SF_MADD(ps, u, -0.0008016864287f);
  ps = SF_MADD(ps, u, 0.005189087423f);
  ps = SF_MADD(ps, u, -0.02685421201f);
  ps = SF_MADD(ps, u, 0.1128359472f);
  ps = SF_MADD(ps, u, -0.3761262667f);
  const float small = fmaf(a, 1.128379166f, (a * u) * ps); /* leading term fused: ~1 ulp */

  float al = a < 1.0f ? 1.0f : a;
  al = al > 4.0f ? 4.0f : al;
  const float r = 1.0f / al;
  const float s = r - 0.625f;
  float q = -0.04782262702f;
  q = SF_MADD(q, s, 0.05492168508f);
  q = SF_MADD(q, s, -0.02460380006f);
  q = SF_MADD(q, s, -0.01123284912f);
  q = SF_MADD(q, s, 0.04961214224f);
  q = SF_MADD(q, s, -0.07798336436f);
  q = SF_MADD(q, s, 0.07210193058f);
  q = SF_MADD(q, s, -0.001295486959f);
  q = SF_MADD(q, s, -0.1715856514f);
  q = SF_MADD(q, s, 0.4895247903f);
  const float large = 1.0f - sf_exp_approx(-(al * al)) * (r * q);

  const float res = a < 1.0f ? small : large;
  return copysignf(res, x);
}

/* GELU with the exact erf form, evaluated like PyTorch: x * 0.5 * (1 + erf(x / sqrt 2)). */
static inline float sf_gelu_erf_approx(float x) {
  return x * 0.5f * (1.0f + sf_erf_approx(x * 0.70710678118654752f));
}

#endif
