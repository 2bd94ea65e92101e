/* The indirect GEMM's AVX-512F microkernel: 8 x 32 (16 zmm accumulators, 2 for the weight
 * row, 1 for the broadcast). Built with -mavx512f (CMakeLists.txt). */
#include "graph/ops/igemm_ukernel.h"

#if defined(__AVX512F__)
#include <immintrin.h>

#define IG_VEC __m512
#define IG_VL 16
#define IG_MR 8
#define IG_LOAD(p) _mm512_loadu_ps(p)
#define IG_STORE(p, v) _mm512_storeu_ps(p, v)
#define IG_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define IG_BCAST(s) _mm512_set1_ps(s)
#define IG_NAME ukernel_avx512_8x32
#include "graph/ops/igemm_ukernel.h"

const sf_igemm_ukernel sf_igemm_ukernel_avx512 = {ukernel_avx512_8x32, 8, 32, "avx512f"};
#else
const sf_igemm_ukernel sf_igemm_ukernel_avx512 = {NULL, 8, 32, "avx512f"};
#endif
