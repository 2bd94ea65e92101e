/* The indirect GEMM behind conv2d / linear (graph/ops/igemm.h), with every microkernel the
 * CPU runs and every weight type (f32, f16, q8: the reference uses the weights as stored, i.e.
 * rounded to half or quantised, so it checks the arithmetic, not the quantisation), against a
 * double-precision reference, on shapes that hit every edge of its blocking: channel counts that are not
 * multiples of the tile (1, 3, 13, 17), input channels split into several k-blocks (> 512)
 * and several taps per k-block (small cin), images smaller than the kernel window, stride 2,
 * asymmetric padding, batch 2, single rows; and bit-identical outputs with 1, 2 and 4 threads
 * and across microkernels; and packing over a pool gives the same bytes as without one.
 *
 * Tolerance: a float32 sum of K products, accumulated in any order, is within
 * K * 2^-24 * sum |terms| of the exact value (Higham's gamma_K bound, first order); each
 * output is checked against that bound computed from its own terms. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <pthreadpool.h>

#include "graph/ops/half.h"
#include "graph/ops/igemm.h"
#include "test.h"

static void fill(float *x, size_t n, unsigned seed) {
  uint32_t s = seed * 747796405u + 2891336453u;
  for (size_t i = 0; i < n; i++) {
    s = s * 1664525u + 1013904223u;
    x[i] = (float)(s >> 8) / 8388608.0f - 1.0f;
  }
}

typedef struct conv_case {
  size_t batch, ih, iw, cin, cout, kh, kw, stride, pad_t, pad_l, pad_b, pad_r;
  int bias;
} conv_case;

static pthreadpool_t pools[3]; /* 2 and 4 threads; [0] = NULL: the calling thread */
static sf_igemm_isa isa;        /* the microkernel under test */
static sf_wtype wtype;          /* the weight type under test */

/* The weights the packed layer holds, as floats: f16 rounds to nearest even, q8 quantises per
 * output channel (scale = max|w| / 127, q = rint(w / scale)) and gives q * scale. w is
 * [n][k] (a conv's OIHW: k = cin * taps). The reference computes with these. */
static void effective_weights(const float *w, size_t n, size_t k, float *out, float *q8_scale) {
  for (size_t o = 0; o < n; o++) {
    float m = 0.0f;
    for (size_t i = 0; i < k; i++) m = fabsf(w[o * k + i]) > m ? fabsf(w[o * k + i]) : m;
    const float scale = m / 127.0f;
    if (q8_scale) q8_scale[o] = scale;
    for (size_t i = 0; i < k; i++) {
      const float v = w[o * k + i];
      if (wtype == SF_WTYPE_F16) {
        out[o * k + i] = sf_half_to_float(sf_float_to_half(v));
      } else if (wtype == SF_WTYPE_Q8) {
        float q = scale > 0.0f ? nearbyintf(v / scale) : 0.0f;
        q = q > 127.0f ? 127.0f : q < -127.0f ? -127.0f : q;
        out[o * k + i] = q; /* the integer; the reference multiplies by the scale in double */
      } else {
        out[o * k + i] = v;
      }
    }
  }
}

/* Every microkernel accumulates each output as one FMA chain in the same k order, so all of
 * them must give the scalar kernel's bits for the same weight type (the scalar kernel runs
 * first and leaves its outputs here). */
enum { SLOTS_PER_TYPE = 32, SLOTS = SLOTS_PER_TYPE * SF_WTYPE_COUNT };
static float *scalar_bits[SLOTS];
static size_t scalar_len[SLOTS];

static void check_same_as_scalar(size_t slot, const float *y, size_t n, const char *what) {
  slot += (size_t)wtype * SLOTS_PER_TYPE;
  if (isa == SF_IGEMM_ISA_SCALAR) {
    free(scalar_bits[slot]);
    scalar_bits[slot] = malloc(n * sizeof *y);
    if (scalar_bits[slot]) memcpy(scalar_bits[slot], y, n * sizeof *y);
    scalar_len[slot] = n;
    return;
  }
  CHECK_MSG(scalar_bits[slot] != NULL && scalar_len[slot] == n && memcmp(scalar_bits[slot], y, n * sizeof *y) == 0,
            "%s: differs from the scalar kernel's bits", what);
}

