/* Multi-head attention with a block-wise online softmax (flash-attention style).
 *
 * Work decomposition: one task = one (batch, head, block of up to SF_ATT_QB queries). A task
 * streams the keys in blocks of up to SF_ATT_KB and keeps, per query, the running maximum m,
 * the running denominator l and an unnormalised output accumulator that is rescaled by
 * 2^(m_old - m_new) whenever the maximum grows. Scores are computed in the log2 domain
 * (q is pre-multiplied by scale*log2(e)) so the softmax needs exp2 only.
 *
 * Everything inside a task is stored "queries on the fast axis": Qᵀ [D × qb], Sᵀ/Pᵀ [kb × qb],
 * Oᵀ [D × qb]. Both products then become broadcast-FMA micro-kernels whose vector lanes are
 * queries: Sᵀ = K·Qᵀ broadcasts K elements straight from the caller's rows (no K packing,
 * which would cost as much as the FMAs it feeds for small head_dim), Oᵀ += Vᵀ·Pᵀ broadcasts
 * V elements; and the softmax reductions over keys are plain vertical vector max/add.
 *
 * Threading: pthreadpool here has no per-thread index (no *_with_thread variants), so the
 * pool runs one job per scratch slice (slices = thread count) and each job pulls tasks from a
 * shared atomic counter until none is left. A slice is only ever used by the job that owns
 * it; which job computes a task does not change the arithmetic, so results are bit-identical
 * for any thread count. */
#include "graph/ops/attention.h"

#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

#ifndef SF_ATT_QB
#define SF_ATT_QB 128 /* queries per task (multiple of SF_ATT_QALIGN) */
#endif
#ifndef SF_ATT_KB
#define SF_ATT_KB 128 /* keys per online-softmax step */
#endif
#define SF_ATT_QALIGN 32 /* query padding: two 16-lane vectors */

#define SF_ATT_LOG2E 1.44269504088896340736f
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

typedef struct att_geom {
  size_t qb;     /* queries per task, padded to SF_ATT_QALIGN: also the row length of every buffer */
  size_t kb;     /* keys per step */
  size_t qt_off, st_off, ot_off, m_off, l_off, a_off, x_off; /* float offsets inside a slice */
  size_t slice_floats;
} att_geom;

static size_t round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }
static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

static void att_geometry(const sf_attention_desc *d, att_geom *g) {
  size_t D = d->head_dim;
  g->qb = min_sz(SF_ATT_QB, round_up(d->q_len > 0 ? d->q_len : 1, SF_ATT_QALIGN));
  g->kb = min_sz(SF_ATT_KB, d->kv_len > 0 ? d->kv_len : 1);
  size_t off = 0;
  /* 16-float (64-byte) granularity keeps every buffer row vector-aligned. */
  g->qt_off = off; off += round_up(D * g->qb, 16);
  g->st_off = off; off += round_up(g->kb * g->qb, 16);
  g->ot_off = off; off += round_up(D * g->qb, 16);
  g->m_off = off; off += g->qb;
  g->l_off = off; off += g->qb;
  g->a_off = off; off += g->qb;
  g->x_off = off; off += g->qb;
  g->slice_floats = off;
}

static size_t att_num_tasks(const sf_attention_desc *d, const att_geom *g) {
  return d->batch * d->heads * ((d->q_len + g->qb - 1) / g->qb);
}

size_t sf_attention_scratch_size(const sf_attention_desc *d, size_t num_threads) {
  att_geom g;
  att_geometry(d, &g);
  if (num_threads == 0) num_threads = 1;
  return num_threads * g.slice_floats * sizeof(float) + 64; /* + alignment slack */
}

double sf_attention_flops(const sf_attention_desc *d) {
  return 4.0 * (double)d->batch * (double)d->heads * (double)d->q_len * (double)d->kv_len *
         (double)d->head_dim;
}

/* ---------------------------------------------------------------- portable path */

static float exp2_portable(float x) {
  float xc = x < SF_ATT_EXP2_MIN ? SF_ATT_EXP2_MIN : x;
  float nf = (xc + SF_ATT_ROUND_MAGIC) - SF_ATT_ROUND_MAGIC;
  float f = xc - nf;
  float p = SF_ATT_P6;
  p = p * f + SF_ATT_P5;
  p = p * f + SF_ATT_P4;
  p = p * f + SF_ATT_P3;
  p = p * f + SF_ATT_P2;
  p = p * f + SF_ATT_P1;
  p = p * f + SF_ATT_P0;
  uint32_t bits = (uint32_t)((int32_t)nf + 127) << 23;
  float s;
  memcpy(&s, &bits, sizeof s);
  float r = p * s;
  return x >= SF_ATT_EXP2_MIN ? r : 0.0f;
}

