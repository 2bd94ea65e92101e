/* Float32 compute kernels the SD-1.x graphs need beyond what XNNPACK (2022-02) provides.
 *
 * Layout: images are NHWC ([n, h, w, c], c fastest), sequences [n, tokens, c].
 * Every kernel taking a pthreadpool_t accepts NULL (runs on the calling thread). Work is split
 * into tasks whose boundaries depend only on the shapes, never on the thread count, and every
 * reduction runs inside one task in a fixed order: outputs are bit-identical for any pool.
 * Unless stated otherwise y may equal x (in place) but must not partially overlap it.
 * None of these allocate or fail. */
#ifndef SF_GRAPH_OPS_KERNELS_H
#define SF_GRAPH_OPS_KERNELS_H

#include <pthreadpool.h>
#include <stddef.h>

/* ---- normalisation ------------------------------------------------------------------------ */

/* Bytes of scratch sf_groupnorm_f32 needs for these shapes: about 8% of x's size, capped at
 * 20 KiB per channel per sample; any malloc'ed block will do. */
size_t sf_groupnorm_scratch_size(size_t n, size_t hw, size_t c);

/* PyTorch GroupNorm on x [n, hw, c] (NHWC with hw = h*w): per (sample, group) the biased mean
 * and variance over hw * (c / groups) values, y = (x - mean) / sqrt(var + eps) * gamma + beta,
 * then y * sigmoid(y) when fuse_silu. c % groups must be 0. gamma / beta may be NULL (1 / 0).
 * scratch: sf_groupnorm_scratch_size(n, hw, c) bytes, 8-byte aligned (it holds doubles). */
void sf_groupnorm_f32(pthreadpool_t pool, const float *x, float *y, size_t n, size_t hw, size_t c,
                      size_t groups, float eps, const float *gamma, const float *beta, int fuse_silu,
                      void *scratch);

/* PyTorch LayerNorm over the last dimension of x [rows, c] (biased variance).
 * gamma / beta may be NULL (1 / 0). */
void sf_layernorm_f32(pthreadpool_t pool, const float *x, float *y, size_t rows, size_t c, float eps,
                      const float *gamma, const float *beta);

/* ---- activations (n elements) --------------------------------------------------------------- */

void sf_silu_f32(pthreadpool_t pool, const float *x, float *y, size_t n);       /* x * sigmoid(x) */
void sf_gelu_erf_f32(pthreadpool_t pool, const float *x, float *y, size_t n);   /* exact-erf GELU */
void sf_quick_gelu_f32(pthreadpool_t pool, const float *x, float *y, size_t n); /* x*sigmoid(1.702x) */

/* diffusers GEGLU after its projection: x [rows, 2c] = [hidden | gate],
 * y [rows, c] = hidden * gelu_erf(gate). y must not overlap x. */
void sf_geglu_f32(pthreadpool_t pool, const float *x, float *y, size_t rows, size_t c);

/* ---- data movement ---------------------------------------------------------------------------- */

/* Nearest-neighbour 2x upsampling, NHWC [n, h, w, c] -> [n, 2h, 2w, c]. y must not overlap x. */
void sf_upsample_nearest2x_f32(pthreadpool_t pool, const float *x, float *y, size_t n, size_t h,
                               size_t w, size_t c);

/* Channel concatenation: y [pixels, ca + cb], y[p, 0:ca] = a[p, :], y[p, ca:] = b[p, :].
 * y must not overlap a or b. */
void sf_concat_channels_f32(pthreadpool_t pool, const float *a, size_t ca, const float *b, size_t cb,
                            float *y, size_t pixels);

/* y[j, i] = x[i, j] for x [rows, cols]. y must not overlap x. */
void sf_transpose_2d_f32(pthreadpool_t pool, const float *x, float *y, size_t rows, size_t cols);

/* [n, c, h, w] -> [n, h, w, c] and back. y must not overlap x. */
void sf_nchw_to_nhwc_f32(pthreadpool_t pool, const float *x, float *y, size_t n, size_t c, size_t h,
                         size_t w);
void sf_nhwc_to_nchw_f32(pthreadpool_t pool, const float *x, float *y, size_t n, size_t h, size_t w,
                         size_t c);

/* ---- elementwise ------------------------------------------------------------------------------ */

/* y = a + b (n elements); y may equal a or b. */
void sf_add_f32(pthreadpool_t pool, const float *a, const float *b, float *y, size_t n);

/* y[s, p, ch] = x[s, p, ch] + v[s, ch] for x [n, hw, c], v [n, c]: a per-sample channel vector
 * added at every pixel (ResNet time embedding). With n = 1 it is a plain per-channel bias. */
void sf_add_bias_f32(pthreadpool_t pool, const float *x, const float *v, float *y, size_t n,
                     size_t hw, size_t c);

/* y = a * alpha + b; y may equal a or b. */
void sf_scale_add_f32(pthreadpool_t pool, const float *a, float alpha, const float *b, float *y,
                      size_t n);

/* y = (a + b) / divisor, rounded as diffusers' residual "(input + hidden) / output_scale_factor";
 * y may equal a or b. */
void sf_add_div_f32(pthreadpool_t pool, const float *a, const float *b, float divisor, float *y,
                    size_t n);

/* ---- small ops -------------------------------------------------------------------------------- */

/* diffusers get_timestep_embedding in float32: t [n] -> out [n, dim]. Single-threaded. */
void sf_timestep_embedding_f32(const float *t, size_t n, size_t dim, int flip_sin_to_cos,
                               float downscale_freq_shift, float scale, float max_period,
                               float *out);

#endif
