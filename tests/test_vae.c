/* AutoencoderKL: fixture decode (square, non-square), encode, scaling flag, thread
 * determinism, re-planning, partial builds, checkpoint mismatches, legacy attention names,
 * and the real SD-1.5 / SnapFusion-style architectures with random weights. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/context.h"
#include "fixture_util.h"
#include "graph/wsrc.h"
#include "io/model_folder.h"
#include "models/vae.h"
#include "test.h"
#include "test_exec.h"

static double now_s(void) { /* informational timings only */
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- writing modified checkpoints ---------------------------------------------------------- */

typedef struct out_tensor {
  char name[256];
  const sf_st_tensor *src;
} out_tensor;

/* Writes a safetensors file holding the given tensors (data copied from their sources). */
static int write_safetensors(const char *path, const out_tensor *ts, size_t n) {
  size_t cap = 4096 + n * 400, len = 0;
  char *hdr = malloc(cap);
  if (hdr == NULL) return 0;
  uint64_t off = 0;
  len += (size_t)snprintf(hdr + len, cap - len, "{\"__metadata__\":{\"format\":\"pt\"}");
  for (size_t i = 0; i < n; i++) {
    const sf_st_tensor *t = ts[i].src;
    len += (size_t)snprintf(hdr + len, cap - len, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", ts[i].name,
                            sf_dtype_name(t->dtype));
    for (int k = 0; k < t->ndim; k++)
      len += (size_t)snprintf(hdr + len, cap - len, "%s%lld", k ? "," : "", (long long)t->shape[k]);
    len += (size_t)snprintf(hdr + len, cap - len, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                            (unsigned long long)(off + t->nbytes));
    off += t->nbytes;
  }
  len += (size_t)snprintf(hdr + len, cap - len, "}");
  while (len % 8) hdr[len++] = ' ';
  FILE *f = fopen(path, "wb");
  int ok = f != NULL;
  unsigned char le[8];
  for (int k = 0; k < 8; k++) le[k] = (unsigned char)((uint64_t)len >> (8 * k));
  if (ok) ok = fwrite(le, 1, 8, f) == 8 && fwrite(hdr, 1, len, f) == len;
  for (size_t i = 0; ok && i < n; i++) ok = fwrite(ts[i].src->data, 1, ts[i].src->nbytes, f) == ts[i].src->nbytes;
  if (f && fclose(f) != 0) ok = 0;
  free(hdr);
  return ok;
}

/* Copies w's tensors to path, dropping `drop`, adding `extra` (a copy of the first tensor
 * under that name), and renaming by the (from, to) suffix pairs in `ren`. */
static int write_variant(const char *path, const sf_weights *w, const char *drop, const char *extra,
                         const char *const (*ren)[2], size_t n_ren) {
  size_t n = sf_weights_count(w);
  out_tensor *ts = calloc(n + 1, sizeof *ts);
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    const sf_st_tensor *t = sf_weights_at(w, i);
    if (drop && strcmp(t->name, drop) == 0) continue;
    ts[k].src = t;
    snprintf(ts[k].name, sizeof ts[k].name, "%s", t->name);
    for (size_t r = 0; r < n_ren; r++) {
      const char *hit = strstr(t->name, ren[r][0]);
      if (hit) {
        snprintf(ts[k].name, sizeof ts[k].name, "%.*s%s%s", (int)(hit - t->name), t->name, ren[r][1],
                 hit + strlen(ren[r][0]));
        break;
      }
    }
    k++;
  }
  if (extra) {
    ts[k].src = sf_weights_at(w, 0);
    snprintf(ts[k].name, sizeof ts[k].name, "%s", extra);
    k++;
  }
  int ok = write_safetensors(path, ts, k);
  free(ts);
  return ok;
}

/* ---- fixture cases -------------------------------------------------------------------------- */

static int report(const sf_json *c, const char *label, const char *out, const float *got, const float *ref, size_t n) {
  fx_result r = {0, 0, 0, 0};
  int ok = fx_compare(c, out, got, ref, n, &r);
  printf("%-40s max err %.3g, worst ratio %.3f, %zu bad of %zu\n", label, r.max_abs, r.worst_ratio, r.n_bad, n);
  return ok;
}

static void dims_of(const sf_safetensors *st, const char *key, size_t dims[4]) {
  const sf_st_tensor *t = sf_st_find(st, key);
  for (int i = 0; i < 4; i++) dims[i] = (t && t->ndim == 4) ? (size_t)t->shape[i] : 0;
}

