/* The indirect GEMM's portable microkernel, 4 x 8 on plain floats. It is the reference the
 * SIMD kernels are tested against, bit for bit: every kernel accumulates each output as one
 * chain of fused multiply-adds in the same k order, hence fmaf here (a libm call where the
 * target has no FMA instruction: slow but exact; the graph then uses XNNPACK instead). */
#include <math.h>

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
        for (int j = 0; j < NR; j++) acc[i][j] = fmaf(av, b[j], acc[i][j]);
      }
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < NR; j++) c[(size_t)i * ldc + (size_t)j] = acc[i][j];
}

const sf_igemm_ukernel sf_igemm_ukernel_scalar = {ukernel_scalar_4x8, MR, NR, "scalar"};
