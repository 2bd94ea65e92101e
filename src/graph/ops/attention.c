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
 * for any thread count.
 *
 * The SIMD micro-kernels are in attention_kernels.h, built once per ISA and picked at run time
 * (att_pick); this file holds the driver and the portable path. */
#include "core/pool.h"
#include "graph/ops/attention.h"

#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include <cpuinfo.h>

#include "graph/ops/attention_kernels.h"

#ifndef SF_ATT_QB
#define SF_ATT_QB 128 /* queries per task (multiple of SF_ATT_QALIGN) */
#endif
#ifndef SF_ATT_KB
#define SF_ATT_KB 128 /* keys per online-softmax step */
#endif
#define SF_ATT_QALIGN 32 /* query padding: two 16-lane vectors */

#define SF_ATT_LOG2E 1.44269504088896340736f
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
/* Operation for operation the SIMD kernels of attention_kernels.h, with explicit fmaf where
 * they fuse (a single instruction on AArch64 and FMA x86; glibc's exact software fma
 * elsewhere), so every CPU computes the same bits. */

static float exp2_portable(float x) {
  float xc = x < SF_ATT_EXP2_MIN ? SF_ATT_EXP2_MIN : x;
  float nf = (xc + SF_ATT_ROUND_MAGIC) - SF_ATT_ROUND_MAGIC;
  float f = xc - nf;
  float p = SF_ATT_P6;
  p = fmaf(p, f, SF_ATT_P5);
  p = fmaf(p, f, SF_ATT_P4);
  p = fmaf(p, f, SF_ATT_P3);
  p = fmaf(p, f, SF_ATT_P2);
  p = fmaf(p, f, SF_ATT_P1);
  p = fmaf(p, f, SF_ATT_P0);
  uint32_t bits = (uint32_t)((int32_t)nf + 127) << 23;
  float s;
  memcpy(&s, &bits, sizeof s);
  float r = p * s;
  return x >= SF_ATT_EXP2_MIN ? r : 0.0f;
}

/* st[j][i] = sum_d k[j][d] * qt[d][i]: a product, then one fused multiply-add per d. */
static void scores_portable(size_t nk, size_t D, size_t ld, const float *k, size_t ks,
                            const float *qt, float *st) {
  for (size_t j = 0; j < nk; j++) {
    float *row = st + j * ld;
    const float k0 = k[j * ks];
    for (size_t i = 0; i < ld; i++) row[i] = k0 * qt[i];
    for (size_t dd = 1; dd < D; dd++) {
      float kv = k[j * ks + dd];
      const float *qrow = qt + dd * ld;
      for (size_t i = 0; i < ld; i++) row[i] = fmaf(kv, qrow[i], row[i]);
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
    l[i] = fmaf(l[i], alpha[i], sum);
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
      for (size_t i = 0; i < ld; i++) orow[i] = fmaf(vv, prow[i], orow[i]);
    }
  }
}

/* The widest SIMD kernels this CPU runs (and the build has), or NULL for the portable path. */
static const sf_att_kernels *att_pick(void) {
#if defined(__x86_64__) || defined(__i386__)
  if (cpuinfo_initialize()) {
    if (cpuinfo_has_x86_avx512f() && sf_att_kernels_avx512.scores) return &sf_att_kernels_avx512;
    if (cpuinfo_has_x86_avx2() && cpuinfo_has_x86_fma3() && sf_att_kernels_avx2.scores) return &sf_att_kernels_avx2;
  }
#endif
  return NULL;
}

const char *sf_attention_isa(void) {
  const sf_att_kernels *kern = att_pick();
  return kern ? kern->isa : "portable";
}

/* ---------------------------------------------------------------- driver */

typedef struct att_ctx {
  const sf_attention_desc *d;
  att_geom g;
  const float *q, *k, *v;
  float *out;
  float *scratch; /* 64-byte aligned */
  size_t num_tasks, q_blocks;
  const sf_att_kernels *simd; /* NULL: the portable path */
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
    if (c->simd) {
      float *cmax = ws + c->g.x_off;
      memcpy(cmax, m, ld * sizeof(float));
      c->simd->scores(nk, D, ld, kblk, d->k_stride, qt, st, cmax);
      if (diagonal) {
        mask_causal(nk, ld, j0, i0, st);
        memcpy(cmax, m, ld * sizeof(float)); /* the fused maximum saw masked scores */
        c->simd->column_max(nk, ld, st, cmax);
      }
      c->simd->softmax_step(nk, ld, st, cmax, m, l, alpha);
      c->simd->pv(nk, D, ld, vblk, d->v_stride, st, alpha, ot);
      continue;
    }
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
  c.simd = d->force_portable ? NULL : att_pick();
  atomic_init(&c.next_task, 0);
  size_t slices = pool ? pthreadpool_get_threads_count(pool) : 1;
  slices = min_sz(slices, c.num_tasks);
  if (slices <= 1) {
    att_worker(&c, 0);
  } else {
    pthreadpool_parallelize_1d(pool, att_worker, &c, slices, sf_pool_flags(pool));
  }
}
