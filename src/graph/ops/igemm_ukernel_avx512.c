/* The indirect GEMM's AVX-512F microkernels: 8 x 32 (16 zmm accumulators, 2 for the weight
 * row, 1 for the broadcast), for f32, f16 (vcvtph2ps widens 16 halves) and int8 weights
 * (vpmovsxbd + vcvtdq2ps). Built with -mavx512f (CMakeLists.txt). */
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

#define IG_WT float
#define IG_LOADW(p) _mm512_loadu_ps(p)
#define IG_NAME ukernel_avx512_8x32_f32
#include "graph/ops/igemm_ukernel.h"

#define IG_WT uint16_t
#define IG_LOADW(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))
#define IG_NAME ukernel_avx512_8x32_f16
#include "graph/ops/igemm_ukernel.h"

#define IG_WT int8_t
#define IG_LOADW(p) _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p))))
#define IG_NAME ukernel_avx512_8x32_q8
#include "graph/ops/igemm_ukernel.h"

#define IG_EPILOGUE_NAME epilogue_avx512_8x32
#include "graph/ops/igemm_ukernel.h"

const sf_igemm_ukernel sf_igemm_ukernel_avx512 = {
    {ukernel_avx512_8x32_f32, ukernel_avx512_8x32_f16, ukernel_avx512_8x32_q8}, epilogue_avx512_8x32, 8, 32,
    "avx512f"};
#else
const sf_igemm_ukernel sf_igemm_ukernel_avx512 = {{NULL, NULL, NULL}, NULL, 8, 32, "avx512f"};
#endif
