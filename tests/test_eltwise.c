/* The per-ISA elementwise kernels (graph/ops/eltwise.h): every set this CPU runs must give
 * exactly the scalar set's bits, in place and out of place, on values across the float range
 * (zeros, subnormals, huge values, infinities, NaN) and on odd lengths that exercise the
 * vector loops' tails. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/ops/eltwise.h"
#include "test.h"

static float from_bits(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

/* Equal bits, or both NaN (a NaN's payload is not part of the contract). */
static size_t count_diff(const float *a, const float *b, size_t n) {
  size_t bad = 0;
  for (size_t i = 0; i < n; i++) {
    if (isnan(a[i]) && isnan(b[i])) continue;
    bad += memcmp(&a[i], &b[i], sizeof(float)) != 0;
  }
  return bad;
}

static void fill(float *x, size_t n, uint32_t seed) {
  static const float special[] = {0.0f, -0.0f, 1e-45f, -1e-45f, 1e-38f, 1.0f, -1.0f, 3.99f, 4.01f, -9.0f,
                                  88.0f, -88.0f, 89.5f, -104.5f, 1e30f, -1e30f, INFINITY, -INFINITY, NAN};
  uint32_t s = seed;
  for (size_t i = 0; i < n; i++) {
    s = s * 1664525u + 1013904223u;
    if (i < sizeof special / sizeof special[0]) x[i] = special[i];
    else if (i % 3 == 0) x[i] = from_bits(s); /* any bit pattern */
    else x[i] = ((float)(s >> 8) / 16777216.0f - 0.5f) * 24.0f; /* the range activations live in */
  }
}

typedef void (*unary_fn)(const float *, float *, size_t);

static void check_unary(const char *isa, const char *op, unary_fn ref, unary_fn fn, const float *x, size_t n) {
  float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
  ref(x, a, n);
  fn(x, b, n);
  memcpy(c, x, n * sizeof *c);
  fn(c, c, n); /* in place */
  size_t bad = count_diff(a, b, n), bad_in_place = count_diff(a, c, n);
  CHECK_MSG(bad == 0, "%s %s: %zu of %zu values differ from the scalar kernel", isa, op, bad, n);
  CHECK_MSG(bad_in_place == 0, "%s %s in place: %zu of %zu values differ", isa, op, bad_in_place, n);
  size_t finite_in = 0, nonfinite_out = 0;
  for (size_t i = 0; i < n; i++)
    if (isfinite(x[i]) && fabsf(x[i]) < 50.0f) {
      finite_in++;
      nonfinite_out += !isfinite(a[i]);
    }
  CHECK_MSG(finite_in > 0 && nonfinite_out == 0, "%s %s: %zu non-finite outputs for moderate inputs", isa, op,
            nonfinite_out);
  free(a);
  free(b);
  free(c);
}

int main(void) {
  const sf_eltwise_kernels *ref = sf_eltwise_kernels_for(SF_ELTWISE_SCALAR);
  CHECK(ref != NULL && ref->silu != NULL);
  const sf_eltwise_isa isas[] = {SF_ELTWISE_AVX2, SF_ELTWISE_AVX512};
  size_t lengths[] = {1, 7, 9, 31, 100003};
  size_t nmax = 100003;
  float *x = malloc(nmax * sizeof *x);
  fill(x, nmax, 12345);
  /* A sanity anchor for the scalar kernels themselves: values from libm in double. */
  float y[3];
  const float xs[3] = {-2.0f, 0.5f, 3.0f};
  ref->silu(xs, y, 3);
  for (int i = 0; i < 3; i++) {
    double want = xs[i] / (1.0 + exp(-(double)xs[i]));
    CHECK_MSG(fabs(y[i] - want) <= 4e-7 * fabs(want), "scalar silu(%g) = %.9g, want %.9g", xs[i], y[i], want);
  }
  ref->gelu_erf(xs, y, 3);
  for (int i = 0; i < 3; i++) {
    double want = 0.5 * xs[i] * (1.0 + erf(xs[i] / sqrt(2.0)));
    CHECK_MSG(fabs(y[i] - want) <= 4e-7 * fabs(want), "scalar gelu(%g) = %.9g, want %.9g", xs[i], y[i], want);
  }
  int ran = 0;
  for (size_t k = 0; k < sizeof isas / sizeof isas[0]; k++) {
    const sf_eltwise_kernels *ks = sf_eltwise_kernels_for(isas[k]);
    if (ks == NULL) {
      printf("eltwise %d: not on this CPU/build, skipped\n", (int)isas[k]);
      continue;
    }
    ran++;
    for (size_t li = 0; li < sizeof lengths / sizeof lengths[0]; li++) {
      size_t n = lengths[li];
      check_unary(ks->isa, "silu", ref->silu, ks->silu, x, n);
      check_unary(ks->isa, "gelu_erf", ref->gelu_erf, ks->gelu_erf, x, n);
      check_unary(ks->isa, "quick_gelu", ref->quick_gelu, ks->quick_gelu, x, n);
    }
    /* GEGLU rows and the group-norm apply, on channel counts with and without vector tails. */
    const size_t cs[] = {3, 8, 37, 320};
    for (size_t ci = 0; ci < sizeof cs / sizeof cs[0]; ci++) {
      size_t c = cs[ci], rows = 5;
      float *a = malloc(rows * c * sizeof *a), *b = malloc(rows * c * sizeof *b);
      const float *mean = x + 1000, *scale = x + 2000, *bias = x + 3000;
      for (int silu = 0; silu < 2; silu++) {
        ref->norm_rows(x + 5000, a, rows, c, mean, scale, bias, silu);
        ks->norm_rows(x + 5000, b, rows, c, mean, scale, bias, silu);
        CHECK_MSG(count_diff(a, b, rows * c) == 0, "%s norm_rows c=%zu silu=%d differs", ks->isa, c, silu);
        memcpy(b, x + 5000, rows * c * sizeof *b);
        ks->norm_rows(b, b, rows, c, mean, scale, bias, silu);
        CHECK_MSG(count_diff(a, b, rows * c) == 0, "%s norm_rows in place c=%zu differs", ks->isa, c);
      }
      ref->geglu_row(x + 7000, x + 9000, a, c);
      ks->geglu_row(x + 7000, x + 9000, b, c);
      CHECK_MSG(count_diff(a, b, c) == 0, "%s geglu_row c=%zu differs", ks->isa, c);
      free(a);
      free(b);
    }
    printf("eltwise %s: same bits as the scalar kernels\n", ks->isa);
  }
  printf("best set here: %s (%d SIMD set%s tested)\n", sf_eltwise()->isa, ran, ran == 1 ? "" : "s");
  free(x);
  TEST_MAIN_END();
}
