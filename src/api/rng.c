/* Public face of the PyTorch-compatible generator. */
#include <stdlib.h>

#include "core/context.h"
#include "sched/torch_rng.h"

struct sf_rng {
  sf_torch_rng g;
  sf_rng_kernel kernel;
};

sf_status sf_rng_create(sf_rng_kind kind, uint64_t seed, sf_rng **out_rng) {
  if (out_rng == NULL) return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_rng_create: out_rng is NULL");
  *out_rng = NULL;
  if (kind != SF_RNG_TORCH_CPU && kind != SF_RNG_TORCH_CPU_SCALAR)
    return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_rng_create: unknown generator kind %d", (int)kind);
  sf_rng *r = malloc(sizeof *r);
  if (r == NULL) return sf_ctx_error(NULL, SF_ERR_OUT_OF_MEMORY, "sf_rng_create: out of memory");
  sf_torch_rng_seed(&r->g, seed);
  r->kernel = kind == SF_RNG_TORCH_CPU ? SF_RNG_KERNEL_AVX2 : SF_RNG_KERNEL_SCALAR;
  *out_rng = r;
  return SF_OK;
}

void sf_rng_destroy(sf_rng *rng) { free(rng); }

sf_status sf_rng_randn(sf_rng *rng, float *out, size_t count) {
  if (rng == NULL || (out == NULL && count > 0))
    return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_rng_randn: NULL argument");
  sf_torch_randn_f32(&rng->g, out, count, rng->kernel);
  return SF_OK;
}

sf_status sf_rng_randn_f64(sf_rng *rng, double *out, size_t count) {
  if (rng == NULL || (out == NULL && count > 0))
    return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_rng_randn_f64: NULL argument");
  sf_torch_randn_f64(&rng->g, out, count);
  return SF_OK;
}

sf_status sf_rng_rand(sf_rng *rng, float *out, size_t count) {
  if (rng == NULL || (out == NULL && count > 0))
    return sf_ctx_error(NULL, SF_ERR_INVALID_ARGUMENT, "sf_rng_rand: NULL argument");
  sf_torch_rand_f32(&rng->g, out, count);
  return SF_OK;
}