/* Decodes case `name` with 1 and 2 threads (and through the unscaled path); returns the
 * 1-thread image (caller frees) for re-planning checks. */
static float *check_decode_case(sf_vae *v, const fx_manifest *m, const char *name, pthreadpool_t p2) {
  const sf_json *c = fx_case(m, name);
  CHECK(c != NULL);
  if (c == NULL) return NULL;
  CHECK(strcmp(sf_json_as_string(sf_json_get(c, "component")), "vae_decoder") == 0);
  sf_safetensors *st = fx_case_open(m, c);
  CHECK(st != NULL);
  if (st == NULL) return NULL;
  size_t zd[4], od[4], nz, ni;
  dims_of(st, "in.z", zd);
  dims_of(st, "out.image", od);
  float *z = fx_f32(st, "in.z", &nz), *lat = fx_f32(st, "in.latents", NULL), *ref = fx_f32(st, "out.image", &ni);
  size_t f = sf_vae_scale_factor(v);
  CHECK(od[0] == zd[0] && od[2] == zd[2] * f && od[3] == zd[3] * f && od[1] == 3);
  float *img = malloc(ni * sizeof *img), *img2 = malloc(ni * sizeof *img2);
  sf_diag d = {0};
  char label[128];

  CHECK_MSG(sf_vae_decode(v, TX(NULL), TP(), z, zd[0], zd[2], zd[3], 1, img, &d) == SF_OK, "%s", d.msg);
  snprintf(label, sizeof label, "%s (z pre-scaled)", name);
  CHECK(report(c, label, "image", img, ref, ni));

  CHECK_MSG(sf_vae_decode(v, TX(p2), TP(), z, zd[0], zd[2], zd[3], 1, img2, &d) == SF_OK, "%s", d.msg);
  CHECK_MSG(memcmp(img, img2, ni * sizeof *img) == 0, "%s: 1 vs 2 threads differ", name);

  /* Pipeline-space latents divided inside: same reference. */
  CHECK_MSG(sf_vae_decode(v, TX(NULL), TP(), lat, zd[0], zd[2], zd[3], 0, img2, &d) == SF_OK, "%s", d.msg);
  snprintf(label, sizeof label, "%s (latents / scaling_factor)", name);
  CHECK(report(c, label, "image", img2, ref, ni));

  sf_diag pd = {0};
  CHECK_MSG(sf_plan_check(sf_vae_decoder_graph(v), TP(), &pd) == 0, "%s", pd.msg);
  free(z);
  free(lat);
  free(ref);
  free(img2);
  sf_st_close(st);
  return img;
}

static void check_encode_case(sf_vae *v, const fx_manifest *m, pthreadpool_t p2) {
  const sf_json *c = fx_case(m, "vae/encode");
  CHECK(c != NULL);
  if (c == NULL) return;
  CHECK(strcmp(sf_json_as_string(sf_json_get(c, "component")), "vae_encoder") == 0);
  sf_safetensors *st = fx_case_open(m, c);
  CHECK(st != NULL);
  if (st == NULL) return;
  size_t id[4], md[4], nm;
  dims_of(st, "in.image", id);
  dims_of(st, "out.mean", md);
  float *img = fx_f32(st, "in.image", NULL), *rmean = fx_f32(st, "out.mean", &nm), *rlv = fx_f32(st, "out.logvar", NULL);
  float *mean = malloc(nm * sizeof *mean), *lv = malloc(nm * sizeof *lv);
  float *mean2 = malloc(nm * sizeof *mean), *lv2 = malloc(nm * sizeof *lv);
  sf_diag d = {0};
  CHECK_MSG(sf_vae_encode(v, TX(NULL), TP(), img, id[0], id[2], id[3], mean, lv, &d) == SF_OK, "%s", d.msg);
  CHECK(md[2] * sf_vae_scale_factor(v) == id[2] && md[3] * sf_vae_scale_factor(v) == id[3]);
  CHECK(report(c, "vae/encode mean", "mean", mean, rmean, nm));
  CHECK(report(c, "vae/encode logvar", "logvar", lv, rlv, nm));
  CHECK_MSG(sf_vae_encode(v, TX(p2), TP(), img, id[0], id[2], id[3], mean2, lv2, &d) == SF_OK, "%s", d.msg);
  CHECK_MSG(memcmp(mean, mean2, nm * sizeof *mean) == 0 && memcmp(lv, lv2, nm * sizeof *lv) == 0,
            "encode: 1 vs 2 threads differ");
  /* logvar is optional */
  CHECK_MSG(sf_vae_encode(v, TX(NULL), TP(), img, id[0], id[2], id[3], mean2, NULL, &d) == SF_OK, "%s", d.msg);
  CHECK(memcmp(mean, mean2, nm * sizeof *mean) == 0);
  /* sides that are not multiples of the downsampling factor are refused */
  sf_diag bad = {0};
  CHECK_EQ_INT(sf_vae_encode(v, TX(NULL), TP(), img, 1, id[2] - 4, id[3], mean2, NULL, &bad), SF_ERR_INVALID_ARGUMENT);
  sf_diag pd = {0};
  CHECK_MSG(sf_plan_check(sf_vae_encoder_graph(v), TP(), &pd) == 0, "%s", pd.msg);
  free(img);
  free(rmean);
  free(rlv);
  free(mean);
  free(lv);
  free(mean2);
  free(lv2);
  sf_st_close(st);
}

