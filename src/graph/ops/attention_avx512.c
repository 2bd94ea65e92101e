/* Attention's avx512 kernels: the template in attention_kernels.h, built with -mavx512f
 * (CMakeLists.txt) and chosen at run time by attention.c. */
#include "graph/ops/attention_kernels.h"

#if defined(__AVX512F__)
#define SF_ATT_TEMPLATE_AVX512 1
#include "graph/ops/attention_kernels.h"
#else
const sf_att_kernels sf_att_kernels_avx512 = {NULL, NULL, NULL, NULL, "avx512"};
#endif
