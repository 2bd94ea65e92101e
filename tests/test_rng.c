/* torch CPU generator port vs every generator case (every seed, every output, both
 * kernels, bit-exact) and vs the seeded pipelines' recorded draws. */
#include <stdint.h>

#include "io/json.h"
#include "io/safetensors.h"
#include "sched/torch_rng.h"
#include "test.h"

static char set_dir[4200];

static sf_json_doc *open_manifest(const char *fx) {
  char path[4400];
  sf_diag d = {0};
  snprintf(set_dir, sizeof set_dir, "%s/public", fx);
  snprintf(path, sizeof path, "%s/manifest.json", set_dir);
  /* the manifest carries diffusers' -Infinity (lambda_min_clipped) */
  sf_json_doc *doc = sf_json_parse_file_ex(path, NULL, 64u << 20, SF_JSON_ALLOW_NONFINITE, &d);
  if (doc == NULL) fprintf(stderr, "manifest: %s\n", d.msg);
  return doc;
}

static sf_safetensors *open_case(const sf_json *c) {
  char path[4400];
  sf_diag d = {0};
  snprintf(path, sizeof path, "%s/%s", set_dir, sf_json_as_string(sf_json_get(c, "file")));
  sf_safetensors *st = sf_st_open(path, &d);
  if (st == NULL) fprintf(stderr, "%s\n", d.msg);
  return st;
}

static double tol_atol(const sf_json *c, const char *name) {
  double a = -1;
  if (!sf_json_as_double(sf_json_get(sf_json_get(sf_json_get(c, "tolerance"), name), "atol"), &a)) {
    fprintf(stderr, "no tolerance for %s\n", name);
    return -1;
  }
  return a;
}

/* Compares float32 values: number of bit differences and whether all are within atol. */
static void compare_f32(const char *what, const float *got, const sf_st_tensor *ref, double atol,
                        int expect_exact) {
  size_t n = (size_t)ref->numel;
  size_t ndiff = 0, nbad = 0, nonfinite = 0;
  double maxd = 0;
  for (size_t i = 0; i < n; i++) {
    float r;
    memcpy(&r, (const char *)ref->data + 4 * i, 4);
    if (memcmp(&r, &got[i], 4) != 0) ndiff++;
    double e = fabs((double)got[i] - (double)r);
    if (!(e <= atol)) nbad++;
    if (!isfinite(got[i]) || !isfinite(r)) nonfinite++; /* counted, and out of the max */
    else if (e > maxd) maxd = e;
  }
  printf("  %-40s n=%-6zu bit-diffs=%-5zu max|d|=%.3g atol=%.3g%s\n", what, n, ndiff, maxd, atol,
         expect_exact ? " (must be exact)" : "");
  CHECK_MSG(nonfinite == 0, "%s: %zu non-finite values", what, nonfinite);
  CHECK_MSG(nbad == 0, "%s: %zu values beyond atol %g (max %g)", what, nbad, atol, maxd);
  if (expect_exact) CHECK_MSG(ndiff == 0, "%s: %zu values not bit-identical", what, ndiff);
}

static size_t shape_numel(const sf_st_tensor *t) { return (size_t)t->numel; }