static void run_case(const conv_case *t, size_t slot) {
  char what[160];
  snprintf(what, sizeof what, "%s/%s conv %zux%zux%zux%zu->%zu k%zux%zu s%zu pad(%zu,%zu,%zu,%zu)%s",
           sf_igemm_isa_name(isa), sf_wtype_name(wtype), t->batch, t->ih,
           t->iw, t->cin, t->cout, t->kh, t->kw, t->stride, t->pad_t, t->pad_r, t->pad_b, t->pad_l,
           t->bias ? "" : " no bias");
  const size_t oh = (t->ih + t->pad_t + t->pad_b - t->kh) / t->stride + 1;
  const size_t ow = (t->iw + t->pad_l + t->pad_r - t->kw) / t->stride + 1;
  const size_t taps = t->kh * t->kw, K = taps * t->cin;
  const size_t xn = t->batch * t->ih * t->iw * t->cin, yn = t->batch * oh * ow * t->cout;
  float *x = malloc(xn * sizeof *x), *w0 = malloc(t->cout * K * sizeof *w0), *b = malloc(t->cout * sizeof *b);
  float *w = malloc(t->cout * K * sizeof *w), *qs = malloc(t->cout * sizeof *qs);
  float *y[3] = {malloc(yn * sizeof(float)), malloc(yn * sizeof(float)), malloc(yn * sizeof(float))};
  sf_igemm_weights pw;
  int ok = x && w0 && w && qs && b && y[0] && y[1] && y[2];
  CHECK_MSG(ok, "%s: out of memory", what);
  if (ok) {
    fill(x, xn, 1);
    fill(w0, t->cout * K, 2); /* OIHW */
    fill(b, t->cout, 3);
    effective_weights(w0, t->cout, K, w, qs);
    ok = sf_igemm_pack_typed(&pw, w0, t->bias ? b : NULL, t->cout, t->cin, taps, isa, wtype);
    CHECK_MSG(ok, "%s: pack failed", what);
  }
  if (ok) {
    const sf_igemm_conv c = {.batch = t->batch, .ih = t->ih, .iw = t->iw, .cin = t->cin, .oh = oh, .ow = ow,
                             .kh = t->kh, .kw = t->kw, .stride = t->stride, .pad_top = t->pad_t,
                             .pad_left = t->pad_l};
    for (int p = 0; p < 3; p++) {
      for (size_t i = 0; i < yn; i++) y[p][i] = NAN; /* every output must be written */
      sf_igemm_conv_f32(pools[p], &pw, &c, x, y[p], t->cout);
    }
    size_t bad = 0, differ = 0, nonfinite = 0;
    double worst = 0.0;
    for (size_t n = 0; n < t->batch; n++)
      for (size_t oy = 0; oy < oh; oy++)
        for (size_t ox = 0; ox < ow; ox++)
          for (size_t o = 0; o < t->cout; o++) {
            const double ws = wtype == SF_WTYPE_Q8 ? (double)qs[o] : 1.0; /* q8: w = q * scale */
            double acc = 0.0, mag = 0.0;
            for (size_t ky = 0; ky < t->kh; ky++)
              for (size_t kx = 0; kx < t->kw; kx++) {
                const long iy = (long)(oy * t->stride + ky) - (long)t->pad_t;
                const long ix = (long)(ox * t->stride + kx) - (long)t->pad_l;
                if (iy < 0 || ix < 0 || iy >= (long)t->ih || ix >= (long)t->iw) continue;
                const float *xp = x + ((n * t->ih + (size_t)iy) * t->iw + (size_t)ix) * t->cin;
                const float *wp = w + o * K + ky * t->kw + kx; /* OIHW: channel i at wp[i * taps] */
                for (size_t i = 0; i < t->cin; i++) {
                  acc += (double)xp[i] * wp[i * taps];
                  mag += fabs((double)xp[i] * wp[i * taps]);
                }
              }
            acc = acc * ws + (t->bias ? b[o] : 0.0);
            mag = mag * ws + fabs(t->bias ? (double)b[o] : 0.0);
            const size_t at = ((n * oh + oy) * ow + ox) * t->cout + o;
            const double err = fabs((double)y[0][at] - acc), bound = (double)(K + 1) * 0x1p-24 * mag + 1e-30;
            if (!(err <= bound)) bad++;
            if (!isfinite(y[0][at])) nonfinite++; /* counted: a NaN must not hide behind the max */
            else if (err / bound > worst) worst = err / bound;
            if (memcmp(&y[0][at], &y[1][at], sizeof(float)) != 0 || memcmp(&y[0][at], &y[2][at], sizeof(float)) != 0)
              differ++;
          }
    CHECK_MSG(nonfinite == 0, "%s: %zu of %zu outputs not finite", what, nonfinite, yn);
    CHECK_MSG(bad == 0, "%s: %zu of %zu outputs outside the fp32 bound (worst %.2f x bound)", what, bad, yn, worst);
    CHECK_MSG(differ == 0, "%s: %zu outputs differ between 1, 2 and 4 threads", what, differ);
    check_same_as_scalar(slot, y[0], yn, what);
    sf_igemm_free(&pw);
    /* f16 widening is exact: the f16 kernel gives the f32 kernel's bits on the same (rounded)
     * weights. */
    if (wtype == SF_WTYPE_F16 && sf_igemm_pack_typed(&pw, w, t->bias ? b : NULL, t->cout, t->cin, taps, isa,
                                                     SF_WTYPE_F32)) {
      const sf_igemm_conv c32 = {.batch = t->batch, .ih = t->ih, .iw = t->iw, .cin = t->cin, .oh = oh, .ow = ow,
                                 .kh = t->kh, .kw = t->kw, .stride = t->stride, .pad_top = t->pad_t,
                                 .pad_left = t->pad_l};
      sf_igemm_conv_f32(NULL, &pw, &c32, x, y[1], t->cout);
      CHECK_MSG(memcmp(y[0], y[1], yn * sizeof(float)) == 0, "%s: f16 differs from f32 on the same weights", what);
      sf_igemm_free(&pw);
    }
  }
  free(x);
  free(w0);
  free(w);
  free(qs);
  free(b);
  for (int p = 0; p < 3; p++) free(y[p]);
}

