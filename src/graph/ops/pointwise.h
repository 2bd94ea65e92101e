/* Small elementwise ops of the decoders (the lead's; the rest are in kernels.h). All may
 * run in place (y == x). Results do not depend on the thread count. */
#ifndef SF_GRAPH_OPS_POINTWISE_H
#define SF_GRAPH_OPS_POINTWISE_H

#include <pthreadpool.h>
#include <stddef.h>

void sf_relu_f32(pthreadpool_t pool, const float *x, float *y, size_t n);
void sf_scale_f32(pthreadpool_t pool, const float *x, float *y, size_t n, float s);
/* s * tanh(x / s): TAESD's soft clamp of latents to (-s, s). */
void sf_tanh_scale_f32(pthreadpool_t pool, const float *x, float *y, size_t n, float s);

#endif