/* Builds from a rewritten copy of the checkpoint; returns the status and message. */
static sf_status build_variant(const char *dir, const sf_weights *w, const sf_vae_config *cfg, const char *drop,
                               const char *extra, const char *const (*ren)[2], size_t n_ren, sf_vae **out,
                               sf_diag *d) {
  char path[4200];
  snprintf(path, sizeof path, "%s/variant.safetensors", dir);
  *out = NULL;
  if (!write_variant(path, w, drop, extra, ren, n_ren)) return sf_diag_set(d, SF_ERR_IO, "cannot write %s", path);
  sf_weights *vw = sf_weights_open_file(path, d);
  if (vw == NULL) return d->status;
  sf_wsrc *ws = sf_wsrc_from_weights(vw, "vae");
  *out = sf_vae_build(cfg, ws, SF_VAE_BOTH, d);
  sf_wsrc_destroy(ws);
  sf_weights_close(vw);
  remove(path);
  return *out ? SF_OK : d->status;
}

static void test_fixtures(const char *fx) {
  fx_manifest m;
  CHECK(fx_manifest_open(&m, fx));
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/public/tiny-sd/vae", fx);
  sf_diag d = {0};
  sf_component *comp = sf_component_open(dir, NULL, &d);
  CHECK_MSG(comp != NULL, "%s", d.msg);
  if (comp == NULL) {
    fx_manifest_close(&m);
    return;
  }
  sf_vae_config cfg;
  CHECK_EQ_INT(sf_vae_config_parse(sf_component_config(comp), &cfg, &d), SF_OK);
  CHECK(cfg.n_levels == 4 && cfg.latent_channels == 4 && fabsf(cfg.scaling_factor - 0.18215f) == 0);
  sf_vae *v = sf_vae_open(comp, SF_VAE_BOTH, &d);
  CHECK_MSG(v != NULL, "%s", d.msg);
  pthreadpool_t p2 = pthreadpool_create(2);
  if (v != NULL) {
    float *sq = check_decode_case(v, &m, "vae/decode", p2);
    float *ns = check_decode_case(v, &m, "vae/decode_nonsquare_8x12", p2);
    /* Back to the first shape after re-planning for another: identical result. */
    float *again = check_decode_case(v, &m, "vae/decode", p2);
    CHECK(sq && again && memcmp(sq, again, 2 * 3 * 64 * 64 * sizeof *sq) == 0);
    free(sq);
    free(ns);
    free(again);
    check_encode_case(v, &m, p2);

    sf_graph_stats gs;
    sf_graph_get_stats(sf_vae_decoder_graph(v), TP(), &gs);
    printf("tiny-sd vae decoder: %zu nodes, %.1f MMAC dense, %.1f MMAC attention\n", gs.nodes, gs.macs_dense / 1e6,
           gs.macs_attention / 1e6);
  }

  /* Partial builds: the other half's tensors are excused, the missing half is refused. */
  sf_vae *dec = sf_vae_open(comp, SF_VAE_DECODER, &d);
  CHECK_MSG(dec != NULL, "%s", d.msg);
  sf_vae *enc = sf_vae_open(comp, SF_VAE_ENCODER, &d);
  CHECK_MSG(enc != NULL, "%s", d.msg);
  if (dec && enc) {
    float z[4 * 8 * 8] = {0}, img[3 * 64 * 64] = {0}, mean[4 * 8 * 8];
    sf_diag e = {0};
    CHECK_EQ_INT(sf_vae_encode(dec, TX(NULL), TP(), img, 1, 64, 64, mean, NULL, &e), SF_ERR_BAD_STATE);
    sf_diag_clear(&e);
    CHECK_EQ_INT(sf_vae_decode(enc, TX(NULL), TP(), z, 1, 8, 8, 1, img, &e), SF_ERR_BAD_STATE);
    CHECK_EQ_INT(sf_vae_parts(dec), SF_VAE_DECODER);
  }
  sf_vae_destroy(dec);
  sf_vae_destroy(enc);

  /* Checkpoint mismatches name the tensor. */
  char tmpl[] = "/tmp/sf_test_vae_XXXXXX";
  char *tmp = mkdtemp(tmpl);
  CHECK(tmp != NULL);
  if (tmp != NULL && comp->weights != NULL) {
    sf_vae *bad = NULL;
    const char *missing = "decoder.up_blocks.1.resnets.0.conv2.weight";
    sf_diag e = {0};
    CHECK_EQ_INT(build_variant(tmp, comp->weights, &cfg, missing, NULL, NULL, 0, &bad, &e), SF_ERR_BAD_MODEL);
    CHECK_MSG(strstr(e.msg, missing) != NULL, "message does not name the tensor: %s", e.msg);
    printf("missing tensor: %s\n", e.msg);
    sf_vae_destroy(bad);

    sf_diag_clear(&e);
    const char *missing_enc = "encoder.down_blocks.0.downsamplers.0.conv.bias";
    CHECK_EQ_INT(build_variant(tmp, comp->weights, &cfg, missing_enc, NULL, NULL, 0, &bad, &e), SF_ERR_BAD_MODEL);
    CHECK_MSG(strstr(e.msg, missing_enc) != NULL, "message does not name the tensor: %s", e.msg);
    sf_vae_destroy(bad);

    sf_diag_clear(&e);
    const char *extra = "decoder.mid_block.resnets.2.conv1.weight";
    CHECK_EQ_INT(build_variant(tmp, comp->weights, &cfg, NULL, extra, NULL, 0, &bad, &e), SF_ERR_BAD_MODEL);
    CHECK_MSG(strstr(e.msg, extra) != NULL, "message does not name the unused tensor: %s", e.msg);
    printf("unused tensor: %s\n", e.msg);
    sf_vae_destroy(bad);

    /* Deprecated attention names (query/key/value/proj_attn) give the same network. */
    static const char *const ren[4][2] = {{".to_q.", ".query."}, {".to_k.", ".key."}, {".to_v.", ".value."},
                                          {".to_out.0.", ".proj_attn."}};
    sf_diag_clear(&e);
    CHECK_EQ_INT(build_variant(tmp, comp->weights, &cfg, NULL, NULL, ren, 4, &bad, &e), SF_OK);
    if (bad != NULL && v != NULL) {
      static float z[2 * 4 * 8 * 8], a[2 * 3 * 64 * 64], b[2 * 3 * 64 * 64];
      for (size_t i = 0; i < sizeof z / sizeof *z; i++) z[i] = (float)sin(0.37 * (double)i) * 2.0f;
      CHECK_EQ_INT(sf_vae_decode(v, TX(NULL), TP(), z, 2, 8, 8, 1, a, &e), SF_OK);
      CHECK_EQ_INT(sf_vae_decode(bad, TX(NULL), TP(), z, 2, 8, 8, 1, b, &e), SF_OK);
      CHECK_MSG(memcmp(a, b, sizeof a) == 0, "legacy attention names decode differently");
    }
    sf_vae_destroy(bad);
    rmdir(tmp);
  }

  /* Config errors. */
  {
    const char *bad_cfgs[][2] = {
        {"{\"block_out_channels\":[32,32],\"up_block_types\":[\"UpDecoderBlock2D\",\"AttnUpDecoderBlock2D\"]}",
         "unsupported: up_block_types[1]=AttnUpDecoderBlock2D"},
        {"{\"block_out_channels\":[32],\"act_fn\":\"gelu\"}", "unsupported: act_fn=gelu"},
        {"{\"block_out_channels\":[32],\"shift_factor\":0.1159}", "unsupported: shift_factor"},
        {"{\"block_out_channels\":[32],\"latents_mean\":[0,0,0,0]}", "unsupported: latents_mean"},
        {"{\"layers_per_block\":2}", "block_out_channels"},
        {"{\"block_out_channels\":[30],\"norm_num_groups\":32}", "norm_num_groups"},
    };
    for (size_t i = 0; i < sizeof bad_cfgs / sizeof *bad_cfgs; i++) {
      sf_diag e = {0};
      sf_json_doc *doc = sf_json_parse(bad_cfgs[i][0], strlen(bad_cfgs[i][0]), &e);
      sf_vae_config c;
      sf_status s = sf_vae_config_parse(sf_json_root(doc), &c, &e);
      CHECK_MSG(s == SF_ERR_UNSUPPORTED || s == SF_ERR_BAD_MODEL, "config %zu accepted", i);
      CHECK_MSG(strstr(e.msg, bad_cfgs[i][1]) != NULL, "config %zu: '%s' lacks '%s'", i, e.msg, bad_cfgs[i][1]);
      if (i >= 4) CHECK_EQ_INT(s, SF_ERR_BAD_MODEL);
      else CHECK_EQ_INT(s, SF_ERR_UNSUPPORTED);
      sf_json_free(doc);
    }
  }

  sf_vae_destroy(v);
  pthreadpool_destroy(p2);
  sf_component_close(comp);
  fx_manifest_close(&m);
}

