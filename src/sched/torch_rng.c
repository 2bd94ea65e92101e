/* The AVX2 kernel's polynomials must round exactly where torch's build rounded: every FMA
 * below is an explicit fmaf(), and contraction of the remaining a*b+c expressions into
 * FMAs (which would change results by an ulp) is switched off for this file. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "sched/torch_rng.h"

#include <math.h>
#include <string.h>

#define MT_M 397
#define SF_PI 3.14159265358979323846

void sf_torch_rng_seed(sf_torch_rng *g, uint64_t seed) {
  uint32_t s = (uint32_t)(seed & 0xffffffffu);
  g->mt[0] = s;
  for (int j = 1; j < SF_MT19937_N; j++) {
    s = 1812433253u * (s ^ (s >> 30)) + (uint32_t)j;
    g->mt[j] = s;
  }
  g->mti = SF_MT19937_N;
  g->has_cached_normal = 0;
  g->cached_normal = 0.0;
}

static void mt_twist(sf_torch_rng *g) {
  uint32_t *mt = g->mt;
  for (int i = 0; i < SF_MT19937_N; i++) {
    uint32_t y = (mt[i] & 0x80000000u) | (mt[(i + 1) % SF_MT19937_N] & 0x7fffffffu);
    mt[i] = mt[(i + MT_M) % SF_MT19937_N] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
  }
  g->mti = 0;
}

uint32_t sf_torch_rng_u32(sf_torch_rng *g) {
  if (g->mti >= SF_MT19937_N) mt_twist(g);
  uint32_t y = g->mt[g->mti++];
  y ^= y >> 11;
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= y >> 18;
  return y;
}

static float uniform_f32(sf_torch_rng *g) {
  return (float)((double)(sf_torch_rng_u32(g) & 0xffffffu) * 0x1p-24);
}

static double uniform_f64(sf_torch_rng *g) {
  uint64_t hi = sf_torch_rng_u32(g);
  uint64_t lo = sf_torch_rng_u32(g);
  uint64_t v = ((hi << 32) | lo) & ((UINT64_C(1) << 53) - 1);
  return (double)v * 0x1p-53;
}

/* at::normal_distribution<double>: one Box-Muller pair per two calls, the sine half kept in
 * the generator for the next call (even across torch.randn calls). */
static double normal_double(sf_torch_rng *g) {
  if (g->has_cached_normal) {
    g->has_cached_normal = 0;
    return g->cached_normal * 1.0 + 0.0;
  }
  double u1 = uniform_f64(g);
  double u2 = uniform_f64(g);
  double r = sqrt(-2.0 * log(1.0 - u2));
  double th = 2.0 * SF_PI * u1;
  g->cached_normal = r * sin(th);
  g->has_cached_normal = 1;
  return r * cos(th) * 1.0 + 0.0;
}

static float bits_to_f32(uint32_t b) {
  float f;
  memcpy(&f, &b, sizeof f);
  return f;
}

static uint32_t f32_to_bits(float f) {
  uint32_t b;
  memcpy(&b, &f, sizeof b);
  return b;
}

/* log256_ps of ATen's avx_mathfun.h (Cephes logf), one lane, for x > 0. */
static float avx_log(float x) {
  const float min_norm = bits_to_f32(0x00800000u);
  if (x < min_norm) x = min_norm;
  uint32_t bits = f32_to_bits(x);
  int32_t imm0 = (int32_t)(bits >> 23) - 0x7f;
  x = bits_to_f32((bits & ~0x7f800000u) | f32_to_bits(0.5f));
  float e = (float)imm0 + 1.0f;
  int small = x < (float)0.707106781186547524;
  float tmp = small ? x : 0.0f;
  x = x - 1.0f;
  e = e - (small ? 1.0f : 0.0f);
  x = x + tmp;
  float z = x * x;
  static const double p[9] = {7.0376836292E-2,  -1.1514610310E-1, 1.1676998740E-1,
                              -1.2420140846E-1, 1.4249322787E-1,  -1.6668057665E-1,
                              2.0000714765E-1,  -2.4999993993E-1, 3.3333331174E-1};
  float y = (float)p[0];
  for (int i = 1; i < 9; i++) y = fmaf(y, x, (float)p[i]);
  y = y * x;
  float eq1 = e * (float)-2.12194440e-4;
  y = fmaf(y, z, eq1);
  y = fmaf(z, -0.5f, y);
  x = x + y;
  x = fmaf(e, (float)0.693359375, x);
  return x;
}

