/* The elementwise kernels built with -mavx512f (and AVX2/FMA, CMakeLists.txt): the template's
 * loops vectorise 16 wide; the same operations, the same bits. */
#include "graph/ops/vmath.h"

#if defined(__AVX512F__) && defined(__AVX2__) && defined(__FMA__)
#define EW_NAME(x) ew_avx512_##x
#include "graph/ops/eltwise.h"

const sf_eltwise_kernels sf_eltwise_avx512 = {ew_avx512_silu,      ew_avx512_gelu_erf,  ew_avx512_quick_gelu,
                                              ew_avx512_geglu_row, ew_avx512_norm_rows, "avx512f"};
#else
#include "graph/ops/eltwise.h"
const sf_eltwise_kernels sf_eltwise_avx512 = {NULL, NULL, NULL, NULL, NULL, "avx512f"};
#endif
