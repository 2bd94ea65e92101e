/* Picks the elementwise kernel set for this CPU, once (graph/ops/eltwise.h). */
#include "graph/ops/eltwise.h"

#include <cpuinfo.h>
#include <pthread.h>

const sf_eltwise_kernels *sf_eltwise_kernels_for(sf_eltwise_isa isa) {
  /* cpuinfo_initialize is idempotent and thread-safe (the context calls it too). */
  int x86 = 0, avx2 = 0, avx512 = 0;
#if defined(__x86_64__) || defined(__i386__)
  x86 = cpuinfo_initialize();
  avx2 = x86 && cpuinfo_has_x86_avx2() && cpuinfo_has_x86_fma3();
  avx512 = avx2 && cpuinfo_has_x86_avx512f();
#endif
  (void)x86;
  switch (isa) {
    case SF_ELTWISE_SCALAR: return &sf_eltwise_scalar;
    case SF_ELTWISE_AVX2: return avx2 && sf_eltwise_avx2.silu ? &sf_eltwise_avx2 : NULL;
    case SF_ELTWISE_AVX512: return avx512 && sf_eltwise_avx512.silu ? &sf_eltwise_avx512 : NULL;
    case SF_ELTWISE_BEST: break;
  }
  if (avx512 && sf_eltwise_avx512.silu) return &sf_eltwise_avx512;
  if (avx2 && sf_eltwise_avx2.silu) return &sf_eltwise_avx2;
  return &sf_eltwise_scalar;
}

static const sf_eltwise_kernels *best;
static pthread_once_t best_once = PTHREAD_ONCE_INIT;
static void pick(void) { best = sf_eltwise_kernels_for(SF_ELTWISE_BEST); }

const sf_eltwise_kernels *sf_eltwise(void) {
  pthread_once(&best_once, pick);
  return best;
}
