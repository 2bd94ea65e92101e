/* Indirect GEMM for conv2d / linear (see igemm.h for the why).
 *
 * Blocking, from the inside out:
 *  - microkernel (graph/ops/igemm_ukernel.h, chosen at run time): an MR x NR tile of C in
 *    registers (AVX2: 6 x 16; AVX-512: 8 x 32); per k step it loads one packed weight row of
 *    NR floats and broadcasts one input value per row;
 *  - k-blocks of at most KC floats: one tap's channels (split when cin > KC), or several
 *    taps together when cin is small. The weight micro-panel of a k-block (KC x NR) stays in
 *    L1 while all m-tiles of a task pass it; the task's input rows (MB x KC) stay in L2.
 *    C is written after the first k-block and read back and added for the others; an fp32
 *    store/load is exact, so the result equals one long accumulation in k-block order;
 *  - tasks: MB pixels x NB output-channel tiles, over the pool's threads.
 * KC = 256, 384, 512 and 768 measured within ~3% of each other on the SD conv3x3 shapes (2-core
 * Zen 3, AVX2: 166-192 GFLOP/s); MB and NB are first guesses that reach 80-90% of the FMA
 * peak there and have not been tuned further. */
#include "core/pool.h"
#include "graph/ops/igemm.h"

#include <cpuinfo.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "graph/ops/half.h"
#include "graph/ops/igemm_ukernel.h"

enum {
  KC = 512,         /* floats of k per block */
  MAX_BLOCK_TAPS = 16,
  MB_TILES = 16,    /* m-tiles (of MR pixels) per task */
  NB_TILES = 8      /* n-tiles (of NR channels) per task */
};

/* Input row read for taps in the zero padding; a k-block reads at most KC floats of a row. */
static const float ig_zero_row[KC];
/* The accumulators' start for q8 weights (the bias comes with the scale, at the end). */
static const float ig_zero_init[SF_IGEMM_MAX_NR];

size_t sf_wtype_bytes(sf_wtype type) { return type == SF_WTYPE_F16 ? 2 : type == SF_WTYPE_Q8 ? 1 : 4; }
const char *sf_wtype_name(sf_wtype type) {
  return type == SF_WTYPE_F16 ? "f16" : type == SF_WTYPE_Q8 ? "q8" : "f32";
}

static const sf_igemm_ukernel *ukernel_of(sf_igemm_isa isa) {
  switch (isa) {
    case SF_IGEMM_ISA_SCALAR: return &sf_igemm_ukernel_scalar;
    case SF_IGEMM_ISA_AVX2: return &sf_igemm_ukernel_avx2;
    case SF_IGEMM_ISA_AVX512: return &sf_igemm_ukernel_avx512;
    case SF_IGEMM_ISA_NEON: return &sf_igemm_ukernel_neon;
    case SF_IGEMM_ISA_BEST: break;
  }
  return NULL;
}

static atomic_uint disabled_isas; /* sf_igemm_test_disable_isas */

void sf_igemm_test_disable_isas(unsigned mask) { atomic_store(&disabled_isas, mask); }

int sf_igemm_isa_supports_type(sf_igemm_isa isa, sf_wtype type) {
  const sf_igemm_ukernel *uk = ukernel_of(isa);
  if ((unsigned)isa < 32 && (atomic_load(&disabled_isas) & (1u << (unsigned)isa)) != 0) return 0;
  if (uk == NULL || (unsigned)type >= SF_WTYPE_COUNT || uk->fn[type] == NULL || uk->scale_bias == NULL) return 0;
  if (isa == SF_IGEMM_ISA_SCALAR) return 1;
  /* cpuinfo_initialize is idempotent and thread-safe (the context calls it too). */
  if (!cpuinfo_initialize()) return 0;
#if defined(__x86_64__) || defined(__i386__)
  /* The AVX2 file is built with F16C too (every AVX2 CPU so far has it, but it is checked). */
  if (isa == SF_IGEMM_ISA_AVX2) return cpuinfo_has_x86_avx2() && cpuinfo_has_x86_fma3() && cpuinfo_has_x86_f16c();
  if (isa == SF_IGEMM_ISA_AVX512) return cpuinfo_has_x86_avx512f();
#endif
#if defined(__aarch64__)
  if (isa == SF_IGEMM_ISA_NEON) return 1; /* Advanced SIMD is part of every AArch64 CPU */
#endif
  return 0;
}

