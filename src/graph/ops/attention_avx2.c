/* Attention's avx2 kernels: the template in attention_kernels.h, built with -mavx2 -mfma
 * (CMakeLists.txt) and chosen at run time by attention.c. */
#include "graph/ops/attention_kernels.h"

#if defined(__AVX2__) && defined(__FMA__)
#define SF_ATT_TEMPLATE_AVX2 1
#include "graph/ops/attention_kernels.h"
#else
const sf_att_kernels sf_att_kernels_avx2 = {NULL, NULL, NULL, NULL, "avx2"};
#endif
