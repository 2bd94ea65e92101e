/* The elementwise kernels built with -mavx2 -mfma (CMakeLists.txt): the template's loops
 * vectorise with fused multiply-adds, SiLU's exp runs as intrinsics (same bits). */
#include "graph/ops/vmath.h"

#if defined(__AVX2__) && defined(__FMA__)
#define EW_NAME(x) ew_avx2_##x
#include "graph/ops/eltwise.h"

const sf_eltwise_kernels sf_eltwise_avx2 = {ew_avx2_silu,      ew_avx2_gelu_erf,  ew_avx2_quick_gelu,
                                            ew_avx2_geglu_row, ew_avx2_norm_rows, "avx2+fma"};
#else
#include "graph/ops/eltwise.h"
const sf_eltwise_kernels sf_eltwise_avx2 = {NULL, NULL, NULL, NULL, NULL, "avx2+fma"};
#endif
