/* Attention's per-ISA kernels (internal to graph/ops/attention.c and attention_<isa>.c).
 *
 * The SIMD inner loops of the online-softmax attention live in the template below; each
 * attention_<isa>.c includes it with that ISA enabled by its own compile flags
 * (CMakeLists.txt), and attention.c picks one at run time through cpuinfo, so a build for a
 * generic x86-64 still runs the vector kernels. */
#ifndef SF_GRAPH_OPS_ATTENTION_KERNELS_H
#define SF_GRAPH_OPS_ATTENTION_KERNELS_H

#include <stddef.h>

/* Below this log2-probability (relative to the row maximum) a weight is flushed to exactly 0:
 * it is far under float resolution of the sum, and flushing keeps denormals out of the FMAs
 * and makes masked (-inf) scores exact zeros. */
#define SF_ATT_EXP2_MIN (-126.0f)

/* 2^f on [-0.5, 0.5]: degree-6 Chebyshev-node interpolant, max relative error 1.6 ulp in
 * float32 Horner evaluation. */
#define SF_ATT_P0 1.000000000e+00f
#define SF_ATT_P1 6.931471825e-01f
#define SF_ATT_P2 2.402265072e-01f
#define SF_ATT_P3 5.550327152e-02f
#define SF_ATT_P4 9.618056938e-03f
#define SF_ATT_P5 1.340042800e-03f
#define SF_ATT_P6 1.546144485e-04f
/* Adding 1.5*2^23 rounds a float in [-2^22, 2^22] to the nearest integer in the low mantissa bits. */
#define SF_ATT_ROUND_MAGIC 12582912.0f


/* One ISA's kernels over a task's buffers (all "queries on the fast axis", rows ld floats
 * apart, ld a multiple of 2 vectors):
 *  scores:       st[j][i] = sum_d k[j*ks + d] * qt[d][i] for nk keys; cmax[i] = max(cmax[i], st[.][i])
 *  column_max:   cmax[i] = max(cmax[i], max_j st[j][i])
 *  softmax_step: st -> 2^(st - mx) in place; alpha = 2^(m - mx); l = l*alpha + sum; m = mx
 *  pv:           ot[d][i] = alpha[i]*ot[d][i] + sum_j v[j*vs + d] * pt[j][i] */
typedef struct sf_att_kernels {
  void (*scores)(size_t nk, size_t D, size_t ld, const float *k, size_t ks, const float *qt, float *st,
                 float *cmax);
  void (*column_max)(size_t nk, size_t ld, const float *st, float *cmax);
  void (*softmax_step)(size_t nk, size_t ld, float *st, const float *mx, float *m, float *l, float *alpha);
  void (*pv)(size_t nk, size_t D, size_t ld, const float *v, size_t vs, const float *pt, const float *alpha,
             float *ot);
  const char *isa;
} sf_att_kernels;

/* scores == NULL when the compiler could not build that ISA. */
extern const sf_att_kernels sf_att_kernels_avx2;
extern const sf_att_kernels sf_att_kernels_avx512;

#endif

/* ---- template: included by attention_<isa>.c with SF_ATT_TEMPLATE_AVX2 or
 * SF_ATT_TEMPLATE_AVX512 defined (outside the include guard on purpose). */
#if defined(SF_ATT_TEMPLATE_AVX2) || defined(SF_ATT_TEMPLATE_AVX512)
#include <immintrin.h>

#define SF_ATT_INLINE static inline __attribute__((always_inline))

