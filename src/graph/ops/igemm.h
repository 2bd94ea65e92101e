/* Convolution and linear layers as one indirect GEMM on weights packed once at load.
 *
 * Why our own: Debian's XNNPACK (2022-02) reaches about a third of the FMA peak on the SD
 * conv/linear shapes on an AVX2 core (see README "Speed and memory"), while a register-blocked
 * broadcast-FMA microkernel over cache-blocked panels reaches well over half of it; and these
 * two ops are >90% of every network's FLOPs.
 *
 * The GEMM is C[m, n] = bias[n] + sum_k A[m, k] * W[n, k] with m = output pixel (or row),
 * n = output channel, k = (tap, input channel). A is never materialised (no im2col): for a
 * block of MR output pixels and one tap, the microkernel reads MR input rows of cin
 * contiguous channels through pointers (a zero row where the tap falls in the padding).
 * A linear layer is the 1x1, stride-1 case over [rows, 1] "pixels".
 *
 * Determinism: every output element is accumulated as one chain of fused multiply-adds over
 * the same k-blocks in the same order (the k-blocking depends on the layer's shape only); how
 * pixels and channels are grouped into tasks, and which microkernel runs, does not change the
 * arithmetic, so outputs are bit-identical for any thread count and on AVX2 and AVX-512. */
#ifndef SF_GRAPH_OPS_IGEMM_H
#define SF_GRAPH_OPS_IGEMM_H

#include <pthreadpool.h>
#include <stddef.h>

struct sf_igemm_ukernel;

/* Which microkernel: the best one this CPU runs (chosen at run time through cpuinfo, so a
 * build for a generic x86-64 still gets the vector kernels), or a given one (tests). */
typedef enum sf_igemm_isa {
  SF_IGEMM_ISA_BEST = 0,
  SF_IGEMM_ISA_SCALAR,
  SF_IGEMM_ISA_AVX2,  /* AVX2 + FMA, 6 x 16 */
  SF_IGEMM_ISA_AVX512, /* AVX-512F, 8 x 32 */
  SF_IGEMM_ISA_NEON    /* AArch64 NEON (ARMv8.0), 8 x 8 */
} sf_igemm_isa;

/* How packed weights are stored. f16: IEEE half, widened exactly in registers; q8: int8,
 * symmetric per output channel (scale = max|w| / 127, q = w / scale rounded to nearest even),
 * the scale applied once after the accumulation (y = fma(sum(x * q), scale, bias)). */
typedef enum sf_wtype { SF_WTYPE_F32 = 0, SF_WTYPE_F16 = 1, SF_WTYPE_Q8 = 2, SF_WTYPE_COUNT = 3 } sf_wtype;

typedef struct sf_igemm_weights {
  const struct sf_igemm_ukernel *uk; /* the microkernel the packing is laid out for */
  sf_wtype type;
  size_t n;       /* output channels */
  size_t k;       /* reduction length: taps * cin (cin for a linear layer) */
  size_t nr;      /* the microkernel's tile width */
  size_t n_tiles; /* ceil(n / nr) */
  const void *packed;  /* [n_tiles][k][nr] of the type, columns past n zero */
  const float *bias;   /* [n_tiles * nr], zero past n and without bias */
  const float *scale;  /* q8: [n_tiles * nr] per output channel, zero past n; else NULL */
  int external;        /* packed, bias and scale belong to someone else (a mapped pack file,
                        * io/pack.h): sf_igemm_free leaves them alone */
} sf_igemm_weights;

/* 1 when this CPU runs one of the SIMD microkernels (and the build has it); without one the
 * graph lowers conv / linear onto XNNPACK instead. */
int sf_igemm_available(void);
/* Whether this CPU and build run the kernel of isa (for f32 weights; _type: for weights of that
 * type); its name ("avx2+fma", ...). */
int sf_igemm_isa_supported(sf_igemm_isa isa);
int sf_igemm_isa_supports_type(sf_igemm_isa isa, sf_wtype type);
/* Bytes per weight of a type (4, 2, 1) and its name ("f32", "f16", "q8"). */
size_t sf_wtype_bytes(sf_wtype type);
const char *sf_wtype_name(sf_wtype type);
const char *sf_igemm_isa_name(sf_igemm_isa isa);
/* The kernel whose name (sf_igemm_isa_name) is name, SF_IGEMM_ISA_BEST for none; its tile
 * (MR rows x NR columns: NR is the panel width packed weights are laid out in). */