static void test_generator_case(const sf_json *c) {
  const char *name = sf_json_as_string(sf_json_get(c, "name"));
  uint64_t seed = 0;
  CHECK(sf_json_as_u64(sf_json_get(sf_json_get(c, "params"), "seed_as_uint64"), &seed));
  printf("%s (seed %llu)\n", name, (unsigned long long)seed);
  sf_safetensors *st = open_case(c);
  CHECK(st != NULL);
  if (st == NULL) return;
  const sf_json *outs = sf_json_get(c, "outputs");
  int checked = 0;
  for (size_t k = 0; k < outs->len; k++) {
    const char *out = outs->u.obj.keys[k];
    char key[256];
    snprintf(key, sizeof key, "out.%s", out);
    const sf_st_tensor *t = sf_st_find(st, key);
    CHECK_MSG(t != NULL, "%s lacks %s", name, key);
    if (t == NULL) continue;
    size_t n = shape_numel(t);
    size_t len = strlen(out);
    int scalar = len > 7 && strcmp(out + len - 7, "_scalar") == 0;
    double atol = tol_atol(c, out);
    CHECK(atol >= 0);
    sf_torch_rng g;
    sf_torch_rng_seed(&g, seed);
    if (strcmp(out, "mt19937_raw_u32") == 0) {
      int64_t ref[16];
      CHECK(n == 16 && sf_st_to_i64(t, ref) == 0);
      int bad = 0;
      for (int i = 0; i < 16; i++) bad += (int64_t)sf_torch_rng_u32(&g) != ref[i];
      CHECK_MSG(bad == 0, "%s: %d raw words differ", name, bad);
      printf("  %-40s %d/16 differ\n", out, bad);
      checked++;
    } else if (strncmp(out, "randn_f64_", 10) == 0) {
      CHECK(t->dtype == SF_DTYPE_F64);
      double *got = malloc(n * sizeof *got);
      sf_torch_randn_f64(&g, got, n);
      size_t ndiff = 0;
      for (size_t i = 0; i < n; i++) {
        double r;
        memcpy(&r, (const char *)t->data + 8 * i, 8);
        ndiff += memcmp(&r, &got[i], 8) != 0;
      }
      printf("  %-40s n=%-6zu bit-diffs=%zu (must be exact)\n", out, n, ndiff);
      CHECK_MSG(ndiff == 0, "%s %s: %zu differ", name, out, ndiff);
      free(got);
      checked++;
    } else if (strncmp(out, "randn_", 6) == 0 || strncmp(out, "rand_", 5) == 0) {
      CHECK(t->dtype == SF_DTYPE_F32);
      float *got = malloc(n * sizeof *got);
      int is_rand = strncmp(out, "rand_", 5) == 0;
      if (is_rand)
        sf_torch_rand_f32(&g, got, n);
      else
        sf_torch_randn_f32(&g, got, n, scalar ? SF_RNG_KERNEL_SCALAR : SF_RNG_KERNEL_AVX2);
      char what[300];
      snprintf(what, sizeof what, "%s (%s kernel)", out, scalar ? "scalar" : "avx2");
      compare_f32(what, got, t, atol, 1);
      /* the other kernel must still be within the manifest's tolerance of this reference */
      if (!is_rand) {
        sf_torch_rng_seed(&g, seed);
        sf_torch_randn_f32(&g, got, n, scalar ? SF_RNG_KERNEL_AVX2 : SF_RNG_KERNEL_SCALAR);
        snprintf(what, sizeof what, "%s (other kernel, tolerance)", out);
        compare_f32(what, got, t, atol, atol == 0.0);
      }
      free(got);
      checked++;
    } else {
      CHECK_MSG(0, "unexpected output %s", out);
    }
  }
  CHECK(checked >= 10);
  sf_st_close(st);
}

/* The draws of the seeded pipelines, in call order from one generator. */
static void test_seeded_pipeline_draws(const sf_json *c) {
  const char *name = sf_json_as_string(sf_json_get(c, "name"));
  sf_safetensors *st = open_case(c);
  CHECK(st != NULL);
  if (st == NULL) return;
  const sf_st_tensor *seed_t = sf_st_find(st, "in.seed");
  int64_t seed = 0;
  CHECK(seed_t != NULL && sf_st_to_i64(seed_t, &seed) == 0);
  const sf_json *draws = sf_json_get(sf_json_get(c, "params"), "generator_draws");
  CHECK(draws != NULL && draws->len > 0);
  for (int kernel = 0; kernel < 2; kernel++) {
    const char *key = kernel ? "mid.generator_draws_scalar" : "mid.generator_draws";
    const sf_st_tensor *ref = sf_st_find(st, key);
    CHECK_MSG(ref != NULL, "%s lacks %s", name, key);
    if (ref == NULL || draws == NULL) continue;
    size_t total = (size_t)ref->numel, off = 0;
    float *got = malloc(total * sizeof *got);
    sf_torch_rng g;
    sf_torch_rng_seed(&g, (uint64_t)seed);
    for (size_t i = 0; i < draws->len; i++) {
      const sf_json *shape = sf_json_get(sf_json_at(draws, i), "shape");
      size_t n = 1;
      for (size_t j = 0; j < shape->len; j++) {
        int64_t v = 0;
        sf_json_as_i64(sf_json_at(shape, j), &v);
        n *= (size_t)v;
      }
      CHECK(off + n <= total);
      if (off + n > total) break;
      sf_torch_randn_f32(&g, got + off, n, kernel ? SF_RNG_KERNEL_SCALAR : SF_RNG_KERNEL_AVX2);
      off += n;
    }
    CHECK(off == total);
    char what[300];
    snprintf(what, sizeof what, "%s %s", name + 9, key + 4);
    compare_f32(what, got, ref, tol_atol(c, "generator_draws"), 1);
    free(got);
  }
  sf_st_close(st);
}

