/* diffusers get_timestep_embedding, step by step in float32 as PyTorch evaluates it: the Python
 * scalars become float32 before each elementwise op, so each intermediate is rounded to float
 * exactly where the reference rounds it. */
#include "graph/ops/kernels.h"

#include <math.h>

void sf_timestep_embedding_f32(const float *t, size_t n, size_t dim, int flip_sin_to_cos,
                               float downscale_freq_shift, float scale, float max_period,
                               float *out) {
  const size_t half = dim / 2;
  const float neg_log_period = (float)(-log((double)max_period));
  const float denom = (float)((double)half - (double)downscale_freq_shift);
  for (size_t s = 0; s < n; s++) {
    float *row = out + s * dim;
    float *sin_part = row + (flip_sin_to_cos ? half : 0);
    float *cos_part = row + (flip_sin_to_cos ? 0 : half);
    for (size_t i = 0; i < half; i++) {
      const float exponent = (neg_log_period * (float)i) / denom;
      const float arg = scale * (t[s] * expf(exponent));
      sin_part[i] = sinf(arg);
      cos_part[i] = cosf(arg);
    }
    if (dim % 2) row[dim - 1] = 0.0f;
  }
}
