/* Attention kernel vs a naive double-precision reference, both the SIMD and the portable
 * path, plus bit-exact determinism across thread counts.
 *
 * Tolerance: |got - ref| <= 2e-6 + 1e-5*|ref| per element. Inputs are uniform in [-1, 1], so
 * outputs are O(1); float32 scores and sums give errors around 1e-7..1e-6.
 *
 * Set SF_ATTENTION_BENCH=1 to also print GFLOP/s of SD-sized cases (no assertions on time). */
#include <pthreadpool.h>
#include <stdint.h>
#include <time.h>

#include "graph/ops/attention.h"
#include "test.h"

#define ATOL 2e-6
#define RTOL 1e-5

static uint32_t rng_state = 12345u;
static float rnd(void) { /* uniform in [-1, 1) */
  rng_state = rng_state * 1664525u + 1013904223u;
  return (float)((rng_state >> 8) * (1.0 / 8388608.0) - 1.0);
}

static float *alloc_random(size_t n) {
  float *p = malloc((n ? n : 1) * sizeof(float));
  if (p == NULL) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  for (size_t i = 0; i < n; i++) p[i] = rnd();
  return p;
}

/* Reference output row (b, i, all heads) in double. */
static void reference_row(const sf_attention_desc *d, const float *q, const float *k,
                          const float *v, size_t b, size_t i, double *out_row, double *sc) {
  const size_t D = d->head_dim;
  for (size_t h = 0; h < d->heads; h++) {
    const float *qi = q + (b * d->q_len + i) * d->q_stride + h * D;
    double mx = -INFINITY;
    size_t nk = d->causal ? (i + 1 < d->kv_len ? i + 1 : d->kv_len) : d->kv_len;
    for (size_t j = 0; j < nk; j++) {
      const float *kj = k + (b * d->kv_len + j) * d->k_stride + h * D;
      double s = 0;
      for (size_t dd = 0; dd < D; dd++) s += (double)qi[dd] * kj[dd];
      sc[j] = s * d->scale;
      if (sc[j] > mx) mx = sc[j];
    }
    double sum = 0;
    for (size_t j = 0; j < nk; j++) sum += (sc[j] = exp(sc[j] - mx));
    for (size_t dd = 0; dd < D; dd++) {
      double acc = 0;
      for (size_t j = 0; j < nk; j++)
        acc += sc[j] * v[(b * d->kv_len + j) * d->v_stride + h * D + dd];
      out_row[h * D + dd] = acc / sum;
    }
  }
}

static size_t buf_len(size_t batch, size_t len, size_t stride, size_t C) {
  return (batch * len - 1) * stride + C;
}

/* Runs the kernel into a fresh output buffer whose inter-row padding holds a sentinel. */
static float *run(pthreadpool_t pool, const sf_attention_desc *d, const float *q, const float *k,
                  const float *v, int portable) {
  sf_attention_desc dd = *d;
  dd.force_portable = portable;
  size_t threads = pool ? pthreadpool_get_threads_count(pool) : 1;
  size_t C = d->heads * d->head_dim;
  size_t n = buf_len(d->batch, d->q_len, d->out_stride, C);
  float *out = malloc(n * sizeof(float));
  /* Odd offset: the kernel must not assume an aligned scratch. */
  size_t ss = sf_attention_scratch_size(&dd, threads);
  unsigned char *scratch = malloc(ss + 4);
  if (out == NULL || scratch == NULL) exit(2);
  for (size_t i = 0; i < n; i++) out[i] = 12345.0f;
  sf_attention_f32(pool, &dd, q, k, v, out, scratch + 4);
  free(scratch);
  return out;
}

/* Checks every `row_step`-th query row (and the last one) of every batch against the reference;
 * returns the max error divided by the allowed error (infinite if any value is not finite). */
