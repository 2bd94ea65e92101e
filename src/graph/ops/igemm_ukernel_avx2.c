/* The indirect GEMM's AVX2+FMA microkernel: 6 x 16 (12 ymm accumulators, 2 for the weight
 * row, 1 for the broadcast; 15 of 16 registers). Built with -mavx2 -mfma (CMakeLists.txt). */
#include "graph/ops/igemm_ukernel.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

#define IG_VEC __m256
#define IG_VL 8
#define IG_MR 6
#define IG_LOAD(p) _mm256_loadu_ps(p)
#define IG_STORE(p, v) _mm256_storeu_ps(p, v)
#define IG_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define IG_BCAST(s) _mm256_set1_ps(s)
#define IG_NAME ukernel_avx2_6x16
#include "graph/ops/igemm_ukernel.h"

const sf_igemm_ukernel sf_igemm_ukernel_avx2 = {ukernel_avx2_6x16, 6, 16, "avx2+fma"};
#else
const sf_igemm_ukernel sf_igemm_ukernel_avx2 = {NULL, 6, 16, "avx2+fma"};
#endif