static void test_linear(size_t rows, size_t in_f, size_t out_f, size_t slot) {
  float *x = malloc(rows * in_f * sizeof *x), *w0 = malloc(out_f * in_f * sizeof *w0), *b = malloc(out_f * sizeof *b);
  float *w = malloc(out_f * in_f * sizeof *w), *qs = malloc(out_f * sizeof *qs);
  float *y = malloc(rows * out_f * sizeof *y), *yc = malloc(rows * out_f * sizeof *yc);
  sf_igemm_weights pw;
  int ok = x && w0 && w && qs && b && y && yc;
  if (ok) {
    fill(x, rows * in_f, 4);
    fill(w0, out_f * in_f, 5);
    fill(b, out_f, 6);
    effective_weights(w0, out_f, in_f, w, qs);
    ok = sf_igemm_pack_typed(&pw, w0, b, out_f, in_f, 1, isa, wtype);
  }
  CHECK_MSG(ok, "%s/%s linear %zux%zu->%zu: setup failed", sf_igemm_isa_name(isa), sf_wtype_name(wtype), rows, in_f,
            out_f);
  if (ok) {
    sf_igemm_linear_f32(pools[1], &pw, x, y, rows);
    /* The same layer as a 1x1 conv over a [rows, 1] image must give the same bits. */
    const sf_igemm_conv c = {.batch = 1, .ih = rows, .iw = 1, .cin = in_f, .oh = rows, .ow = 1, .kh = 1, .kw = 1,
                             .stride = 1};
    sf_igemm_conv_f32(NULL, &pw, &c, x, yc, out_f);
    size_t bad = 0;
    for (size_t r = 0; r < rows; r++)
      for (size_t o = 0; o < out_f; o++) {
        const double ws = wtype == SF_WTYPE_Q8 ? (double)qs[o] : 1.0;
        double acc = 0.0, mag = 0.0;
        for (size_t i = 0; i < in_f; i++) {
          acc += (double)x[r * in_f + i] * w[o * in_f + i];
          mag += fabs((double)x[r * in_f + i] * w[o * in_f + i]);
        }
        acc = acc * ws + b[o];
        mag = mag * ws + fabs((double)b[o]);
        if (!(fabs(y[r * out_f + o] - acc) <= (double)(in_f + 1) * 0x1p-24 * mag)) bad++;
      }
    CHECK_MSG(bad == 0, "%s linear %zux%zu->%zu: %zu outputs outside the fp32 bound", sf_igemm_isa_name(isa), rows,
              in_f, out_f, bad);
    CHECK_MSG(memcmp(y, yc, rows * out_f * sizeof *y) == 0, "%s linear %zux%zu->%zu: differs from the 1x1 conv",
              sf_igemm_isa_name(isa), rows, in_f, out_f);
    check_same_as_scalar(slot, y, rows * out_f, "linear");
    sf_igemm_free(&pw);
  }
  free(x);
  free(w0);
  free(w);
  free(qs);
  free(b);
  free(y);
  free(yc);
}