/* st[j][i] = sum_d k[j][d] * qt[d][i] */
static void scores_portable(size_t nk, size_t D, size_t ld, const float *k, size_t ks,
                            const float *qt, float *st) {
  for (size_t j = 0; j < nk; j++) {
    float *row = st + j * ld;
    for (size_t i = 0; i < ld; i++) row[i] = 0.0f;
    for (size_t dd = 0; dd < D; dd++) {
      float kv = k[j * ks + dd];
      const float *qrow = qt + dd * ld;
      for (size_t i = 0; i < ld; i++) row[i] += kv * qrow[i];
    }
  }
}

/* Turns scores into weights in place; updates m, l; writes the accumulator rescale factors. */
static void softmax_step_portable(size_t nk, size_t ld, float *st, float *m, float *l,
                                  float *alpha) {
  for (size_t i = 0; i < ld; i++) {
    float mx = m[i];
    for (size_t j = 0; j < nk; j++) {
      float s = st[j * ld + i];
      mx = s > mx ? s : mx;
    }
    float sum = 0.0f;
    for (size_t j = 0; j < nk; j++) {
      float p = exp2_portable(st[j * ld + i] - mx);
      st[j * ld + i] = p;
      sum += p;
    }
    alpha[i] = exp2_portable(m[i] - mx);
    l[i] = l[i] * alpha[i] + sum;
    m[i] = mx;
  }
}

/* ot[d][i] = alpha[i]*ot[d][i] + sum_j v[j][d] * pt[j][i] */
static void pv_portable(size_t nk, size_t D, size_t ld, const float *v, size_t vs,
                        const float *pt, const float *alpha, float *ot) {
  for (size_t dd = 0; dd < D; dd++) {
    float *orow = ot + dd * ld;
    for (size_t i = 0; i < ld; i++) orow[i] *= alpha[i];
    for (size_t j = 0; j < nk; j++) {
      float vv = v[j * vs + dd];
      const float *prow = pt + j * ld;
      for (size_t i = 0; i < ld; i++) orow[i] += vv * prow[i];
    }
  }
}

/* ---------------------------------------------------------------- SIMD path */

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#define SF_ATT_HAVE_SIMD 1

#define SF_ATT_INLINE static inline __attribute__((always_inline))