int sf_igemm_isa_supported(sf_igemm_isa isa) { return sf_igemm_isa_supports_type(isa, SF_WTYPE_F32); }

static sf_igemm_isa best_isa_for(sf_wtype type) {
  if (sf_igemm_isa_supports_type(SF_IGEMM_ISA_AVX512, type)) return SF_IGEMM_ISA_AVX512;
  if (sf_igemm_isa_supports_type(SF_IGEMM_ISA_AVX2, type)) return SF_IGEMM_ISA_AVX2;
  if (sf_igemm_isa_supports_type(SF_IGEMM_ISA_NEON, type)) return SF_IGEMM_ISA_NEON;
  return SF_IGEMM_ISA_SCALAR;
}

static sf_igemm_isa best_isa(void) { return best_isa_for(SF_WTYPE_F32); }

int sf_igemm_available(void) { return best_isa() != SF_IGEMM_ISA_SCALAR; }

const char *sf_igemm_isa_name(sf_igemm_isa isa) {
  const sf_igemm_ukernel *uk = ukernel_of(isa == SF_IGEMM_ISA_BEST ? best_isa() : isa);
  return uk ? uk->isa : "?";
}

const char *sf_igemm_weights_isa(const sf_igemm_weights *pw) { return pw->uk ? pw->uk->isa : "-"; }

sf_igemm_isa sf_igemm_isa_from_name(const char *name) {
  static const sf_igemm_isa all[] = {SF_IGEMM_ISA_SCALAR, SF_IGEMM_ISA_AVX2, SF_IGEMM_ISA_AVX512,
                                     SF_IGEMM_ISA_NEON};
  for (size_t i = 0; name != NULL && i < sizeof all / sizeof all[0]; i++)
    if (strcmp(name, ukernel_of(all[i])->isa) == 0) return all[i];
  return SF_IGEMM_ISA_BEST;
}

void sf_igemm_isa_tile(sf_igemm_isa isa, size_t *mr, size_t *nr) {
  const sf_igemm_ukernel *uk = ukernel_of(isa == SF_IGEMM_ISA_BEST ? best_isa() : isa);
  *mr = uk->mr;
  *nr = uk->nr;
}

sf_igemm_isa sf_igemm_weights_isa_id(const sf_igemm_weights *pw) {
  if (pw->uk == &sf_igemm_ukernel_avx512) return SF_IGEMM_ISA_AVX512;
  if (pw->uk == &sf_igemm_ukernel_avx2) return SF_IGEMM_ISA_AVX2;
  if (pw->uk == &sf_igemm_ukernel_scalar) return SF_IGEMM_ISA_SCALAR;
  if (pw->uk == &sf_igemm_ukernel_neon) return SF_IGEMM_ISA_NEON;
  return SF_IGEMM_ISA_BEST;
}

/* Packed weights of a large layer start on a 2 MiB boundary and ask for transparent huge
 * pages over their whole 2 MiB extents (not the tail, so no page is backed that the weights
 * do not use). Measured on the Zen 3 VM: first touch of 118 MB took ~88 ms with 4 KiB pages
 * and ~21 ms with huge pages, which is most of the time packing takes at load. Where the
 * kernel refuses (THP off), nothing changes. */
static float *alloc_packed(size_t bytes) {
  const size_t huge = (size_t)2 << 20;
  void *p = NULL;
  if (bytes < 2 * huge) return posix_memalign(&p, 64, bytes) == 0 ? p : NULL;
  if (posix_memalign(&p, huge, bytes) != 0) return NULL;
#ifdef MADV_HUGEPAGE
  (void)madvise(p, bytes / huge * huge, MADV_HUGEPAGE);
#endif
  return p;
}