#if defined(SF_ATT_TEMPLATE_AVX512)
#define SF_ATT_ISA "avx512"
#define VL 16
#define MR_MAX 12 /* 2*12 accumulators + 2 loads + 1 broadcast of 32 zmm registers */
typedef __m512 vf;
SF_ATT_INLINE vf vf_load(const float *p) { return _mm512_loadu_ps(p); }
SF_ATT_INLINE void vf_store(float *p, vf x) { _mm512_storeu_ps(p, x); }
SF_ATT_INLINE vf vf_set1(float x) { return _mm512_set1_ps(x); }
SF_ATT_INLINE vf vf_zero(void) { return _mm512_setzero_ps(); }
SF_ATT_INLINE vf vf_fma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
SF_ATT_INLINE vf vf_mul(vf a, vf b) { return _mm512_mul_ps(a, b); }
SF_ATT_INLINE vf vf_add(vf a, vf b) { return _mm512_add_ps(a, b); }
SF_ATT_INLINE vf vf_sub(vf a, vf b) { return _mm512_sub_ps(a, b); }
SF_ATT_INLINE vf vf_max(vf a, vf b) { return _mm512_max_ps(a, b); }
SF_ATT_INLINE vf vf_pow2i(vf t) { /* t = n + magic (as float) -> 2^n */
  __m512i bits = _mm512_slli_epi32(_mm512_castps_si512(t), 23);
  return _mm512_castsi512_ps(_mm512_add_epi32(bits, _mm512_set1_epi32(127 << 23)));
}
SF_ATT_INLINE vf vf_zero_below(vf r, vf x, vf lim) { /* r where x >= lim, else 0 */
  return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, lim, _CMP_GE_OQ), r);
}
#else
#define SF_ATT_ISA "avx2"
#define VL 8
#define MR_MAX 6 /* 2*6 accumulators + 2 loads + 1 broadcast of 16 ymm registers */
typedef __m256 vf;
SF_ATT_INLINE vf vf_load(const float *p) { return _mm256_loadu_ps(p); }
SF_ATT_INLINE void vf_store(float *p, vf x) { _mm256_storeu_ps(p, x); }
SF_ATT_INLINE vf vf_set1(float x) { return _mm256_set1_ps(x); }
SF_ATT_INLINE vf vf_zero(void) { return _mm256_setzero_ps(); }
SF_ATT_INLINE vf vf_fma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
SF_ATT_INLINE vf vf_mul(vf a, vf b) { return _mm256_mul_ps(a, b); }
SF_ATT_INLINE vf vf_add(vf a, vf b) { return _mm256_add_ps(a, b); }
SF_ATT_INLINE vf vf_sub(vf a, vf b) { return _mm256_sub_ps(a, b); }
SF_ATT_INLINE vf vf_max(vf a, vf b) { return _mm256_max_ps(a, b); }
SF_ATT_INLINE vf vf_pow2i(vf t) {
  __m256i bits = _mm256_slli_epi32(_mm256_castps_si256(t), 23);
  return _mm256_castsi256_ps(_mm256_add_epi32(bits, _mm256_set1_epi32(127 << 23)));
}
SF_ATT_INLINE vf vf_zero_below(vf r, vf x, vf lim) {
  return _mm256_and_ps(r, _mm256_cmp_ps(x, lim, _CMP_GE_OQ));
}
#endif

#define NR (2 * VL) /* queries per micro-tile */

static size_t att_min(size_t a, size_t b) { return a < b ? a : b; }

SF_ATT_INLINE vf vf_exp2(vf x) {
  const vf lim = vf_set1(SF_ATT_EXP2_MIN);
  const vf magic = vf_set1(SF_ATT_ROUND_MAGIC);
  vf xc = vf_max(x, lim);
  vf t = vf_add(xc, magic);
  vf f = vf_sub(xc, vf_sub(t, magic));
  vf p = vf_set1(SF_ATT_P6);
  p = vf_fma(p, f, vf_set1(SF_ATT_P5));
  p = vf_fma(p, f, vf_set1(SF_ATT_P4));
  p = vf_fma(p, f, vf_set1(SF_ATT_P3));
  p = vf_fma(p, f, vf_set1(SF_ATT_P2));
  p = vf_fma(p, f, vf_set1(SF_ATT_P1));
  p = vf_fma(p, f, vf_set1(SF_ATT_P0));
  return vf_zero_below(vf_mul(p, vf_pow2i(t)), x, lim);
}

/* Sᵀ tile: MR keys × NR queries, reduction over D. Oᵀ tile: MR head-dim rows × NR queries,
 * rescaled by alpha, then accumulated over nk keys. One function per MR, with arrays of exactly
 * MR accumulators, so that GCC keeps all of them in registers. */