/* ---- real architectures, random weights ---------------------------------------------------- */

static uint64_t resnet_params(uint64_t in, uint64_t out) {
  return 2 * in + 9 * in * out + out + 2 * out + 9 * out * out + out + (in != out ? in * out + out : 0);
}

/* Parameters of AutoencoderKL counted independently of the builder. */
static void expected_params(const sf_vae_config *c, uint64_t *dec, uint64_t *enc) {
  uint64_t L = c->latent_channels, n = c->n_levels, top = c->block_out_channels[n - 1];
  uint64_t mid = 2 * resnet_params(top, top) + (c->mid_block_add_attention ? 2 * top + 4 * (top * top + top) : 0);
  uint64_t d = (c->use_post_quant_conv ? L * L + L : 0) + 9 * L * top + top + mid;
  uint64_t prev = top;
  for (uint64_t i = 0; i < n; i++) {
    uint64_t out = c->block_out_channels[n - 1 - i];
    for (uint64_t j = 0; j <= c->layers_per_block; j++) {
      d += resnet_params(prev, out);
      prev = out;
    }
    if (i + 1 < n) d += 9 * out * out + out;
  }
  uint64_t c0 = c->block_out_channels[0];
  d += 2 * c0 + 9 * c0 * c->out_channels + c->out_channels;
  uint64_t e = 9 * c->in_channels * c0 + c0;
  prev = c0;
  for (uint64_t i = 0; i < n; i++) {
    uint64_t out = c->block_out_channels[i];
    for (uint64_t j = 0; j < c->layers_per_block; j++) {
      e += resnet_params(prev, out);
      prev = out;
    }
    if (i + 1 < n) e += 9 * out * out + out;
  }
  e += mid + 2 * top + 9 * top * 2 * L + 2 * L + (c->use_quant_conv ? 4 * L * L + 2 * L : 0);
  *dec = d;
  *enc = e;
}

