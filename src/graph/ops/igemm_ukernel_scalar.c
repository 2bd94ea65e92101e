/* The indirect GEMM's portable microkernel, 4 x 8 on plain floats (GCC vectorises the j
 * loops for whatever the target has). The reference the SIMD kernels are tested against
 * and the kernel for CPUs without them when a graph asks for the own GEMM anyway. */
#include "graph/ops/igemm_ukernel.h"

enum { MR = 4, NR = 8 };

static void ukernel_scalar_4x8(size_t taps, size_t kc, const float *const *a, const float *b, float *c, size_t ldc,
                               const float *init) {
  float acc[MR][NR];
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < NR; j++) acc[i][j] = init ? init[j] : c[(size_t)i * ldc + (size_t)j];
  for (size_t t = 0; t < taps; t++)
    for (size_t k = 0; k < kc; k++, b += NR)
      for (int i = 0; i < MR; i++) {
        const float av = a[t * MR + (size_t)i][k];
        for (int j = 0; j < NR; j++) acc[i][j] += av * b[j];
      }
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < NR; j++) c[(size_t)i * ldc + (size_t)j] = acc[i][j];
}

const sf_igemm_ukernel sf_igemm_ukernel_scalar = {ukernel_scalar_4x8, MR, NR, "scalar"};