static double check_vs_reference(const char *name, const sf_attention_desc *d, const float *q,
                                 const float *k, const float *v, const float *out,
                                 size_t row_step) {
  size_t C = d->heads * d->head_dim;
  double *ref = malloc(C * sizeof(double)), *sc = malloc(d->kv_len * sizeof(double));
  if (ref == NULL || sc == NULL) exit(2);
  double worst = 0, worst_abs = 0;
  size_t nonfinite = 0; /* NaN/Inf in the output or the reference: counted, never compared */
  int pad_ok = 1;
  for (size_t b = 0; b < d->batch; b++) {
    for (size_t i = 0; i < d->q_len; i++) {
      const float *o = out + (b * d->q_len + i) * d->out_stride;
      if (i + 1 < d->q_len || b + 1 < d->batch) {
        for (size_t c = C; c < d->out_stride; c++) pad_ok &= o[c] == 12345.0f;
      }
      if (i % row_step != 0 && i + 1 != d->q_len) continue;
      reference_row(d, q, k, v, b, i, ref, sc);
      for (size_t c = 0; c < C; c++) {
        double err = fabs((double)o[c] - ref[c]);
        double ratio = err / (ATOL + RTOL * fabs(ref[c]));
        if (!isfinite(o[c]) || !isfinite(ratio)) {
          nonfinite++;
          continue;
        }
        if (ratio > worst) worst = ratio;
        if (err > worst_abs) worst_abs = err;
      }
    }
  }
  CHECK_MSG(nonfinite == 0, "%s: %zu non-finite outputs", name, nonfinite);
  CHECK_MSG(worst <= 1.0, "%s: max error %.3g (%.2fx tolerance)", name, worst_abs, worst);
  CHECK_MSG(pad_ok, "%s: wrote outside the output columns", name);
  free(ref);
  free(sc);
  return nonfinite ? INFINITY : worst;
}

typedef struct buffers {
  float *q, *k, *v;
} buffers;

static buffers make_inputs(const sf_attention_desc *d) {
  size_t C = d->heads * d->head_dim;
  buffers bf;
  bf.q = alloc_random(buf_len(d->batch, d->q_len, d->q_stride, C));
  bf.k = alloc_random(buf_len(d->batch, d->kv_len, d->k_stride, C));
  bf.v = alloc_random(buf_len(d->batch, d->kv_len, d->v_stride, C));
  return bf;
}

static void free_inputs(buffers *bf) {
  free(bf->q);
  free(bf->k);
  free(bf->v);
}

static sf_attention_desc desc(size_t batch, size_t heads, size_t D, size_t tq, size_t tk,
                              int causal) {
  sf_attention_desc d;
  memset(&d, 0, sizeof d);
  d.batch = batch;
  d.heads = heads;
  d.head_dim = D;
  d.q_len = tq;
  d.kv_len = tk;
  d.q_stride = d.k_stride = d.v_stride = d.out_stride = heads * D;
  d.scale = (float)(1.0 / sqrt((double)D));
  d.causal = causal;
  return d;
}

/* Both paths vs the reference, and the two paths vs each other, on a 2-thread pool. */
static void check_case(const char *name, pthreadpool_t pool, const sf_attention_desc *d,
                       const float *q, const float *k, const float *v, size_t row_step) {
  char label[160];
  float *simd = run(pool, d, q, k, v, 0);
  float *port = run(pool, d, q, k, v, 1);
  snprintf(label, sizeof label, "%s [%s]", name, sf_attention_isa());
  check_vs_reference(label, d, q, k, v, simd, row_step);
  snprintf(label, sizeof label, "%s [portable]", name);
  check_vs_reference(label, d, q, k, v, port, row_step);
  size_t C = d->heads * d->head_dim;
  double worst = 0;
  size_t nonfinite = 0;
  for (size_t r = 0; r < d->batch * d->q_len; r++) {
    for (size_t c = 0; c < C; c++) {
      float a = simd[r * d->out_stride + c], b = port[r * d->out_stride + c];
      double ratio = fabs((double)a - b) / (ATOL + RTOL * fabs((double)b));
      if (!isfinite(a) || !isfinite(b) || !isfinite(ratio)) nonfinite++;
      else if (ratio > worst) worst = ratio;
    }
  }
  CHECK_MSG(nonfinite == 0, "%s: %zu non-finite values in simd or portable", name, nonfinite);
  CHECK_MSG(worst <= 1.0, "%s: simd vs portable differ (%.2fx tolerance)", name, worst);
  /* The same bits on every CPU: the portable path (AArch64, x86 without AVX2) is the SIMD
   * kernels' chain of operations with explicit fmaf. */
  size_t differ = 0;
  for (size_t r = 0; r < d->batch * d->q_len; r++)
    differ += memcmp(simd + r * d->out_stride, port + r * d->out_stride, C * sizeof(float)) != 0;
  CHECK_MSG(differ == 0, "%s: simd (%s) and portable differ in %zu rows (must be bit-identical)", name,
            sf_attention_isa(), differ);
  free(simd);
  free(port);
}