static void test_random(const char *name, uint64_t expect_total, int run_encoder) {
  char path[4200];
  snprintf(path, sizeof path, "%s/../shared/configs/%s/vae/config.json", SF_TEST_SOURCE_DIR, name);
  sf_diag d = {0};
  sf_json_doc *doc = sf_json_parse_file(path, 1 << 20, &d);
  if (doc == NULL) {
    printf("%s vae random: config not found (%s), skipped\n", name, d.msg);
    return;
  }
  sf_vae_config cfg;
  CHECK_EQ_INT(sf_vae_config_parse(sf_json_root(doc), &cfg, &d), SF_OK);
  sf_json_free(doc);
  uint64_t pd, pe;
  expected_params(&cfg, &pd, &pe);
  if (expect_total) CHECK_EQ_INT(pd + pe, expect_total);

  sf_wsrc *ws = sf_wsrc_random(11, "vae");
  double t0 = now_s();
  sf_vae *v = sf_vae_build(&cfg, ws, run_encoder ? SF_VAE_BOTH : SF_VAE_DECODER, &d);
  printf("%s vae random: built in %.2f s, %llu parameters (decoder %llu, encoder %llu)\n", name, now_s() - t0,
         (unsigned long long)sf_wsrc_param_count(ws), (unsigned long long)pd, (unsigned long long)pe);
  CHECK_MSG(v != NULL, "%s", d.msg);
  CHECK_EQ_INT(sf_wsrc_param_count(ws), pd + (run_encoder ? pe : 0));
  sf_wsrc_destroy(ws);
  if (v == NULL) return;
  CHECK_EQ_INT(sf_vae_scale_factor(v), 8);

  size_t h = 8, w = 8, H = 64, W = 64;
  float *z = malloc(4 * h * w * sizeof *z), *img = malloc(3 * H * W * sizeof *img);
  for (size_t i = 0; i < 4 * h * w; i++) z[i] = (float)cos(0.71 * (double)i);
  pthreadpool_t p2 = pthreadpool_create(2);
  t0 = now_s();
  CHECK_MSG(sf_vae_decode(v, TX(p2), TP(), z, 1, h, w, 0, img, &d) == SF_OK, "%s", d.msg);
  size_t bad = 0;
  double rms = 0;
  for (size_t i = 0; i < 3 * H * W; i++) {
    if (!isfinite(img[i])) bad++;
    rms += (double)img[i] * img[i];
  }
  printf("%s vae random: 8x8 -> 64x64 decode in %.2f s (incl. planning), rms %.3g, %zu non-finite\n", name,
         now_s() - t0, sqrt(rms / (3.0 * H * W)), bad);
  CHECK_EQ_INT(bad, 0);
  CHECK(rms > 0);
  if (run_encoder) {
    float *mean = malloc(4 * h * w * sizeof *mean), *lv = malloc(4 * h * w * sizeof *lv);
    CHECK_MSG(sf_vae_encode(v, TX(p2), TP(), img, 1, H, W, mean, lv, &d) == SF_OK, "%s", d.msg);
    size_t nf = 0;
    for (size_t i = 0; i < 4 * h * w; i++) nf += !isfinite(mean[i]) || !(lv[i] >= -30 && lv[i] <= 20);
    CHECK_EQ_INT(nf, 0);
    free(mean);
    free(lv);
  }
  /* Liveness-based workspace: a 256x256 decode plan needs far less than every intermediate. */
  sf_graph *g = sf_vae_decoder_graph(v);
  sf_shape big = {1, 32, 32, 4};
  CHECK_MSG(sf_graph_prepare(g, TP(), &big, 1, TX(NULL), &d) == SF_OK, "%s", d.msg);
  printf("%s vae decoder 256x256: workspace %.1f MiB vs %.1f MiB for every value\n", name,
         sf_plan_arena_bytes(TP()) / 1048576.0, sf_plan_naive_bytes(TP()) / 1048576.0);
  CHECK(sf_plan_arena_bytes(TP()) * 8 < sf_plan_naive_bytes(TP()));
  /* the plan was made for another shape (and thread count): the model replans for its own */
  float *img2 = malloc(3 * H * W * sizeof *img2);
  CHECK_MSG(sf_vae_decode(v, TX(p2), TP(), z, 1, h, w, 0, img2, &d) == SF_OK, "%s", d.msg);
  CHECK(memcmp(img, img2, 3 * H * W * sizeof *img) == 0);
  free(img2);
  pthreadpool_destroy(p2);
  free(z);
  free(img);
  sf_vae_destroy(v);
}