/* sincos256_ps of ATen's avx_mathfun.h, one lane. */
static void avx_sincos(float x, float *s_out, float *c_out) {
  uint32_t sign_sin = f32_to_bits(x) & 0x80000000u;
  x = bits_to_f32(f32_to_bits(x) & 0x7fffffffu);
  float y = x * (float)1.27323954473516;
  int32_t imm2 = (int32_t)y; /* cvttps2dq truncates; theta is in [0, 2pi) here */
  imm2 = (imm2 + 1) & ~1;
  y = (float)imm2;
  uint32_t swap_sign_sin = ((uint32_t)imm2 & 4u) << 29;
  int poly_is_sin = (imm2 & 2) == 0;
  x = fmaf(y, (float)-0.78515625, x);
  x = fmaf(y, (float)-2.4187564849853515625e-4, x);
  x = fmaf(y, (float)-3.77489497744594108e-8, x);
  uint32_t sign_cos = (~(uint32_t)(imm2 - 2) & 4u) << 29;
  sign_sin ^= swap_sign_sin;
  float z = x * x;
  float yc = (float)2.443315711809948E-005;
  yc = fmaf(yc, z, (float)-1.388731625493765E-003);
  yc = fmaf(yc, z, (float)4.166664568298827E-002);
  yc = yc * z;
  float half_z = z * 0.5f;
  yc = fmaf(yc, z, -half_z);
  yc = yc + 1.0f;
  float ys = (float)-1.9515295891E-4;
  ys = fmaf(ys, z, (float)8.3321608736E-3);
  ys = fmaf(ys, z, (float)-1.6666654611E-1);
  ys = ys * z;
  ys = fmaf(ys, x, x);
  float s = poly_is_sin ? ys : yc;
  float c = poly_is_sin ? yc : ys;
  *s_out = bits_to_f32(f32_to_bits(s) ^ sign_sin);
  *c_out = bits_to_f32(f32_to_bits(c) ^ sign_cos);
}

/* normal_fill_16: u[0..16) uniforms in, 16 normals out; pairs j / j+8. The trailing
 * "*std + mean" of torch (std 1, mean 0) only turns -0 into +0, kept for exactness. */
static void fill16_avx2(float *u) {
  const float two_pi = (float)(2.0 * SF_PI);
  for (int j = 0; j < 8; j++) {
    float u1 = 1.0f - u[j];
    float u2 = u[j + 8];
    float radius = sqrtf(-2.0f * avx_log(u1));
    float theta = two_pi * u2;
    float s, c;
    avx_sincos(theta, &s, &c);
    u[j] = radius * c + 0.0f;
    u[j + 8] = radius * s + 0.0f;
  }
}

static void fill16_scalar(float *u) {
  for (int j = 0; j < 8; j++) {
    float u1 = 1.0f - u[j];
    float u2 = u[j + 8];
    float radius = sqrtf(-2.0f * logf(u1));
    float theta = (float)(2.0 * SF_PI * (double)u2);
    u[j] = radius * cosf(theta) + 0.0f;
    u[j + 8] = radius * sinf(theta) + 0.0f;
  }
}

static void fill16_f64(double *u) {
  for (int j = 0; j < 8; j++) {
    double u1 = 1.0 - u[j];
    double u2 = u[j + 8];
    double radius = sqrt(-2.0 * log(u1));
    double theta = 2.0 * SF_PI * u2;
    u[j] = radius * cos(theta) + 0.0;
    u[j + 8] = radius * sin(theta) + 0.0;
  }
}

void sf_torch_randn_f32(sf_torch_rng *g, float *out, size_t n, sf_rng_kernel kernel) {
  if (n < 16) {
    for (size_t i = 0; i < n; i++) out[i] = (float)normal_double(g);
    return;
  }
  void (*fill16)(float *) = kernel == SF_RNG_KERNEL_SCALAR ? fill16_scalar : fill16_avx2;
  for (size_t i = 0; i < n; i++) out[i] = uniform_f32(g);
  for (size_t k = 0; k + 16 <= n; k += 16) fill16(out + k);
  if (n % 16 != 0) {
    /* torch redraws the last (overlapping) block from 16 fresh uniforms */
    float *tail = out + n - 16;
    for (int i = 0; i < 16; i++) tail[i] = uniform_f32(g);
    fill16(tail);
  }
}

void sf_torch_randn_f64(sf_torch_rng *g, double *out, size_t n) {
  if (n < 16) {
    for (size_t i = 0; i < n; i++) out[i] = normal_double(g);
    return;
  }
  for (size_t i = 0; i < n; i++) out[i] = uniform_f64(g);
  for (size_t k = 0; k + 16 <= n; k += 16) fill16_f64(out + k);
  if (n % 16 != 0) {
    double *tail = out + n - 16;
    for (int i = 0; i < 16; i++) tail[i] = uniform_f64(g);
    fill16_f64(tail);
  }
}

void sf_torch_rand_f32(sf_torch_rng *g, float *out, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = uniform_f32(g);
}
