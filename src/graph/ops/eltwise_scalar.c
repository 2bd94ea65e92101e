/* The elementwise kernels for any CPU: plain C with explicit fmaf (graph/ops/eltwise.h). */
#include "graph/ops/vmath.h"
#define EW_NAME(x) ew_scalar_##x
#include "graph/ops/eltwise.h"

const sf_eltwise_kernels sf_eltwise_scalar = {ew_scalar_silu,      ew_scalar_gelu_erf,  ew_scalar_quick_gelu,
                                              ew_scalar_geglu_row, ew_scalar_norm_rows, "scalar"};