/* torch semantics that need no fixture values. */
static void test_properties(void) {
  sf_torch_rng a, b;
  /* only the low 32 bits of the seed reach mt19937 */
  sf_torch_rng_seed(&a, 7);
  sf_torch_rng_seed(&b, (UINT64_C(1) << 32) + 7);
  int same = 1;
  for (int i = 0; i < 1000; i++) same &= sf_torch_rng_u32(&a) == sf_torch_rng_u32(&b);
  CHECK(same);
  /* the small path caches the second Box-Muller value across calls: randn(15)+randn(1)
   * equals 16 single draws, and differs from the blockwise randn(16) */
  float x[16], y[16], z[16];
  sf_torch_rng_seed(&a, 123);
  sf_torch_randn_f32(&a, x, 15, SF_RNG_KERNEL_AVX2);
  sf_torch_randn_f32(&a, x + 15, 1, SF_RNG_KERNEL_AVX2);
  sf_torch_rng_seed(&b, 123);
  for (int i = 0; i < 16; i++) sf_torch_randn_f32(&b, y + i, 1, SF_RNG_KERNEL_AVX2);
  CHECK(memcmp(x, y, sizeof x) == 0);
  sf_torch_rng_seed(&b, 123);
  sf_torch_randn_f32(&b, z, 16, SF_RNG_KERNEL_AVX2);
  CHECK(memcmp(x, z, sizeof x) != 0);
  /* reseeding clears the cache */
  sf_torch_rng_seed(&a, 5);
  sf_torch_randn_f32(&a, x, 1, SF_RNG_KERNEL_AVX2);
  sf_torch_rng_seed(&a, 5);
  sf_torch_randn_f32(&a, y, 1, SF_RNG_KERNEL_AVX2);
  CHECK(x[0] == y[0]);
  /* big draws are finite with mean ~0 and variance ~1 */
  enum { N = 1 << 16 };
  float *v = malloc(N * sizeof *v);
  sf_torch_rng_seed(&a, 99);
  sf_torch_randn_f32(&a, v, N - 3, SF_RNG_KERNEL_AVX2);
  double s = 0, s2 = 0;
  int finite = 1;
  for (int i = 0; i < N - 3; i++) {
    finite &= isfinite(v[i]) != 0;
    s += v[i];
    s2 += (double)v[i] * v[i];
  }
  s /= N - 3;
  s2 /= N - 3;
  CHECK(finite);
  CHECK(fabs(s) < 0.02 && fabs(s2 - 1.0) < 0.03);
  free(v);
}

int main(void) {
  test_properties();
  const char *fx = sf_test_fixtures();
  if (fx == NULL) return TEST_SKIP_EXIT_CODE;
  sf_json_doc *doc = open_manifest(fx);
  CHECK(doc != NULL);
  if (doc == NULL) TEST_MAIN_END();
  const sf_json *cases = sf_json_get(sf_json_root(doc), "cases");
  int n_gen = 0, n_seeded = 0;
  for (size_t i = 0; i < cases->len; i++) {
    const sf_json *c = sf_json_at(cases, i);
    const char *comp = sf_json_as_string(sf_json_get(c, "component"));
    const char *name = sf_json_as_string(sf_json_get(c, "name"));
    if (comp && strcmp(comp, "generator") == 0) {
      test_generator_case(c);
      n_gen++;
    } else if (name && strncmp(name, "pipeline/", 9) == 0 &&
               sf_json_get(sf_json_get(c, "params"), "generator_draws") != NULL) {
      test_seeded_pipeline_draws(c);
      n_seeded++;
    }
  }
  printf("%d generator cases, %d seeded pipelines\n", n_gen, n_seeded);
  CHECK(n_gen >= 1);
  CHECK(n_seeded >= 1);
  sf_json_free(doc);
  TEST_MAIN_END();
}