/* sf_igemm_pack_typed_pool with 2 and 4 threads packs the bytes sf_igemm_pack_typed packs, for
 * layers above the parallel threshold with a partial last tile and an all-zero channel (q8). */
static void test_pack_pools(void) {
  static const size_t shapes[][3] = {{77, 300, 9}, {1000, 131, 1}, {33, 2048, 1}, {5, 20000, 1}, {13, 7, 9}};
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    const size_t n = shapes[s][0], cin = shapes[s][1], taps = shapes[s][2], k = cin * taps;
    float *w = malloc(n * k * sizeof *w), *b = malloc(n * sizeof *b);
    CHECK(w != NULL && b != NULL);
    if (w == NULL || b == NULL) {
      free(w);
      free(b);
      return;
    }
    fill(w, n * k, 7 + (unsigned)s);
    fill(b, n, 8);
    memset(w + (n / 2) * k, 0, k * sizeof *w);
    sf_igemm_weights ref;
    int ok = sf_igemm_pack_typed(&ref, w, b, n, cin, taps, isa, wtype);
    CHECK(ok);
    for (int p = 0; ok && p < 3; p++) {
      sf_igemm_weights pw;
      CHECK(sf_igemm_pack_typed_pool(pools[p], &pw, w, b, n, cin, taps, isa, wtype));
      const size_t cols = ref.n_tiles * ref.nr;
      int same = pw.n_tiles == ref.n_tiles && pw.nr == ref.nr && pw.k == ref.k && pw.type == ref.type &&
                 memcmp(pw.packed, ref.packed, cols * k * sf_wtype_bytes(wtype)) == 0 &&
                 memcmp(pw.bias, ref.bias, cols * sizeof(float)) == 0 &&
                 (ref.scale == NULL ? pw.scale == NULL
                                    : pw.scale != NULL && memcmp(pw.scale, ref.scale, cols * sizeof(float)) == 0);
      CHECK_MSG(same, "%s/%s pack %zux%zux%zu over pool %d: bytes differ", sf_igemm_isa_name(isa),
                sf_wtype_name(wtype), n, cin, taps, p);
      sf_igemm_free(&pw);
    }
    if (ok) sf_igemm_free(&ref);
    free(w);
    free(b);
  }
}