#if defined(__AVX512F__)
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
      scores_tile_any(min_sz(MR_MAX, nk - j), D, ld, k + j * ks, ks, qt + c, st + j * ld + c,
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
#else
#define SF_ATT_HAVE_SIMD 0
#define SF_ATT_ISA "portable"
#endif

const char *sf_attention_isa(void) { return SF_ATT_ISA; }

/* ---------------------------------------------------------------- driver */

typedef struct att_ctx {
  const sf_attention_desc *d;
  att_geom g;
  const float *q, *k, *v;
  float *out;
  float *scratch; /* 64-byte aligned */
  size_t num_tasks, q_blocks;
  int simd;
  atomic_size_t next_task;
} att_ctx;

/* Key j0+j is hidden from query i0+i when j0+j > i0+i. */
static void mask_causal(size_t nk, size_t ld, size_t j0, size_t i0, float *st) {
  for (size_t j = 0; j < nk; j++) {
    for (size_t i = 0; i < ld; i++) {
      if (j0 + j > i0 + i) st[j * ld + i] = -INFINITY;
    }
  }
}

static void att_task(const att_ctx *c, size_t task, float *ws) {
  const sf_attention_desc *d = c->d;
  const size_t D = d->head_dim, ld = c->g.qb, H = d->heads;
  /* Causal: later query blocks carry more keys, so hand them out first for balance. */
  size_t qblk = task % c->q_blocks;
  if (d->causal) qblk = c->q_blocks - 1 - qblk;
  const size_t bh = task / c->q_blocks, b = bh / H, h = bh % H;
  const size_t i0 = qblk * ld, nq = min_sz(ld, d->q_len - i0);

  float *qt = ws + c->g.qt_off, *st = ws + c->g.st_off, *ot = ws + c->g.ot_off;
  float *m = ws + c->g.m_off, *l = ws + c->g.l_off, *alpha = ws + c->g.a_off;

  const float qscale = d->scale * SF_ATT_LOG2E;
  const float *qrows = c->q + (b * d->q_len + i0) * d->q_stride + h * D;
  /* Query-major so the caller's rows are read sequentially; the scattered writes hit L1. */
  for (size_t i = 0; i < nq; i++) {
    const float *qrow = qrows + i * d->q_stride;
    for (size_t dd = 0; dd < D; dd++) qt[dd * ld + i] = qrow[dd] * qscale;
  }
  for (size_t dd = 0; dd < D; dd++) {
    for (size_t i = nq; i < ld; i++) qt[dd * ld + i] = 0.0f; /* padded queries: harmless junk */
  }
  for (size_t i = 0; i < ld; i++) {
    m[i] = -INFINITY;
    l[i] = 0.0f;
  }
  memset(ot, 0, D * ld * sizeof(float));

  const size_t kend = d->causal ? min_sz(d->kv_len, i0 + nq) : d->kv_len;
  const float *kbase = c->k + b * d->kv_len * d->k_stride + h * D;
  const float *vbase = c->v + b * d->kv_len * d->v_stride + h * D;
  for (size_t j0 = 0; j0 < kend; j0 += c->g.kb) {
    const size_t nk = min_sz(c->g.kb, kend - j0);
    const float *kblk = kbase + j0 * d->k_stride, *vblk = vbase + j0 * d->v_stride;
    const int diagonal = d->causal && j0 + nk - 1 > i0;
#if SF_ATT_HAVE_SIMD
    if (c->simd) {
      float *cmax = ws + c->g.x_off;
      memcpy(cmax, m, ld * sizeof(float));
      scores_simd(nk, D, ld, kblk, d->k_stride, qt, st, cmax);
      if (diagonal) {
        mask_causal(nk, ld, j0, i0, st);
        memcpy(cmax, m, ld * sizeof(float)); /* the fused maximum saw masked scores */
        column_max_simd(nk, ld, st, cmax);
      }
      softmax_step_simd(nk, ld, st, cmax, m, l, alpha);
      pv_simd(nk, D, ld, vblk, d->v_stride, st, alpha, ot);
      continue;
    }
#endif
    scores_portable(nk, D, ld, kblk, d->k_stride, qt, st);
    if (diagonal) mask_causal(nk, ld, j0, i0, st);
    softmax_step_portable(nk, ld, st, m, l, alpha);
    pv_portable(nk, D, ld, vblk, d->v_stride, st, alpha, ot);
  }

  float *orows = c->out + (b * d->q_len + i0) * d->out_stride + h * D;
  for (size_t i = 0; i < nq; i++) {
    const float inv = 1.0f / l[i];
    float *orow = orows + i * d->out_stride;
    for (size_t dd = 0; dd < D; dd++) orow[dd] = ot[dd * ld + i] * inv;
  }
}

static void att_worker(void *ctx, size_t slice) {
  att_ctx *c = ctx;
  float *ws = c->scratch + slice * c->g.slice_floats;
  for (;;) {
    size_t task = atomic_fetch_add_explicit(&c->next_task, 1, memory_order_relaxed);
    if (task >= c->num_tasks) break;
    att_task(c, task, ws);
  }
}

void sf_attention_f32(pthreadpool_t pool, const sf_attention_desc *d, const float *q,
                      const float *k, const float *v, float *out, void *scratch) {
  if (d->batch == 0 || d->heads == 0 || d->q_len == 0 || d->head_dim == 0 || d->kv_len == 0)
    return;
  att_ctx c;
  c.d = d;
  att_geometry(d, &c.g);
  c.q = q;
  c.k = k;
  c.v = v;
  c.out = out;
  c.scratch = (float *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
  c.q_blocks = (d->q_len + c.g.qb - 1) / c.g.qb;
  c.num_tasks = att_num_tasks(d, &c.g);
  c.simd = SF_ATT_HAVE_SIMD && !d->force_portable;
  atomic_init(&c.next_task, 0);
  size_t slices = pool ? pthreadpool_get_threads_count(pool) : 1;
  slices = min_sz(slices, c.num_tasks);
  if (slices <= 1) {
    att_worker(&c, 0);
  } else {
    pthreadpool_parallelize_1d(pool, att_worker, &c, slices, 0);
  }
}
