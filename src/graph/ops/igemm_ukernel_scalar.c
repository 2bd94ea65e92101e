/* The indirect GEMM's portable microkernels, 4 x 8, for f32, f16 and int8 weights. They are the
 * reference the SIMD kernels are tested against, bit for bit: every kernel accumulates each
 * output as one chain of fused multiply-adds in the same k order, hence fmaf here (a libm call
 * where the target has no FMA instruction: slow but exact), and weights widened exactly. */
#include <math.h>

#include "graph/ops/half.h"
#include "graph/ops/igemm_ukernel.h"

enum { MR = 4, NR = 8 };

#define SCALAR_KERNEL(name, WT, WIDEN)                                                                       \
  static void name(size_t taps, size_t kc, const float *const *a, const void *bv, float *c, size_t ldc,    \
                   const float *init) {                                                                     \
    const WT *b = bv;                                                                                       \
    float acc[MR][NR];                                                                                      \
    for (int i = 0; i < MR; i++)                                                                            \
      for (int j = 0; j < NR; j++) acc[i][j] = init ? init[j] : c[(size_t)i * ldc + (size_t)j];             \
    for (size_t t = 0; t < taps; t++)                                                                       \
      for (size_t k = 0; k < kc; k++, b += NR) {                                                            \
        float bw[NR];                                                                                       \
        for (int j = 0; j < NR; j++) bw[j] = WIDEN(b[j]);                                                   \
        for (int i = 0; i < MR; i++) {                                                                      \
          const float av = a[t * MR + (size_t)i][k];                                                        \
          for (int j = 0; j < NR; j++) acc[i][j] = fmaf(av, bw[j], acc[i][j]);                              \
        }                                                                                                   \
      }                                                                                                     \
    for (int i = 0; i < MR; i++)                                                                            \
      for (int j = 0; j < NR; j++) c[(size_t)i * ldc + (size_t)j] = acc[i][j];                             \
  }

#define WIDEN_F32(x) (x)
#define WIDEN_F16(x) sf_half_to_float(x)
#define WIDEN_Q8(x) ((float)(x))
SCALAR_KERNEL(ukernel_scalar_4x8_f32, float, WIDEN_F32)
SCALAR_KERNEL(ukernel_scalar_4x8_f16, uint16_t, WIDEN_F16)
SCALAR_KERNEL(ukernel_scalar_4x8_q8, int8_t, WIDEN_Q8)

static void epilogue_scalar_4x8(float *c, size_t ldc, const float *scale, const float *bias) {
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < NR; j++) c[(size_t)i * ldc + (size_t)j] = fmaf(c[(size_t)i * ldc + (size_t)j], scale[j], bias[j]);
}

const sf_igemm_ukernel sf_igemm_ukernel_scalar = {
    {ukernel_scalar_4x8_f32, ukernel_scalar_4x8_f16, ukernel_scalar_4x8_q8}, epilogue_scalar_4x8, MR, NR, "scalar"};
