/* The indirect GEMM's AArch64 NEON microkernels: 8 x 8, for f32, f16 (FCVTL widens 4 halves:
 * ARMv8.0, exact; no ARMv8.2 half-precision arithmetic, which would round differently) and
 * int8 weights (SXTL twice + SCVTF: exact). Every output is the scalar kernel's single chain of
 * fused multiply-adds (FMLA) in k order, so the bits equal every other ISA's (test_igemm).
 *
 * Blocking, for a Cortex-A7x / X-class core (32 q registers, 2-4 FMA pipes): 16 accumulators
 * (8 rows x 2 vectors of 4 channels), 2 registers for the weight row, 8 for the broadcast input
 * values: 26 of 32. Inner loop per k (GCC 12 -O3, objdump of the f32 kernel): one LDP of 8
 * weights, 8 LDR s of inputs, 16 FMLA (by element), 4 loop instructions: 16 of 29 instructions
 * are FMAs (55%); 64 multiply-adds per 64 bytes read from L1 (1 byte per FMA). XNNPACK's
 * f32 GEMM for the same core class (f32-gemm 6x8 / 4x16 "neonfma" and the a75/a55 assembly)
 * loads 4 k-steps of each input row at once and uses FMLA by lane, reaching ~67-80% FMA
 * density; doing the same here (4x k unroll, LD1 of 4 inputs, FMLA v.s[0..3]) is the next
 * step. */
#include "graph/ops/igemm_ukernel.h"

#if defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>
#include <string.h>

#define IG_VEC float32x4_t
#define IG_VL 4
#define IG_MR 8
#define IG_LOAD(p) vld1q_f32(p)
#define IG_STORE(p, v) vst1q_f32(p, v)
#define IG_FMA(a, b, c) vfmaq_f32(c, a, b)
#define IG_BCAST(s) vdupq_n_f32(s)

static inline float32x4_t ig_load_f16(const uint16_t *p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }

static inline float32x4_t ig_load_q8(const int8_t *p) {
  int32_t w;
  memcpy(&w, p, sizeof w); /* exactly 4 bytes: the panel may end here */
  const int8x8_t v = vreinterpret_s8_s32(vdup_n_s32(w));
  return vcvtq_f32_s32(vmovl_s16(vget_low_s16(vmovl_s8(v))));
}

/* The template's kernel (igemm_ukernel.h) written out with named accumulators: GCC 12 keeps
 * its acc[8][2] array on the stack on AArch64 (two stores per row per k step). Same
 * operations in the same order. */
#define NEON_ROW(i, ar)                                                                             \
  {                                                                                                 \
    const float32x4_t av = vdupq_n_f32(ar[k]);                                                      \
    c##i##0 = vfmaq_f32(c##i##0, av, b0);                                                           \
    c##i##1 = vfmaq_f32(c##i##1, av, b1);                                                           \
  }
#define NEON_INIT(i)                                                                                \
  float32x4_t c##i##0 = vld1q_f32(init ? init : c + (size_t)(i) * ldc);                             \
  float32x4_t c##i##1 = vld1q_f32((init ? init : c + (size_t)(i) * ldc) + 4);
#define NEON_STORE(i)                                                                               \
  vst1q_f32(c + (size_t)(i) * ldc, c##i##0);                                                        \
  vst1q_f32(c + (size_t)(i) * ldc + 4, c##i##1);
#define NEON_KERNEL(name, WT, LOADW)                                                                \
  static void name(size_t taps, size_t kc, const float *const *a, const void *bv, float *c, size_t ldc, \
                   const float *init) {                                                             \
    const WT *b = bv;                                                                               \
    NEON_INIT(0) NEON_INIT(1) NEON_INIT(2) NEON_INIT(3) NEON_INIT(4) NEON_INIT(5) NEON_INIT(6) NEON_INIT(7) \
    for (size_t t = 0; t < taps; t++) {                                                             \
      const float *a0 = a[t * 8], *a1 = a[t * 8 + 1], *a2 = a[t * 8 + 2], *a3 = a[t * 8 + 3];       \
      const float *a4 = a[t * 8 + 4], *a5 = a[t * 8 + 5], *a6 = a[t * 8 + 6], *a7 = a[t * 8 + 7];   \
      for (size_t k = 0; k < kc; k++) {                                                             \
        const float32x4_t b0 = LOADW(b), b1 = LOADW(b + 4);                                         \
        b += 8;                                                                                     \
        NEON_ROW(0, a0) NEON_ROW(1, a1) NEON_ROW(2, a2) NEON_ROW(3, a3)                             \
        NEON_ROW(4, a4) NEON_ROW(5, a5) NEON_ROW(6, a6) NEON_ROW(7, a7)                             \
      }                                                                                             \
    }                                                                                               \
    NEON_STORE(0) NEON_STORE(1) NEON_STORE(2) NEON_STORE(3) NEON_STORE(4) NEON_STORE(5) NEON_STORE(6) \
    NEON_STORE(7)                                                                                   \
  }

NEON_KERNEL(ukernel_neon_8x8_f32, float, vld1q_f32)
NEON_KERNEL(ukernel_neon_8x8_f16, uint16_t, ig_load_f16)
NEON_KERNEL(ukernel_neon_8x8_q8, int8_t, ig_load_q8)

#define IG_EPILOGUE_NAME epilogue_neon_8x8
#include "graph/ops/igemm_ukernel.h"

const sf_igemm_ukernel sf_igemm_ukernel_neon = {
    {ukernel_neon_8x8_f32, ukernel_neon_8x8_f16, ukernel_neon_8x8_q8}, epilogue_neon_8x8, 8, 8, "neon"};
#else
const sf_igemm_ukernel sf_igemm_ukernel_neon = {{NULL, NULL, NULL}, NULL, 8, 8, "neon"};
#endif