/* One weight as type (column j of the source, whose q8 scale is sc). */
static void store_weight(void *row, size_t j, float v, sf_wtype type, float sc) {
  if (type == SF_WTYPE_F32) {
    ((float *)row)[j] = v;
  } else if (type == SF_WTYPE_F16) {
    ((uint16_t *)row)[j] = sf_float_to_half(v);
  } else {
    float q = sc > 0.0f ? nearbyintf(v / sc) : 0.0f; /* round half to even */
    q = q > 127.0f ? 127.0f : q < -127.0f ? -127.0f : q;
    ((int8_t *)row)[j] = (int8_t)q;
  }
}

int sf_igemm_layout(sf_igemm_weights *pw, size_t n, size_t cin, size_t taps, sf_igemm_isa isa, sf_wtype type) {
  memset(pw, 0, sizeof *pw);
  if (isa == SF_IGEMM_ISA_BEST) isa = best_isa_for(type);
  if (!sf_igemm_isa_supports_type(isa, type)) return 0;
  const sf_igemm_ukernel *uk = ukernel_of(isa);
  const size_t nr = uk->nr, tiles = (n + nr - 1) / nr, k = cin * taps;
  if (n == 0 || cin == 0 || taps == 0 || k / taps != cin || tiles > SIZE_MAX / nr / k / sizeof(float)) return 0;
  pw->uk = uk;
  pw->type = type;
  pw->n = n;
  pw->k = k;
  pw->nr = nr;
  pw->n_tiles = tiles;
  return 1;
}

typedef struct pack_job {
  const float *w;
  size_t n, cin, taps, k, nr, es;
  sf_wtype type;
  char *packed;
  float *sc; /* q8 only */
} pack_job;

/* Output-channel tile t: its q8 scales (max|w| / 127 per channel, 0 for an all-zero channel
 * and past n), then its panel. Tiles touch disjoint parts of the outputs, so they are packed
 * in any order, on any thread, into the same bytes. */
static void pack_tile(void *arg, size_t t) {
  const pack_job *p = arg;
  const size_t nr = p->nr, k = p->k, cin = p->cin, taps = p->taps, es = p->es;
  const sf_wtype type = p->type;
  const size_t cols = p->n - t * nr < nr ? p->n - t * nr : nr;
  const float *src = p->w + t * nr * k;
  float *sc = p->sc ? p->sc + t * nr : NULL;
  if (sc != NULL)
    for (size_t j = 0; j < nr; j++) {
      float m = 0.0f;
      for (size_t i = 0; j < cols && i < k; i++) {
        const float a = fabsf(src[j * k + i]);
        if (a > m) m = a;
      }
      sc[j] = m / 127.0f; /* 0 past n */
    }
  char *dst = p->packed + t * k * nr * es;
  /* Destination in order (nr-value rows); the source is read as nr parallel streams, one per
   * output channel, each in its own order (channel i, tap). Filling one column at a time
   * scattered every write over the whole panel: a 1280x2560x3x3 layer packed in 120-142 ms
   * that way and in 94 ms this way (with 4 KiB pages; 44 ms with huge pages, see above). */
  for (size_t i = 0; i < cin; i++)
    for (size_t tap = 0; tap < taps; tap++) {
      char *row = dst + (tap * cin + i) * nr * es;
      const size_t at = i * taps + tap;
      if (type == SF_WTYPE_F32) {
        float *r = (float *)row;
        for (size_t j = 0; j < cols; j++) r[j] = src[j * k + at];
      } else {
        for (size_t j = 0; j < cols; j++) store_weight(row, j, src[j * k + at], type, sc ? sc[j] : 0.0f);
      }
      memset(row + cols * es, 0, (nr - cols) * es);
    }
}

