/* The indirect GEMM's microkernels, one set per instruction set, each compiled in its own file
 * with that ISA enabled (igemm_ukernel_<isa>.c) so the library picks one at run time and a
 * build for a generic x86-64 still gets the vector kernels.
 *
 * A microkernel computes c[0:MR, 0:NR] (rows ldc apart) = (init ? init[0:NR] : c) + the sum
 * over the k-block's taps t and k < kc of a[t*MR + i][k] * b[(t*kc + k)*NR + j]: MR rows of
 * NR output channels in registers, one packed weight row of NR values loaded and one input
 * value per row broadcast per k step. Each set has one such kernel per weight type: f32, f16
 * (widened in registers: exact) and int8 (converted: exact), with the same single chain of
 * fused multiply-adds per output, so for weights that f16 or int8 represent exactly they all
 * give the same bits. The int8 kernels accumulate sum(a * q); scale_bias then makes the
 * output c = fma(c, scale, bias) once, after the last k-block. */
#ifndef SF_GRAPH_OPS_IGEMM_UKERNEL_H
#define SF_GRAPH_OPS_IGEMM_UKERNEL_H

#include <stddef.h>
#include <stdint.h>

#include "graph/ops/igemm.h"

typedef void (*sf_igemm_ukernel_fn)(size_t taps, size_t kc, const float *const *a, const void *b, float *c,
                                    size_t ldc, const float *init);
/* c[0:MR, 0:NR] = fma(c, scale[0:NR], bias[0:NR]) */
typedef void (*sf_igemm_epilogue_fn)(float *c, size_t ldc, const float *scale, const float *bias);

typedef struct sf_igemm_ukernel {
  sf_igemm_ukernel_fn fn[SF_WTYPE_COUNT]; /* by sf_wtype */
  sf_igemm_epilogue_fn scale_bias;
  unsigned mr, nr;
  const char *isa;
} sf_igemm_ukernel;

enum { SF_IGEMM_MAX_MR = 8, SF_IGEMM_MAX_NR = 32 };

/* Each has NULL functions when the compiler could not build that ISA's kernels. */
extern const sf_igemm_ukernel sf_igemm_ukernel_scalar;
extern const sf_igemm_ukernel sf_igemm_ukernel_avx2;
extern const sf_igemm_ukernel sf_igemm_ukernel_avx512;
extern const sf_igemm_ukernel sf_igemm_ukernel_neon;

#endif

/* ---- template: included by igemm_ukernel_<isa>.c with IG_VEC, IG_VL, IG_MR, IG_LOAD,
 * IG_STORE, IG_FMA, IG_BCAST, IG_WT (the weight element type), IG_LOADW (IG_VL weights as a
 * vector of floats) and IG_NAME defined (outside the include guard on purpose: once per weight
 * type). */
#ifdef IG_NAME
static void IG_NAME(size_t taps, size_t kc, const float *const *a, const void *bv, float *c, size_t ldc,
                    const float *init) {
  const IG_WT *b = bv;
  IG_VEC acc[IG_MR][2];
  for (int i = 0; i < IG_MR; i++) {
    const float *src = init ? init : c + (size_t)i * ldc;
    acc[i][0] = IG_LOAD(src);
    acc[i][1] = IG_LOAD(src + IG_VL);
  }
  for (size_t t = 0; t < taps; t++) {
    const float *ar[IG_MR];
    for (int i = 0; i < IG_MR; i++) ar[i] = a[t * IG_MR + (size_t)i];
    for (size_t k = 0; k < kc; k++) {
      const IG_VEC b0 = IG_LOADW(b), b1 = IG_LOADW(b + IG_VL);
      b += 2 * IG_VL;
      for (int i = 0; i < IG_MR; i++) {
        const IG_VEC av = IG_BCAST(ar[i][k]);
        acc[i][0] = IG_FMA(av, b0, acc[i][0]);
        acc[i][1] = IG_FMA(av, b1, acc[i][1]);
      }
    }
  }
  for (int i = 0; i < IG_MR; i++) {
    IG_STORE(c + (size_t)i * ldc, acc[i][0]);
    IG_STORE(c + (size_t)i * ldc + IG_VL, acc[i][1]);
  }
}
#undef IG_NAME
#undef IG_WT
#undef IG_LOADW
#endif

#ifdef IG_EPILOGUE_NAME
static void IG_EPILOGUE_NAME(float *c, size_t ldc, const float *scale, const float *bias) {
  const IG_VEC s0 = IG_LOAD(scale), s1 = IG_LOAD(scale + IG_VL);
  const IG_VEC b0 = IG_LOAD(bias), b1 = IG_LOAD(bias + IG_VL);
  for (int i = 0; i < IG_MR; i++) {
    float *row = c + (size_t)i * ldc;
    IG_STORE(row, IG_FMA(IG_LOAD(row), s0, b0));
    IG_STORE(row + IG_VL, IG_FMA(IG_LOAD(row + IG_VL), s1, b1));
  }
}
#undef IG_EPILOGUE_NAME
#endif