static void test_posterior_sample(void) {
  float mean[3] = {0.5f, -1.0f, 2.0f}, lv[3] = {0.0f, -2.0f, 1.5f}, noise[3] = {1.0f, 0.25f, -0.75f}, out[3];
  sf_vae_posterior_sample(mean, lv, noise, 3, 0.18215f, out);
  for (int i = 0; i < 3; i++) {
    double want = 0.18215 * (mean[i] + exp(0.5 * lv[i]) * noise[i]);
    CHECK_MSG(fabs(out[i] - want) < 1e-6, "sample %d: %g vs %g", i, out[i], want);
  }
}

int main(void) {
  sf_diag d = {0};
  if (sf_backend_init(&d) != SF_OK) {
    fprintf(stderr, "%s\n", d.msg);
    return 1;
  }
  test_posterior_sample();
  /* SD-1.5's AutoencoderKL has 83,653,863 parameters. */
  if (!sf_test_skip_full_size("SD-1.5 and snapfusion-style VAEs with random weights")) {
    test_random("sd-v1-5", 83653863u, 0);
    test_random("snapfusion-style", 0, 1);
  }
  const char *fx = sf_test_fixtures();
  if (fx == NULL) {
    printf("fixture cases skipped\n");
    if (sf_test_failed) TEST_MAIN_END();
    return TEST_SKIP_EXIT_CODE;
  }
  test_fixtures(fx);
  TEST_MAIN_END();
}