/* Weights below which a layer is packed on the calling thread (waking the pool costs more). */
enum { PACK_PARALLEL_MIN = 1 << 16 };

int sf_igemm_pack_typed_pool(pthreadpool_t pool, sf_igemm_weights *pw, const float *w, const float *bias, size_t n,
                             size_t cin, size_t taps, sf_igemm_isa isa, sf_wtype type) {
  if (!sf_igemm_layout(pw, n, cin, taps, isa, type)) return 0;
  const sf_igemm_ukernel *uk = pw->uk;
  const size_t nr = uk->nr, tiles = pw->n_tiles, k = pw->k, es = sf_wtype_bytes(type);
  char *packed = (char *)alloc_packed(tiles * k * nr * es);
  float *b = alloc_packed(tiles * nr * sizeof(float));
  float *sc = type == SF_WTYPE_Q8 ? alloc_packed(tiles * nr * sizeof(float)) : NULL;
  if (packed == NULL || b == NULL || (type == SF_WTYPE_Q8 && sc == NULL)) {
    free(packed);
    free(b);
    free(sc);
    memset(pw, 0, sizeof *pw);
    return 0;
  }
  pack_job job = {.w = w, .n = n, .cin = cin, .taps = taps, .k = k, .nr = nr, .es = es, .type = type,
                  .packed = packed, .sc = sc};
  if (pool == NULL || pthreadpool_get_threads_count(pool) <= 1 || tiles < 2 || n * k < PACK_PARALLEL_MIN) {
    for (size_t t = 0; t < tiles; t++) pack_tile(&job, t);
  } else {
    pthreadpool_parallelize_1d(pool, pack_tile, &job, tiles, sf_pool_flags(pool));
  }
  for (size_t j = 0; j < tiles * nr; j++) b[j] = (bias != NULL && j < n) ? bias[j] : 0.0f;
  pw->packed = packed;
  pw->bias = b;
  pw->scale = sc;
  return 1;
}

int sf_igemm_pack_typed(sf_igemm_weights *pw, const float *w, const float *bias, size_t n, size_t cin, size_t taps,
                        sf_igemm_isa isa, sf_wtype type) {
  return sf_igemm_pack_typed_pool(NULL, pw, w, bias, n, cin, taps, isa, type);
}

int sf_igemm_pack_isa(sf_igemm_weights *pw, const float *w, const float *bias, size_t n, size_t cin, size_t taps,
                      sf_igemm_isa isa) {
  return sf_igemm_pack_typed(pw, w, bias, n, cin, taps, isa, SF_WTYPE_F32);
}

int sf_igemm_pack(sf_igemm_weights *pw, const float *w, const float *bias, size_t n, size_t cin, size_t taps) {
  return sf_igemm_pack_isa(pw, w, bias, n, cin, taps, SF_IGEMM_ISA_BEST);
}

size_t sf_igemm_panel_bytes(const sf_igemm_weights *pw) { return pw->n_tiles * pw->nr * pw->k * sf_wtype_bytes(pw->type); }
size_t sf_igemm_column_bytes(const sf_igemm_weights *pw) { return pw->n_tiles * pw->nr * sizeof(float); }

size_t sf_igemm_weights_bytes(const sf_igemm_weights *pw) {
  return sf_igemm_panel_bytes(pw) + sf_igemm_column_bytes(pw) * (pw->type == SF_WTYPE_Q8 ? 2 : 1);
}

void sf_igemm_free(sf_igemm_weights *pw) {
  if (!pw->external) {
    free((void *)pw->packed);
    free((void *)pw->bias);
    free((void *)pw->scale);
  }
  memset(pw, 0, sizeof *pw);
}

/* A tile of mr <= MR rows and nr <= NR columns; partial tiles go through a local tile so the
 * microkernel never reads or writes outside C. With scale (q8, after the last k-block) the
 * tile is then made fma(tile, scale, bias). */
