/* Machine-capability probes for the benchmarks: peak FMA throughput from registers only, and a
 * STREAM-triad memory bandwidth. Part of the CLI, not of the library. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime under -std=c11 */

#include "bench.h"

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <cpuinfo.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

static double probe_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Independent accumulators must cover FMA latency (4-5 cycles) x 2 ports, i.e. at least 10,
 * and together with the two constants fit the register file: with 32 zmm registers 16 chains
 * do; with AVX2's 16 ymm registers 16 chains spill two accumulators to the stack, and the
 * store-to-load round trip on every iteration halved the measured peak (58 instead of 100
 * GFLOP/s per core on a Zen 3 core), so AVX2 and narrower use 12.
 * The widest ISA the CPU has is chosen at run time (as the GEMM microkernels are), so a
 * build for a generic x86-64 measures the same peak as a -march=native one. */
enum { FMA_UNROLL = 8, CHAINS_AVX512 = 16, CHAINS_NARROW = 12 };

#if defined(__x86_64__) || defined(__i386__)
#define SF_PROBE_X86 1
__attribute__((target("avx512f"))) static float fma_chains_avx512(uint64_t iters) {
  __m512 acc[CHAINS_AVX512];
  for (int k = 0; k < CHAINS_AVX512; k++) acc[k] = _mm512_set1_ps(0.001f * (float)k);
  const __m512 m = _mm512_set1_ps(0.999999f), a = _mm512_set1_ps(1e-6f);
  for (uint64_t it = 0; it < iters; it++) {
    for (int u = 0; u < FMA_UNROLL; u++) {
      for (int k = 0; k < CHAINS_AVX512; k++) acc[k] = _mm512_fmadd_ps(acc[k], m, a);
    }
  }
  __m512 s = acc[0];
  for (int k = 1; k < CHAINS_AVX512; k++) s = _mm512_add_ps(s, acc[k]);
  return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static float fma_chains_avx2(uint64_t iters) {
  __m256 acc[CHAINS_NARROW];
  for (int k = 0; k < CHAINS_NARROW; k++) acc[k] = _mm256_set1_ps(0.001f * (float)k);
  const __m256 m = _mm256_set1_ps(0.999999f), a = _mm256_set1_ps(1e-6f);
  for (uint64_t it = 0; it < iters; it++) {
    for (int u = 0; u < FMA_UNROLL; u++) {
      for (int k = 0; k < CHAINS_NARROW; k++) acc[k] = _mm256_fmadd_ps(acc[k], m, a);
    }
  }
  __m256 s = acc[0];
  for (int k = 1; k < CHAINS_NARROW; k++) s = _mm256_add_ps(s, acc[k]);
  float lanes[8];
  _mm256_storeu_ps(lanes, s);
  float total = 0.0f;
  for (int i = 0; i < 8; i++) total += lanes[i];
  return total;
}
#endif

/* Portable fallback: multiply-adds on 4-wide arrays the compiler may vectorise (a multiply and an
 * add when the target has no FMA, still counted as 2 FLOPs). */
static float fma_chains_portable(uint64_t iters) {
  float acc[CHAINS_NARROW][4];
  for (int k = 0; k < CHAINS_NARROW; k++)
    for (int l = 0; l < 4; l++) acc[k][l] = 0.001f * (float)k;
  for (uint64_t it = 0; it < iters; it++) {
    for (int u = 0; u < FMA_UNROLL; u++) {
      for (int k = 0; k < CHAINS_NARROW; k++)
        for (int l = 0; l < 4; l++) acc[k][l] = acc[k][l] * 0.999999f + 1e-6f;
    }
  }
  float total = 0.0f;
  for (int k = 0; k < CHAINS_NARROW; k++)
    for (int l = 0; l < 4; l++) total += acc[k][l];
  return total;
}

struct fma_ctx {
  float (*chains)(uint64_t iters);
  double flops_per_iter;
  uint64_t iters;
  volatile float sink[64]; /* keeps the chains live; one slot per task, never read */
};

static void fma_pick(struct fma_ctx *f) {
  f->chains = fma_chains_portable;
  f->flops_per_iter = 2.0 * 4 * CHAINS_NARROW * FMA_UNROLL;
#ifdef SF_PROBE_X86
  if (cpuinfo_initialize()) {
    if (cpuinfo_has_x86_avx512f()) {
      f->chains = fma_chains_avx512;
      f->flops_per_iter = 2.0 * 16 * CHAINS_AVX512 * FMA_UNROLL;
    } else if (cpuinfo_has_x86_avx2() && cpuinfo_has_x86_fma3()) {
      f->chains = fma_chains_avx2;
      f->flops_per_iter = 2.0 * 8 * CHAINS_NARROW * FMA_UNROLL;
    }
  }
#endif
}

static void fma_task(void *arg, size_t i) {
  struct fma_ctx *f = arg;
  f->sink[i % 64] = f->chains(f->iters);
}

double bench_fma_peak_gflops(pthreadpool_t pool, double seconds) {
  if (!(seconds > 0.0)) seconds = 0.01;
  const size_t threads = pool ? pthreadpool_get_threads_count(pool) : 1;
  struct fma_ctx f = {.iters = 0};
  fma_pick(&f);

  /* Calibrate on the calling thread until a run lasts >= 1 ms, then size the timed run. */
  uint64_t iters = 1024;
  double dt = 0.0;
  for (;;) {
    f.iters = iters;
    const double t0 = probe_now();
    fma_task(&f, 0);
    dt = probe_now() - t0;
    if (dt >= 1e-3 || iters >= (UINT64_C(1) << 40)) break;
    iters *= 4;
  }
  const double per_iter = dt / (double)iters;
  double want = seconds / per_iter;
  if (want < 1.0) want = 1.0;
  f.iters = (uint64_t)want;

  const double t0 = probe_now();
  pthreadpool_parallelize_1d(pool, fma_task, &f, threads, 0);
  const double elapsed = probe_now() - t0;
  if (!(elapsed > 0.0)) return -1.0;
  return (double)threads * (double)f.iters * f.flops_per_iter / elapsed * 1e-9;
}

enum { STREAM_BLOCK = 1 << 16 }; /* floats per task */

struct stream_ctx {
  float *a;
  const float *b, *c;
  float s;
};

static void stream_init(void *arg, size_t i0, size_t count) {
  struct stream_ctx *k = arg;
  float *b = (float *)k->b, *c = (float *)k->c;
  for (size_t i = i0; i < i0 + count; i++) {
    k->a[i] = 0.0f;
    b[i] = 1.0f;
    c[i] = 2.0f;
  }
}

static void stream_triad(void *arg, size_t i0, size_t count) {
  const struct stream_ctx *k = arg;
  float *restrict a = k->a + i0;
  const float *restrict b = k->b + i0, *restrict c = k->c + i0;
  const float s = k->s;
  for (size_t i = 0; i < count; i++) a[i] = b[i] + s * c[i];
}

double bench_stream_bandwidth_gbs(pthreadpool_t pool, size_t bytes, double seconds) {
  size_t count = bytes / sizeof(float);
  if (count < 1024) count = 1024;
  const size_t alloc = (count * sizeof(float) + 63) / 64 * 64;
  float *a = aligned_alloc(64, alloc), *b = aligned_alloc(64, alloc), *c = aligned_alloc(64, alloc);
  if (!a || !b || !c) {
    free(a);
    free(b);
    free(c);
    return -1.0;
  }
  struct stream_ctx k = {a, b, c, 3.0f};
  /* First touch from the workers places pages near the threads that stream them. */
  pthreadpool_parallelize_1d_tile_1d(pool, stream_init, &k, count, STREAM_BLOCK, 0);

  double best = 0.0;
  const double start = probe_now();
  for (int rep = 0;; rep++) {
    const double t0 = probe_now();
    pthreadpool_parallelize_1d_tile_1d(pool, stream_triad, &k, count, STREAM_BLOCK, 0);
    const double dt = probe_now() - t0;
    if (dt > 0.0) {
      const double gbs = 3.0 * (double)count * sizeof(float) / dt * 1e-9;
      if (gbs > best) best = gbs;
    }
    if (rep >= 2 && probe_now() - start >= seconds) break;
  }
  free(a);
  free(b);
  free(c);
  return best > 0.0 ? best : -1.0;
}