#define SF_ATT_DEFINE_TILES(MR)                                                               \
  static void scores_tile_##MR(size_t D, size_t ld, const float *k, size_t ks,               \
                               const float *qt, float *st, float *cmax) {                    \
    vf acc0[MR], acc1[MR];                                                                    \
    /* Peeled first step instead of zero-filling: GCC turns a zero-fill loop into a memset   \
     * of a stack array and then keeps the array in memory. */                               \
    {                                                                                         \
      vf q0 = vf_load(qt), q1 = vf_load(qt + VL);                                             \
      for (size_t r = 0; r < MR; r++) {                                                       \
        vf kk = vf_set1(k[r * ks]);                                                               \
        acc0[r] = vf_mul(kk, q0);                                                             \
        acc1[r] = vf_mul(kk, q1);                                                             \
      }                                                                                       \
    }                                                                                         \
    for (size_t dd = 1; dd < D; dd++) {                                                       \
      vf q0 = vf_load(qt + dd * ld), q1 = vf_load(qt + dd * ld + VL);                        \
      for (size_t r = 0; r < MR; r++) {                                                       \
        vf kk = vf_set1(k[r * ks + dd]);                                                         \
        acc0[r] = vf_fma(kk, q0, acc0[r]);                                                    \
        acc1[r] = vf_fma(kk, q1, acc1[r]);                                                    \
      }                                                                                       \
    }                                                                                         \
    vf mx0 = vf_load(cmax), mx1 = vf_load(cmax + VL);                                         \
    for (size_t r = 0; r < MR; r++) {                                                         \
      vf_store(st + r * ld, acc0[r]);                                                         \
      vf_store(st + r * ld + VL, acc1[r]);                                                    \
      mx0 = vf_max(mx0, acc0[r]);                                                             \
      mx1 = vf_max(mx1, acc1[r]);                                                             \
    }                                                                                         \
    vf_store(cmax, mx0);                                                                      \
    vf_store(cmax + VL, mx1);                                                                 \
  }                                                                                           \
  static void pv_tile_##MR(size_t nk, size_t ld, const float *v, size_t vs, const float *pt,  \
                           const float *alpha, float *ot) {                                   \
    vf acc0[MR], acc1[MR];                                                                    \
    vf a0 = vf_load(alpha), a1 = vf_load(alpha + VL);                                         \
    for (size_t r = 0; r < MR; r++) {                                                         \
      acc0[r] = vf_mul(vf_load(ot + r * ld), a0);                                             \
      acc1[r] = vf_mul(vf_load(ot + r * ld + VL), a1);                                        \
    }                                                                                         \
    for (size_t j = 0; j < nk; j++) {                                                         \
      vf p0 = vf_load(pt + j * ld), p1 = vf_load(pt + j * ld + VL);                          \
      const float *vr = v + j * vs;                                                           \
      for (size_t r = 0; r < MR; r++) {                                                       \
        vf vv = vf_set1(vr[r]);                                                               \
        acc0[r] = vf_fma(vv, p0, acc0[r]);                                                    \
        acc1[r] = vf_fma(vv, p1, acc1[r]);                                                    \
      }                                                                                       \
    }                                                                                         \
    for (size_t r = 0; r < MR; r++) {                                                         \
      vf_store(ot + r * ld, acc0[r]);                                                         \
      vf_store(ot + r * ld + VL, acc1[r]);                                                    \
    }                                                                                         \
  }

#if MR_MAX == 12
#define SF_ATT_MR_CASES(X) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12)
#else
#define SF_ATT_MR_CASES(X) X(1) X(2) X(3) X(4) X(5) X(6)
#endif
SF_ATT_MR_CASES(SF_ATT_DEFINE_TILES)

static void scores_tile_any(size_t mr, size_t D, size_t ld, const float *k, size_t ks,
                            const float *qt, float *st, float *cmax) {
  switch (mr) {
#define SF_ATT_CASE(n) \
  case n: scores_tile_##n(D, ld, k, ks, qt, st, cmax); break;
    SF_ATT_MR_CASES(SF_ATT_CASE)
#undef SF_ATT_CASE
    default: break;
  }
}

static void pv_tile_any(size_t mr, size_t nk, size_t ld, const float *v, size_t vs,
                        const float *pt, const float *alpha, float *ot) {
  switch (mr) {
#define SF_ATT_CASE(n) \
  case n: pv_tile_##n(nk, ld, v, vs, pt, alpha, ot); break;
    SF_ATT_MR_CASES(SF_ATT_CASE)
#undef SF_ATT_CASE
    default: break;
  }
}

