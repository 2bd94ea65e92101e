/* The indirect GEMM's microkernels, one per instruction set, each compiled in its own file
 * with that ISA enabled (igemm_ukernel_<isa>.c) so the library picks one at run time and a
 * build for a generic x86-64 still gets the vector kernels.
 *
 * A microkernel computes c[0:MR, 0:NR] (rows ldc apart) = (init ? init[0:NR] : c) + the sum
 * over the k-block's taps t and k < kc of a[t*MR + i][k] * b[(t*kc + k)*NR + j]: MR rows of
 * NR output channels in registers, one packed weight row of NR floats loaded and one input
 * value per row broadcast per k step. */
#ifndef SF_GRAPH_OPS_IGEMM_UKERNEL_H
#define SF_GRAPH_OPS_IGEMM_UKERNEL_H

#include <stddef.h>

typedef void (*sf_igemm_ukernel_fn)(size_t taps, size_t kc, const float *const *a, const float *b, float *c,
                                    size_t ldc, const float *init);

typedef struct sf_igemm_ukernel {
  sf_igemm_ukernel_fn fn;
  unsigned mr, nr;
  const char *isa;
} sf_igemm_ukernel;

enum { SF_IGEMM_MAX_MR = 8, SF_IGEMM_MAX_NR = 32 };

/* Each is {NULL, ...} when the compiler could not build that ISA's kernel. */
extern const sf_igemm_ukernel sf_igemm_ukernel_scalar;
extern const sf_igemm_ukernel sf_igemm_ukernel_avx2;
extern const sf_igemm_ukernel sf_igemm_ukernel_avx512;

#endif

/* ---- template: included by igemm_ukernel_<isa>.c with IG_VEC, IG_VL, IG_MR, IG_LOAD,
 * IG_STORE, IG_FMA, IG_BCAST and IG_NAME defined (outside the include guard on purpose). */
#ifdef IG_NAME
static void IG_NAME(size_t taps, size_t kc, const float *const *a, const float *b, float *c, size_t ldc,
                    const float *init) {
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
      const IG_VEC b0 = IG_LOAD(b), b1 = IG_LOAD(b + IG_VL);
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
#endif