sf_igemm_isa sf_igemm_isa_from_name(const char *name);
void sf_igemm_isa_tile(sf_igemm_isa isa, size_t *mr, size_t *nr);
/* The kernel packed weights are laid out for. */
sf_igemm_isa sf_igemm_weights_isa_id(const sf_igemm_weights *pw);
/* Tests only: the kernels whose bits (1u << isa) are set count as not supported by this CPU
 * (sf_igemm_isa_supports_type and everything that picks a kernel), to exercise refusals
 * without such a CPU. 0 (the default) restores the truth. */
void sf_igemm_test_disable_isas(unsigned mask);

/* Packs w [n][cin][taps] (PyTorch's layouts: a conv's OIHW with taps = kh*kw, or a linear
 * layer's [out][in] with taps = 1) and bias (NULL: zeros) for the best microkernel, as
 * k = taps * cin values per output channel in (tap, channel) order. Reading OIHW directly
 * spares the load a transposed copy of every conv's weights. Returns 0 when out of memory
 * (pw then holds nothing to free). sf_igemm_pack_isa: for a given microkernel; 0 also when
 * it is not supported here. */
int sf_igemm_pack(sf_igemm_weights *pw, const float *w, const float *bias, size_t n, size_t cin, size_t taps);
int sf_igemm_pack_isa(sf_igemm_weights *pw, const float *w, const float *bias, size_t n, size_t cin, size_t taps,
                      sf_igemm_isa isa);
/* The same, storing the weights as type (f32 values are rounded to nearest even for f16, and
 * quantised per output channel for q8). */
int sf_igemm_pack_typed(sf_igemm_weights *pw, const float *w, const float *bias, size_t n, size_t cin, size_t taps,
                        sf_igemm_isa isa, sf_wtype type);
/* The layout sf_igemm_pack_typed gives these weights, without packing anything (packed, bias and
 * scale stay NULL): sf_igemm_weights_bytes of it is what packing would take (inspection, memory
 * estimates). 0 as for packing. */
int sf_igemm_layout(sf_igemm_weights *pw, size_t n, size_t cin, size_t taps, sf_igemm_isa isa, sf_wtype type);
/* sf_igemm_pack_typed over pool's threads (NULL: the calling thread), in output-channel tiles:
 * the same bytes for any thread count. */
int sf_igemm_pack_typed_pool(pthreadpool_t pool, sf_igemm_weights *pw, const float *w, const float *bias, size_t n,
                             size_t cin, size_t taps, sf_igemm_isa isa, sf_wtype type);
/* Bytes the packed weights, bias and scales take. */
size_t sf_igemm_weights_bytes(const sf_igemm_weights *pw);
/* Bytes of each part: panels ([n_tiles][k][nr] of the type), and bias or scale ([n_tiles * nr]
 * floats). */
size_t sf_igemm_panel_bytes(const sf_igemm_weights *pw);
size_t sf_igemm_column_bytes(const sf_igemm_weights *pw);
/* Frees what packing allocated (nothing of external weights) and clears *pw. */
void sf_igemm_free(sf_igemm_weights *pw);
const char *sf_igemm_weights_isa(const sf_igemm_weights *pw);

typedef struct sf_igemm_conv {
  size_t batch, ih, iw, cin; /* x: NHWC, contiguous */
  size_t oh, ow;
  size_t kh, kw, stride, pad_top, pad_left; /* taps outside the input read zeros */
} sf_igemm_conv;

/* y[b, oy, ox, 0:n] = bias + the convolution of x with the packed weights (packed with
 * cin and taps = kh*kw). Output pixels are y_stride floats apart (>= w->n). y must not overlap x. */
void sf_igemm_conv_f32(pthreadpool_t pool, const sf_igemm_weights *w, const sf_igemm_conv *c, const float *x,
                       float *y, size_t y_stride);

/* y[r, 0:n] = bias + x[r, 0:k] . W^T for `rows` contiguous rows of x (row stride k). */
void sf_igemm_linear_f32(pthreadpool_t pool, const sf_igemm_weights *w, const float *x, float *y, size_t rows);

#endif
