/* The indirect GEMM's AVX2+FMA microkernels: 6 x 16 (12 ymm accumulators, 2 for the weight
 * row, 1 for the broadcast; 15 of 16 registers), for f32, f16 (F16C's vcvtph2ps widens 8
 * halves) and int8 weights (vpmovsxbd + vcvtdq2ps). Built with -mavx2 -mfma -mf16c
 * (CMakeLists.txt). */
#include "graph/ops/igemm_ukernel.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#include <immintrin.h>

#define IG_VEC __m256
#define IG_VL 8
#define IG_MR 6
#define IG_LOAD(p) _mm256_loadu_ps(p)
#define IG_STORE(p, v) _mm256_storeu_ps(p, v)
#define IG_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define IG_BCAST(s) _mm256_set1_ps(s)

#define IG_WT float
#define IG_LOADW(p) _mm256_loadu_ps(p)
#define IG_NAME ukernel_avx2_6x16_f32
#include "graph/ops/igemm_ukernel.h"

#define IG_WT uint16_t
#define IG_LOADW(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
#define IG_NAME ukernel_avx2_6x16_f16
#include "graph/ops/igemm_ukernel.h"

#define IG_WT int8_t
#define IG_LOADW(p) _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(p))))
#define IG_NAME ukernel_avx2_6x16_q8
#include "graph/ops/igemm_ukernel.h"

#define IG_EPILOGUE_NAME epilogue_avx2_6x16
#include "graph/ops/igemm_ukernel.h"

const sf_igemm_ukernel sf_igemm_ukernel_avx2 = {
    {ukernel_avx2_6x16_f32, ukernel_avx2_6x16_f16, ukernel_avx2_6x16_q8}, epilogue_avx2_6x16, 6, 16, "avx2+fma"};
#else
const sf_igemm_ukernel sf_igemm_ukernel_avx2 = {{NULL, NULL, NULL}, NULL, 6, 16, "avx2+fma"};
#endif