static void tile(const sf_igemm_ukernel *uk, sf_igemm_ukernel_fn fn, size_t taps, size_t kc, const float *const *a,
                 const void *b, float *c, size_t ldc, const float *init, size_t mr, size_t nr, const float *scale,
                 const float *bias) {
  if (mr == uk->mr && nr == uk->nr) {
    fn(taps, kc, a, b, c, ldc, init);
    if (scale) uk->scale_bias(c, ldc, scale, bias);
    return;
  }
  float t[SF_IGEMM_MAX_MR * SF_IGEMM_MAX_NR];
  if (init == NULL)
    for (size_t i = 0; i < mr; i++) memcpy(t + i * uk->nr, c + i * ldc, nr * sizeof(float));
  fn(taps, kc, a, b, t, uk->nr, init);
  if (scale) uk->scale_bias(t, uk->nr, scale, bias);
  for (size_t i = 0; i < mr; i++) memcpy(c + i * ldc, t + i * uk->nr, nr * sizeof(float));
}

typedef struct ig_ctx {
  const sf_igemm_weights *w;
  sf_igemm_conv c;
  const float *x;
  float *y;
  size_t y_stride;
  size_t m;                  /* output pixels */
  size_t taps, block_taps;   /* taps per k-block (1 when cin is split) */
  size_t chunk;              /* channels per k-block */
  size_t mb_tiles, nb_tiles; /* task size */
} ig_ctx;

/* Row pointers of the pixels [m0, m0 + mr) for taps [t0, t0 + nt) at channel c0, laid out
 * [tap][row] with MR rows per tap; rows past mr repeat the last valid pixel (computed, never
 * stored). */
static void row_pointers(const ig_ctx *g, size_t m0, size_t mr, size_t t0, size_t nt, size_t c0,
                         const float **a) {
  const sf_igemm_conv *c = &g->c;
  const size_t ohw = c->oh * c->ow, MR = g->w->uk->mr;
  for (size_t i = 0; i < MR; i++) {
    const size_t p = m0 + (i < mr ? i : mr - 1);
    const size_t b = p / ohw, r = p % ohw, oy = r / c->ow, ox = r % c->ow;
    const float *img = g->x + b * c->ih * c->iw * c->cin;
    for (size_t t = 0; t < nt; t++) {
      const size_t ky = (t0 + t) / c->kw, kx = (t0 + t) % c->kw;
      const ptrdiff_t iy = (ptrdiff_t)(oy * c->stride + ky) - (ptrdiff_t)c->pad_top;
      const ptrdiff_t ix = (ptrdiff_t)(ox * c->stride + kx) - (ptrdiff_t)c->pad_left;
      const int inside = iy >= 0 && ix >= 0 && (size_t)iy < c->ih && (size_t)ix < c->iw;
      a[t * MR + i] = inside ? img + ((size_t)iy * c->iw + (size_t)ix) * c->cin + c0 : ig_zero_row;
    }
  }
}

