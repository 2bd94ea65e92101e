/* Weight sources (graph/wsrc.h) fill tensors on a thread pool with exactly the values of one
 * sequential pass: seeded random tensors equal the original sequential splitmix64 stream
 * (reimplemented here) bit for bit, and checkpoint tensors of every float dtype equal
 * sf_st_to_f32, with no pool, 2 and 4 threads, for sizes below and above the parallel
 * threshold, odd and even. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pthreadpool.h>

#include "graph/wsrc.h"
#include "io/model_folder.h"
#include "io/safetensors.h"
#include "test.h"

/* The generator as it was written before the fills were split into parts: one stream per
 * tensor name, consumed in order. */
static uint64_t ref_splitmix64(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static uint64_t ref_fnv1a(const char *s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
  return h;
}

static void ref_fill_random(float *out, uint64_t n, uint64_t seed, const char *name, sf_init init, size_t fan_in) {
  if (init == SF_INIT_ONES || init == SF_INIT_ZEROS) {
    float v = init == SF_INIT_ONES ? 1.0f : 0.0f;
    for (uint64_t i = 0; i < n; i++) out[i] = v;
    return;
  }
  float bound = 1.0f / sqrtf((float)(fan_in ? fan_in : 1));
  uint64_t s = seed ^ ref_fnv1a(name);
  for (uint64_t i = 0; i < n; i += 2) {
    uint64_t r = ref_splitmix64(&s);
    out[i] = bound * ((float)(r >> 40) * (1.0f / 8388608.0f) - 1.0f);
    if (i + 1 < n) out[i + 1] = bound * ((float)((r >> 8) & 0xFFFFFF) * (1.0f / 8388608.0f) - 1.0f);
  }
}

static pthreadpool_t pools[3]; /* [0] = NULL: the calling thread; 2 and 4 threads */

static void test_random(void) {
  static const int64_t sizes[] = {1, 2, 7, 1000, 131071, 131072, 131073, 300001, 1 << 20};
  static const sf_init inits[] = {SF_INIT_FAN_IN, SF_INIT_ONES, SF_INIT_ZEROS};
  for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
    for (size_t ii = 0; ii < 3; ii++) {
      const int64_t n = sizes[si];
      char name[64];
      snprintf(name, sizeof name, "layer%zu.weight", si);
      float *ref = malloc((size_t)n * sizeof *ref);
      CHECK(ref != NULL);
      if (ref == NULL) return;
      ref_fill_random(ref, (uint64_t)n, 42, name, inits[ii], 3 * (size_t)si + 1);
      for (int p = 0; p < 3; p++) {
        sf_wsrc *ws = sf_wsrc_random(42, "t");
        CHECK(ws != NULL);
        if (ws == NULL) continue;
        sf_wsrc_set_pool(ws, pools[p]);
        CHECK(sf_wsrc_pool(ws) == pools[p]);
        float *got = sf_wsrc_fetch(ws, name, 1, &n, inits[ii], 3 * (size_t)si + 1);
        CHECK_MSG(got != NULL && memcmp(got, ref, (size_t)n * sizeof *ref) == 0,
                  "random %lld values (init %d), pool %d: differ from the sequential stream", (long long)n,
                  (int)inits[ii], p);
        free(got);
        /* fetch_into an offset destination (a fused q/k/v part) gives the same values */
        float *dst = malloc(((size_t)n + 3) * sizeof *dst);
        CHECK(dst != NULL);
        if (dst != NULL) {
          CHECK(sf_wsrc_fetch_into(ws, name, 1, &n, inits[ii], 3 * (size_t)si + 1, dst + 3));
          CHECK(memcmp(dst + 3, ref, (size_t)n * sizeof *ref) == 0);
        }
        free(dst);
        CHECK_EQ_INT(sf_wsrc_param_count(ws), 2 * n);
        sf_wsrc_destroy(ws);
      }
      free(ref);
    }
}

/* A safetensors file with one tensor of each float dtype, sizes above the threshold and odd. */
typedef struct st_tensor_spec {
  const char *name, *dtype;
  size_t n, es;
} st_tensor_spec;

static const st_tensor_spec specs[] = {
    {"a", "F16", 420601, 2}, {"b", "BF16", 333333, 2}, {"c", "F64", 140001, 8}, {"d", "F32", 200001, 4},
    {"e", "F16", 5, 2},
};
enum { N_SPECS = sizeof specs / sizeof specs[0] };

static int write_st(const char *path) {
  char header[1024];
  size_t off = 0, hl = 0;
  hl += (size_t)snprintf(header + hl, sizeof header - hl, "{");
  for (size_t i = 0; i < N_SPECS; i++) {
    hl += (size_t)snprintf(header + hl, sizeof header - hl,
                           "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[%zu],\"data_offsets\":[%zu,%zu]}", i ? "," : "",
                           specs[i].name, specs[i].dtype, specs[i].n, off, off + specs[i].n * specs[i].es);
    off += specs[i].n * specs[i].es;
  }
  hl += (size_t)snprintf(header + hl, sizeof header - hl, "}");
  while (hl % 8) header[hl++] = ' ';
  unsigned char *data = malloc(off);
  if (data == NULL) return 0;
  uint32_t s = 12345;
  for (size_t i = 0; i < off; i++) {
    s = s * 1664525u + 1013904223u;
    data[i] = (unsigned char)(s >> 24);
  }
  /* keep the F64 values finite and in float range now and then out of it */
  size_t c_off = (specs[0].n + specs[1].n) * 2;
  for (size_t i = 0; i < specs[2].n; i++) {
    double v = (double)((int)(i % 2001) - 1000) * (i % 7 == 0 ? 1e39 : 0.001);
    memcpy(data + c_off + 8 * i, &v, 8);
  }
  FILE *f = fopen(path, "wb");
  int ok = f != NULL;
  unsigned char len[8];
  for (int i = 0; i < 8; i++) len[i] = (unsigned char)(((uint64_t)hl >> (8 * i)) & 0xFF);
  ok = ok && fwrite(len, 1, 8, f) == 8 && fwrite(header, 1, hl, f) == hl && fwrite(data, 1, off, f) == off;
  if (f && fclose(f) != 0) ok = 0;
  free(data);
  return ok;
}

static void test_checkpoint(void) {
  char path[] = "/tmp/sf_test_wsrc_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  if (fd < 0) return;
  close(fd);
  CHECK(write_st(path));
  sf_diag d = {0};
  sf_weights *w = sf_weights_open_file(path, &d);
  CHECK_MSG(w != NULL, "%s", d.msg);
  for (size_t i = 0; w != NULL && i < N_SPECS; i++) {
    const sf_st_tensor *t = sf_weights_find(w, specs[i].name);
    CHECK(t != NULL);
    if (t == NULL) continue;
    float *ref = malloc(specs[i].n * sizeof *ref);
    CHECK(ref != NULL);
    if (ref == NULL) continue;
    sf_st_to_f32(t, ref);
    const int64_t shape[1] = {(int64_t)specs[i].n};
    for (int p = 0; p < 3; p++) {
      sf_wsrc *ws = sf_wsrc_from_weights(w, "t");
      CHECK(ws != NULL);
      if (ws == NULL) continue;
      sf_wsrc_set_pool(ws, pools[p]);
      float *got = sf_wsrc_fetch(ws, specs[i].name, 1, shape, SF_INIT_FAN_IN, 1);
      CHECK_MSG(got != NULL && memcmp(got, ref, specs[i].n * sizeof *ref) == 0,
                "%s tensor of %zu values, pool %d: differs from sf_st_to_f32", specs[i].dtype, specs[i].n, p);
      free(got);
      sf_diag e = {0};
      CHECK(sf_wsrc_status(ws, 0, &e) == SF_OK);
      sf_wsrc_destroy(ws);
    }
    /* parts convert independently */
    float *part = malloc(specs[i].n * sizeof *part);
    if (part != NULL) {
      size_t mid = specs[i].n / 3;
      sf_st_to_f32_range(t, part, mid, specs[i].n);
      sf_st_to_f32_range(t, part, 0, mid);
      CHECK(memcmp(part, ref, specs[i].n * sizeof *ref) == 0);
    }
    free(part);
    free(ref);
  }
  sf_weights_close(w);
  remove(path);
}

int main(void) {
  pools[1] = pthreadpool_create(2);
  pools[2] = pthreadpool_create(4);
  CHECK(pools[1] != NULL && pools[2] != NULL);
  test_random();
  test_checkpoint();
  for (int p = 1; p < 3; p++) pthreadpool_destroy(pools[p]);
  TEST_MAIN_END();
}