static void simple_case(const char *name, pthreadpool_t pool, size_t batch, size_t heads,
                        size_t D, size_t tq, size_t tk, int causal, float scale_mul) {
  sf_attention_desc d = desc(batch, heads, D, tq, tk, causal);
  d.scale *= scale_mul;
  buffers bf = make_inputs(&d);
  check_case(name, pool, &d, bf.q, bf.k, bf.v, 1);
  free_inputs(&bf);
}

/* q, k, v as column slices of one fused [B*T, 3C] projection output; out rows padded. */
static void fused_case(pthreadpool_t pool, int causal) {
  const size_t B = 2, T = 100, H = 3, D = 24, C = H * D;
  sf_attention_desc d = desc(B, H, D, T, T, causal);
  d.q_stride = d.k_stride = d.v_stride = 3 * C;
  d.out_stride = C + 5;
  float *qkv = alloc_random(B * T * 3 * C);
  check_case(causal ? "fused qkv causal" : "fused qkv", pool, &d, qkv, qkv + C, qkv + 2 * C, 1);
  free(qkv);
}

static void determinism_case(pthreadpool_t p1, pthreadpool_t p2, pthreadpool_t p4,
                             const sf_attention_desc *d, const char *name) {
  buffers bf = make_inputs(d);
  for (int portable = 0; portable <= 1; portable++) {
    float *o0 = run(NULL, d, bf.q, bf.k, bf.v, portable);
    float *o1 = run(p1, d, bf.q, bf.k, bf.v, portable);
    float *o2 = run(p2, d, bf.q, bf.k, bf.v, portable);
    float *o4 = run(p4, d, bf.q, bf.k, bf.v, portable);
    size_t n = buf_len(d->batch, d->q_len, d->out_stride, d->heads * d->head_dim);
    CHECK_MSG(memcmp(o0, o1, n * sizeof(float)) == 0, "%s portable=%d: NULL vs 1 thread", name,
              portable);
    CHECK_MSG(memcmp(o0, o2, n * sizeof(float)) == 0, "%s portable=%d: NULL vs 2 threads",
              name, portable);
    CHECK_MSG(memcmp(o0, o4, n * sizeof(float)) == 0, "%s portable=%d: NULL vs 4 threads",
              name, portable);
    free(o0);
    free(o1);
    free(o2);
    free(o4);
  }
  free_inputs(&bf);
}

