/* The elementwise kernels whose arithmetic depends on fused multiply-adds (exp, erf, sigmoid:
 * SiLU, GELU, QuickGELU, GEGLU, group norm + SiLU), one set per instruction set, each compiled
 * in its own file from one template (eltwise_kernels.h) and picked at run time through
 * cpuinfo, like the GEMM microkernels. Every set evaluates the same operations with explicit
 * fmaf (vmath.h), so all of them give the same bits on every input: a build for a generic
 * CPU computes what a -march=native build computes, only slower where the CPU has no FMA
 * (fmaf is then glibc's exact software fma). */
#ifndef SF_GRAPH_OPS_ELTWISE_H
#define SF_GRAPH_OPS_ELTWISE_H

#include <stddef.h>

typedef struct sf_eltwise_kernels {
  void (*silu)(const float *x, float *y, size_t n);       /* y may equal x */
  void (*gelu_erf)(const float *x, float *y, size_t n);   /* y may equal x */
  void (*quick_gelu)(const float *x, float *y, size_t n); /* y may equal x */
  /* y[j] = hidden[j] * gelu(gate[j]) */
  void (*geglu_row)(const float *hidden, const float *gate, float *y, size_t c);
  /* rows of c channels: y = (x - mean) * scale + bias, then SiLU when silu; y may equal x */
  void (*norm_rows)(const float *x, float *y, size_t rows, size_t c, const float *mean, const float *scale,
                    const float *bias, int silu);
  const char *isa;
} sf_eltwise_kernels;

typedef enum sf_eltwise_isa {
  SF_ELTWISE_BEST = 0,
  SF_ELTWISE_SCALAR,
  SF_ELTWISE_AVX2,
  SF_ELTWISE_AVX512
} sf_eltwise_isa;

/* The set for isa (BEST: the widest this CPU runs), or NULL when the CPU or the build lacks it. */
const sf_eltwise_kernels *sf_eltwise_kernels_for(sf_eltwise_isa isa);
/* The best set, chosen once. */
const sf_eltwise_kernels *sf_eltwise(void);

/* Each has NULL functions when the compiler could not build that ISA. */
extern const sf_eltwise_kernels sf_eltwise_scalar, sf_eltwise_avx2, sf_eltwise_avx512;

#endif

/* ---- template: included by eltwise_<isa>.c with EW_NAME(x) defined (outside the include
 * guard on purpose); vmath.h first. */
#ifdef EW_NAME
/* Inlined twice by each caller, once with x == y, so both loops vectorise without a runtime
 * alias check. */
static inline void EW_NAME(silu_loop)(const float *x, float *y, size_t n) {
  size_t i = 0;
#ifdef SF_VMATH_AVX2
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, sf_silu_approx_avx2(_mm256_loadu_ps(x + i)));
#endif
  for (; i < n; i++) {
    const float v = x[i];
    y[i] = sf_silu_approx(v);
  }
}

static void EW_NAME(silu)(const float *x, float *y, size_t n) {
  if (x == y) EW_NAME(silu_loop)(y, y, n);
  else EW_NAME(silu_loop)(x, y, n);
}

static inline void EW_NAME(gelu_erf_loop)(const float *x, float *y, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const float v = x[i];
    y[i] = sf_gelu_erf_approx(v);
  }
}

static void EW_NAME(gelu_erf)(const float *x, float *y, size_t n) {
  if (x == y) EW_NAME(gelu_erf_loop)(y, y, n);
  else EW_NAME(gelu_erf_loop)(x, y, n);
}

static inline void EW_NAME(quick_gelu_loop)(const float *x, float *y, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const float v = x[i];
    y[i] = v / (1.0f + sf_exp_approx(-1.702f * v));
  }
}

static void EW_NAME(quick_gelu)(const float *x, float *y, size_t n) {
  if (x == y) EW_NAME(quick_gelu_loop)(y, y, n);
  else EW_NAME(quick_gelu_loop)(x, y, n);
}

static void EW_NAME(geglu_row)(const float *restrict hidden, const float *restrict gate, float *restrict y,
                               size_t c) {
  for (size_t j = 0; j < c; j++) y[j] = hidden[j] * sf_gelu_erf_approx(gate[j]);
}

static inline void EW_NAME(norm_loop)(const float *x, float *y, size_t rows, size_t c, const float *restrict mean,
                                      const float *restrict scale, const float *restrict bias, int silu) {
  for (size_t p = 0; p < rows; p++) {
    const float *xr = x + p * c;
    float *yr = y + p * c;
    if (silu) {
      size_t ch = 0;
#ifdef SF_VMATH_AVX2
      for (; ch + 8 <= c; ch += 8) {
        const __m256 v = _mm256_add_ps(
            _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xr + ch), _mm256_loadu_ps(mean + ch)),
                          _mm256_loadu_ps(scale + ch)),
            _mm256_loadu_ps(bias + ch));
        _mm256_storeu_ps(yr + ch, sf_silu_approx_avx2(v));
      }
#endif
      for (; ch < c; ch++) yr[ch] = sf_silu_approx((xr[ch] - mean[ch]) * scale[ch] + bias[ch]);
    } else {
      for (size_t ch = 0; ch < c; ch++) yr[ch] = (xr[ch] - mean[ch]) * scale[ch] + bias[ch];
    }
  }
}

static void EW_NAME(norm_rows)(const float *x, float *y, size_t rows, size_t c, const float *mean,
                               const float *scale, const float *bias, int silu) {
  if (x == y) EW_NAME(norm_loop)(y, y, rows, c, mean, scale, bias, silu);
  else EW_NAME(norm_loop)(x, y, rows, c, mean, scale, bias, silu);
}
#endif