static void ig_task(void *arg, size_t mi, size_t ni) {
  const ig_ctx *g = arg;
  const sf_igemm_weights *w = g->w;
  const sf_igemm_ukernel *uk = w->uk;
  const sf_igemm_ukernel_fn fn = uk->fn[w->type];
  const size_t MR = uk->mr, NR = uk->nr, es = sf_wtype_bytes(w->type);
  const int q8 = w->type == SF_WTYPE_Q8;
  const size_t cin = g->c.cin, m0 = mi * g->mb_tiles * MR;
  const size_t m1 = m0 + g->mb_tiles * MR < g->m ? m0 + g->mb_tiles * MR : g->m;
  const size_t j0 = ni * g->nb_tiles, j1 = j0 + g->nb_tiles < w->n_tiles ? j0 + g->nb_tiles : w->n_tiles;
  const float *a[MB_TILES * MAX_BLOCK_TAPS * SF_IGEMM_MAX_MR];
  int first = 1;
  for (size_t t0 = 0; t0 < g->taps; t0 += g->block_taps) {
    const size_t nt = g->taps - t0 < g->block_taps ? g->taps - t0 : g->block_taps;
    for (size_t c0 = 0; c0 < cin; c0 += g->chunk) {
      const size_t kc = cin - c0 < g->chunk ? cin - c0 : g->chunk;
      for (size_t m = m0, i = 0; m < m1; m += MR, i++)
        row_pointers(g, m, m1 - m < MR ? m1 - m : MR, t0, nt, c0, a + i * nt * MR);
      const int last = t0 + nt >= g->taps && c0 + kc >= cin;
      for (size_t j = j0; j < j1; j++) {
        const void *b = (const char *)w->packed + (j * w->k + t0 * cin + c0) * NR * es;
        const size_t nr = w->n - j * NR < NR ? w->n - j * NR : NR;
        const float *init = first ? (q8 ? ig_zero_init : w->bias + j * NR) : NULL;
        const float *scale = q8 && last ? w->scale + j * NR : NULL;
        for (size_t m = m0, i = 0; m < m1; m += MR, i++)
          tile(uk, fn, nt, kc, a + i * nt * MR, b, g->y + m * g->y_stride + j * NR, g->y_stride, init,
               m1 - m < MR ? m1 - m : MR, nr, scale, w->bias + j * NR);
      }
      first = 0;
    }
  }
}

static size_t ceil_div(size_t a, size_t b) { return (a + b - 1) / b; }

static void ig_run(pthreadpool_t pool, ig_ctx *g) {
  const size_t cin = g->c.cin;
  if (cin <= KC) {
    g->chunk = cin;
    g->block_taps = KC / cin;
    if (g->block_taps > MAX_BLOCK_TAPS) g->block_taps = MAX_BLOCK_TAPS;
    if (g->block_taps > g->taps) g->block_taps = g->taps;
  } else {
    g->block_taps = 1;
    g->chunk = ceil_div(cin, ceil_div(cin, KC));
  }
  /* Task size: as large as the cache budget allows, but at least ~4 tasks per thread so the
   * pool balances; the grouping does not affect results (see igemm.h). */
  const size_t threads = pool ? pthreadpool_get_threads_count(pool) : 1;
  const size_t m_tiles = ceil_div(g->m, g->w->uk->mr), n_tiles = g->w->n_tiles;
  g->mb_tiles = MB_TILES;
  g->nb_tiles = NB_TILES < n_tiles ? NB_TILES : n_tiles;
  while (g->mb_tiles > 2 && ceil_div(m_tiles, g->mb_tiles) * ceil_div(n_tiles, g->nb_tiles) < 4 * threads)
    g->mb_tiles /= 2;
  const size_t mblocks = ceil_div(m_tiles, g->mb_tiles), nblocks = ceil_div(n_tiles, g->nb_tiles);
  if (pool == NULL || threads <= 1) {
    for (size_t i = 0; i < mblocks; i++)
      for (size_t j = 0; j < nblocks; j++) ig_task(g, i, j);
    return;
  }
  pthreadpool_parallelize_2d(pool, ig_task, g, mblocks, nblocks, sf_pool_flags(pool));
}

void sf_igemm_conv_f32(pthreadpool_t pool, const sf_igemm_weights *w, const sf_igemm_conv *c, const float *x,
                       float *y, size_t y_stride) {
  ig_ctx g = {.w = w, .c = *c, .x = x, .y = y, .y_stride = y_stride};
  g.m = c->batch * c->oh * c->ow;
  g.taps = c->kh * c->kw;
  if (g.m == 0) return;
  ig_run(pool, &g);
}

void sf_igemm_linear_f32(pthreadpool_t pool, const sf_igemm_weights *w, const float *x, float *y, size_t rows) {
  sf_igemm_conv c = {.batch = 1, .ih = rows, .iw = 1, .cin = w->k, .oh = rows, .ow = 1, .kh = 1, .kw = 1,
                     .stride = 1};
  sf_igemm_conv_f32(pool, w, &c, x, y, w->n);
}