/* Sᵀ for one key block; cmax (initialised by the caller to the running maximum) receives
 * the per-query maximum over the block as a by-product of the tiles. */
static void scores_simd(size_t nk, size_t D, size_t ld, const float *k, size_t ks,
                        const float *qt, float *st, float *cmax) {
  for (size_t c = 0; c < ld; c += NR) {
    for (size_t j = 0; j < nk; j += MR_MAX) {
      scores_tile_any(att_min(MR_MAX, nk - j), D, ld, k + j * ks, ks, qt + c, st + j * ld + c,
                      cmax + c);
    }
  }
}

/* Column maximum with four independent chains (a single vmaxps chain is latency-bound). */
static void column_max_simd(size_t nk, size_t ld, const float *st, float *cmax) {
  for (size_t i = 0; i < ld; i += NR) {
    vf a0 = vf_load(cmax + i), a1 = vf_load(cmax + i + VL), b0 = a0, b1 = a1;
    size_t j = 0;
    for (; j + 1 < nk; j += 2) {
      a0 = vf_max(a0, vf_load(st + j * ld + i));
      a1 = vf_max(a1, vf_load(st + j * ld + i + VL));
      b0 = vf_max(b0, vf_load(st + (j + 1) * ld + i));
      b1 = vf_max(b1, vf_load(st + (j + 1) * ld + i + VL));
    }
    if (j < nk) {
      a0 = vf_max(a0, vf_load(st + j * ld + i));
      a1 = vf_max(a1, vf_load(st + j * ld + i + VL));
    }
    vf_store(cmax + i, vf_max(a0, b0));
    vf_store(cmax + i + VL, vf_max(a1, b1));
  }
}

/* Scores -> weights in place given the new maxima mx; updates m and l, writes alpha. */
static void softmax_step_simd(size_t nk, size_t ld, float *st, const float *mx, float *m,
                              float *l, float *alpha) {
  for (size_t i = 0; i < ld; i += NR) {
    vf mx0 = vf_load(mx + i), mx1 = vf_load(mx + i + VL);
    vf s0 = vf_zero(), s1 = vf_zero();
    for (size_t j = 0; j < nk; j++) {
      float *row = st + j * ld + i;
      vf p0 = vf_exp2(vf_sub(vf_load(row), mx0));
      vf p1 = vf_exp2(vf_sub(vf_load(row + VL), mx1));
      vf_store(row, p0);
      vf_store(row + VL, p1);
      s0 = vf_add(s0, p0);
      s1 = vf_add(s1, p1);
    }
    vf a0 = vf_exp2(vf_sub(vf_load(m + i), mx0));
    vf a1 = vf_exp2(vf_sub(vf_load(m + i + VL), mx1));
    vf_store(alpha + i, a0);
    vf_store(alpha + i + VL, a1);
    vf_store(l + i, vf_fma(vf_load(l + i), a0, s0));
    vf_store(l + i + VL, vf_fma(vf_load(l + i + VL), a1, s1));
    vf_store(m + i, mx0);
    vf_store(m + i + VL, mx1);
  }
}

static void pv_simd(size_t nk, size_t D, size_t ld, const float *v, size_t vs, const float *pt,
                    const float *alpha, float *ot) {
  /* Split D into near-equal row tiles of at most MR_MAX (e.g. 40 -> 4 x 10). */
  size_t ntiles = (D + MR_MAX - 1) / MR_MAX;
  for (size_t c = 0; c < ld; c += NR) {
    size_t d0 = 0;
    for (size_t t = 0; t < ntiles; t++) {
      size_t mr = (D - d0) / (ntiles - t);
      if ((D - d0) % (ntiles - t)) mr++;
      pv_tile_any(mr, nk, ld, v + d0, vs, pt + c, alpha + c, ot + d0 * ld + c);
      d0 += mr;
    }
  }
}

#if defined(SF_ATT_TEMPLATE_AVX512)
const sf_att_kernels sf_att_kernels_avx512 = {scores_simd, column_max_simd, softmax_step_simd, pv_simd, SF_ATT_ISA};
#else
const sf_att_kernels sf_att_kernels_avx2 = {scores_simd, column_max_simd, softmax_step_simd, pv_simd, SF_ATT_ISA};
#endif
#endif