int main(void) {
  pools[1] = pthreadpool_create(2);
  pools[2] = pthreadpool_create(4);
  CHECK(pools[1] != NULL && pools[2] != NULL);
  printf("best igemm microkernel here: %s%s\n", sf_igemm_isa_name(SF_IGEMM_ISA_BEST),
         sf_igemm_available() ? "" : " (no SIMD kernel: the portable one runs)");
  const conv_case cases[] = {
      /* SD-like 3x3, channels a multiple of the tile */
      {1, 8, 8, 32, 32, 3, 3, 1, 1, 1, 1, 1, 1},
      /* awkward channel counts, small images, non-square */
      {2, 3, 5, 13, 17, 3, 3, 1, 1, 1, 1, 1, 1},
      {1, 5, 3, 3, 1, 3, 3, 1, 1, 1, 1, 1, 0},
      {1, 1, 1, 20, 13, 3, 3, 1, 1, 1, 1, 1, 1},
      {1, 1, 1, 7, 40, 1, 1, 1, 0, 0, 0, 0, 1},
      /* cin 4 (latents): many taps per k-block; cout 4 (conv_out) */
      {2, 9, 7, 4, 24, 3, 3, 1, 1, 1, 1, 1, 1},
      {1, 9, 7, 24, 4, 3, 3, 1, 1, 1, 1, 1, 1},
      /* cin > 512: channels split over k-blocks (2 and 3 chunks) */
      {1, 4, 3, 600, 19, 3, 3, 1, 1, 1, 1, 1, 1},
      {1, 3, 2, 1100, 33, 1, 1, 1, 0, 0, 0, 0, 1},
      /* stride 2, symmetric and right/bottom-only padding (Downsample2D padding=0) */
      {1, 8, 6, 16, 16, 3, 3, 2, 1, 1, 1, 1, 1},
      {2, 8, 6, 10, 21, 3, 3, 2, 0, 0, 1, 1, 1},
      /* a non-square kernel, more rows than one task */
      {1, 37, 29, 8, 48, 3, 5, 1, 1, 2, 1, 2, 1},
  };
  /* Every microkernel this CPU runs; the portable one always. */
  const sf_igemm_isa isas[] = {SF_IGEMM_ISA_SCALAR, SF_IGEMM_ISA_AVX2, SF_IGEMM_ISA_AVX512, SF_IGEMM_ISA_NEON};
  for (int ty = 0; ty < SF_WTYPE_COUNT; ty++)
    for (size_t k = 0; k < sizeof isas / sizeof isas[0]; k++) {
      isa = isas[k];
      wtype = (sf_wtype)ty;
      if (!sf_igemm_isa_supports_type(isa, wtype)) {
        printf("%s microkernel, %s weights: not run on this CPU/build (skipped)\n", sf_igemm_isa_name(isa),
               sf_wtype_name(wtype));
        continue;
      }
      printf("%s microkernel, %s weights: testing\n", sf_igemm_isa_name(isa), sf_wtype_name(wtype));
      const size_t n_cases = sizeof cases / sizeof cases[0];
      for (size_t i = 0; i < n_cases; i++) run_case(&cases[i], i);
      test_linear(1, 1, 1, n_cases);
      test_linear(77, 768, 320, n_cases + 1);
      test_linear(5, 37, 1000, n_cases + 2);
      test_linear(300, 64, 17, n_cases + 3);
      test_pack_pools();
    }
  CHECK(sf_igemm_isa_supported(SF_IGEMM_ISA_SCALAR));
  /* Packing for a kernel this CPU does not run must refuse. */
  for (size_t k = 0; k < sizeof isas / sizeof isas[0]; k++) {
    sf_igemm_weights pw;
    const float one = 1.0f;
    int packed = sf_igemm_pack_isa(&pw, &one, NULL, 1, 1, 1, isas[k]);
    CHECK_EQ_INT(packed, sf_igemm_isa_supported(isas[k]));
    if (packed) sf_igemm_free(&pw);
  }
  for (size_t i = 0; i < SLOTS; i++) free(scalar_bits[i]);
  for (int p = 1; p < 3; p++) pthreadpool_destroy(pools[p]);
  TEST_MAIN_END();
}