static double now_sec(void) {
  struct timespec ts;
  timespec_get(&ts, TIME_UTC);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void bench(pthreadpool_t pool, const char *name, size_t heads, size_t D, size_t tq,
                  size_t tk, int portable) {
  sf_attention_desc d = desc(1, heads, D, tq, tk, 0);
  d.force_portable = portable;
  buffers bf = make_inputs(&d);
  float *out = malloc(tq * heads * D * sizeof(float));
  size_t threads = pool ? pthreadpool_get_threads_count(pool) : 1;
  void *scratch = malloc(sf_attention_scratch_size(&d, threads));
  if (out == NULL || scratch == NULL) exit(2);
  sf_attention_f32(pool, &d, bf.q, bf.k, bf.v, out, scratch); /* warm-up */
  double t[5];
  for (int r = 0; r < 5; r++) {
    double t0 = now_sec();
    sf_attention_f32(pool, &d, bf.q, bf.k, bf.v, out, scratch);
    t[r] = now_sec() - t0;
  }
  qsort(t, 5, sizeof t[0], cmp_double);
  printf("bench %-28s %-8s threads=%zu: median %.2f ms, %.1f GFLOP/s\n", name,
         portable ? "portable" : sf_attention_isa(), threads, t[2] * 1e3,
         sf_attention_flops(&d) / t[2] * 1e-9);
  free(out);
  free(scratch);
  free_inputs(&bf);
}

int main(void) {
  pthreadpool_t p1 = pthreadpool_create(1), p2 = pthreadpool_create(2),
                p4 = pthreadpool_create(4);
  CHECK(p1 != NULL && p2 != NULL && p4 != NULL);
  if (p1 == NULL || p2 == NULL || p4 == NULL) TEST_MAIN_END();

  simple_case("self 77 h4 d8", p2, 1, 4, 8, 77, 77, 0, 1.0f);
  simple_case("self 77 h4 d8 causal", p2, 1, 4, 8, 77, 77, 1, 1.0f);
  simple_case("cross 64x77 h2 d16", p2, 1, 2, 16, 64, 77, 0, 1.0f);
  simple_case("kv_len 1", p2, 2, 2, 16, 50, 1, 0, 1.0f);
  simple_case("q_len 1", p2, 1, 3, 16, 1, 77, 0, 1.0f);
  simple_case("q_len 1 kv_len 1", NULL, 1, 1, 5, 1, 1, 0, 1.0f);
  simple_case("causal q_len 1", NULL, 1, 1, 5, 1, 9, 1, 1.0f);
  simple_case("d13 h3", p2, 1, 3, 13, 70, 45, 0, 1.0f);
  simple_case("d5 causal", p2, 1, 2, 5, 33, 33, 1, 1.0f);
  /* Several key blocks: exercises the running-max rescale; causal with the diagonal in a
   * later key block. Sharper logits (scale x4) make the rescale factors matter. */
  simple_case("long keys d40", p2, 1, 2, 40, 96, 700, 0, 4.0f);
  simple_case("long causal d64", p2, 1, 2, 64, 300, 300, 1, 4.0f);
  simple_case("d80 cross", p2, 2, 2, 80, 130, 77, 0, 1.0f);
  simple_case("d160", p2, 1, 1, 160, 65, 200, 0, 1.0f);
  simple_case("causal tq > tk", p2, 1, 2, 16, 40, 20, 1, 1.0f);
  fused_case(p2, 0);
  fused_case(p2, 1);

  { /* One SD-sized sequence: every 61st row checked to keep the double reference cheap. */
    sf_attention_desc d = desc(1, 1, 40, 4096, 4096, 0);
    buffers bf = make_inputs(&d);
    float *out = run(p2, &d, bf.q, bf.k, bf.v, 0);
    check_vs_reference("self 4096 d40", &d, bf.q, bf.k, bf.v, out, 61);
    free(out);
    free_inputs(&bf);
  }

  {
    sf_attention_desc d = desc(2, 3, 40, 300, 300, 0);
    determinism_case(p1, p2, p4, &d, "det self");
    d = desc(1, 2, 13, 257, 77, 0);
    determinism_case(p1, p2, p4, &d, "det cross d13");
    d = desc(1, 2, 64, 400, 400, 1);
    determinism_case(p1, p2, p4, &d, "det causal");
  }

  { /* Scratch grows with threads but not with sequence length beyond one block. */
    sf_attention_desc a = desc(1, 8, 40, 4096, 4096, 0), b = desc(1, 8, 40, 8192, 8192, 0);
    CHECK_EQ_INT(sf_attention_scratch_size(&a, 2), sf_attention_scratch_size(&b, 2));
    CHECK(sf_attention_scratch_size(&a, 4) > sf_attention_scratch_size(&a, 2));
    CHECK(sf_attention_scratch_size(&a, 2) < (size_t)1 << 20);
    CHECK(sf_attention_flops(&a) == 4.0 * 8 * 4096.0 * 4096.0 * 40);
  }

  const char *b = getenv("SF_ATTENTION_BENCH");
  if (b && *b && strcmp(b, "0") != 0) {
    bench(p2, "self 4096x4096 h8 d40", 8, 40, 4096, 4096, 0);
    bench(p1, "self 4096x4096 h8 d40", 8, 40, 4096, 4096, 0);
    bench(p2, "cross 4096x77 h8 d40", 8, 40, 4096, 77, 0);
    bench(p2, "self 1024x1024 h8 d80", 8, 80, 1024, 1024, 0);
    bench(p2, "self 256x256 h8 d160", 8, 160, 256, 256, 0);
    bench(p2, "self 77x77 h12 d64", 12, 64, 77, 77, 0);
    bench(p2, "self 4096x4096 h8 d40", 8, 40, 4096, 4096, 1);
  }

  pthreadpool_destroy(p1);
  pthreadpool_destroy(p2);
  pthreadpool_destroy(p4);
  TEST_MAIN_END();
}
