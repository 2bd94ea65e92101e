/* A bit-exact port of torch's CPU generator (torch 1.13 `torch.Generator('cpu')`), so that a
 * seed given to this library produces the same initial latents / ancestral noise as
 * diffusers with `generator=torch.Generator('cpu').manual_seed(seed)`.
 * Semantics (seeding, draw order, the 16-element Box-Muller blocks and their tail, the
 * cached second sample of the small path, the two float32 kernels) are described in the
 * fixtures README, section "torch CPU generator". */
#ifndef SF_SCHED_TORCH_RNG_H
#define SF_SCHED_TORCH_RNG_H

#include <stddef.h>
#include <stdint.h>

/* torch picks the float32 randn kernel by CPU capability, not by the values: AVX2 (its default
 * on x86-64, also used under avx512) and the scalar libm kernel (ATEN_CPU_CAPABILITY=default,
 * aarch64). They differ by up to ~2e-6 on ~40% of values of a float32 randn with >= 16
 * elements; everything else is kernel-independent. */
typedef enum sf_rng_kernel {
  SF_RNG_KERNEL_AVX2 = 0, /* default: what diffusers on an x86-64 PC produces */
  SF_RNG_KERNEL_SCALAR = 1
} sf_rng_kernel;

#define SF_MT19937_N 624

/* Plain value type: copy it to fork a stream; no allocation. */
typedef struct sf_torch_rng {
  uint32_t mt[SF_MT19937_N];
  int mti;
  int has_cached_normal; /* at::CPUGeneratorImpl's next_double_normal_sample */
  double cached_normal;
} sf_torch_rng;

/* manual_seed(seed): any 64-bit seed (negative python seeds = their uint64 two's complement);
 * only the low 32 bits reach mt19937. Clears the cached normal. */
void sf_torch_rng_seed(sf_torch_rng *g, uint64_t seed);
/* Next tempered 32-bit MT19937 word. */
uint32_t sf_torch_rng_u32(sf_torch_rng *g);

/* torch.randn(n, generator=g, dtype=float32) for a contiguous tensor of n elements. */
void sf_torch_randn_f32(sf_torch_rng *g, float *out, size_t n, sf_rng_kernel kernel);
/* torch.randn(n, generator=g, dtype=float64). */
void sf_torch_randn_f64(sf_torch_rng *g, double *out, size_t n);
/* torch.rand(n, generator=g, dtype=float32). */
void sf_torch_rand_f32(sf_torch_rng *g, float *out, size_t n);

#endif
