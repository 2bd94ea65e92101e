/* TAESD: the fixture decode/encode through the raw taesd.py files, the same weights renamed
 * to a diffusers AutoencoderTiny folder, public vs raw ranges, thread determinism, partial
 * builds, checkpoint mismatches and the configs/taesd architecture with random weights. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/context.h"
#include "fixture_util.h"
#include "graph/wsrc.h"
#include "io/model_folder.h"
#include "models/taesd.h"
#include "test.h"
#include "test_exec.h"

/* ---- writing modified checkpoints ---------------------------------------------------------- */

typedef struct out_tensor {
  char name[256];
  const sf_st_tensor *src;
} out_tensor;

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

/* Appends w's tensors to ts (from index *k), renamed "<prefix><index + shift><rest>", and
 * skipping `drop`. */
static void add_renamed(out_tensor *ts, size_t *k, const sf_weights *w, const char *prefix, int shift,
                        const char *drop) {
  for (size_t i = 0; i < sf_weights_count(w); i++) {
    const sf_st_tensor *t = sf_weights_at(w, i);
    if (drop && strcmp(t->name, drop) == 0) continue;
    char *rest;
    long idx = strtol(t->name, &rest, 10);
    ts[*k].src = t;
    snprintf(ts[*k].name, sizeof ts[*k].name, "%s%ld%s", prefix, idx + shift, rest);
    (*k)++;
  }
}

/* ---- helpers -------------------------------------------------------------------------------- */

static int report(const sf_json *c, const char *label, const char *out, const float *got, const float *ref, size_t n) {
  fx_result r = {0, 0, 0, 0};
  int ok = fx_compare(c, out, got, ref, n, &r);
  printf("%-44s max err %.3g, worst ratio %.3f, %zu bad of %zu\n", label, r.max_abs, r.worst_ratio, r.n_bad, n);
  return ok;
}

static void dims_of(const sf_safetensors *st, const char *key, size_t dims[4]) {
  const sf_st_tensor *t = sf_st_find(st, key);
  for (int i = 0; i < 4; i++) dims[i] = (t && t->ndim == 4) ? (size_t)t->shape[i] : 0;
}

typedef struct case_data {
  const sf_json *c;
  sf_safetensors *st;
  size_t in_dims[4], out_dims[4];
  float *in, *ref;
  size_t n_in, n_out;
} case_data;

static int load_case(const fx_manifest *m, const char *name, const char *in, const char *out, const char *component,
                     case_data *cd) {
  memset(cd, 0, sizeof *cd);
  cd->c = fx_case(m, name);
  if (cd->c == NULL) return 0;
  CHECK(strcmp(sf_json_as_string(sf_json_get(cd->c, "component")), component) == 0);
  cd->st = fx_case_open(m, cd->c);
  if (cd->st == NULL) return 0;
  char key[64];
  snprintf(key, sizeof key, "in.%s", in);
  dims_of(cd->st, key, cd->in_dims);
  cd->in = fx_f32(cd->st, key, &cd->n_in);
  snprintf(key, sizeof key, "out.%s", out);
  dims_of(cd->st, key, cd->out_dims);
  cd->ref = fx_f32(cd->st, key, &cd->n_out);
  return cd->in != NULL && cd->ref != NULL;
}

static void free_case(case_data *cd) {
  free(cd->in);
  free(cd->ref);
  sf_st_close(cd->st);
}

/* Runs both fixture cases on t (raw ranges); returns the decoded and encoded outputs. */
static void run_cases(sf_taesd *t, const case_data *dec, const case_data *enc, pthreadpool_t pool, float *img,
                      float *lat, const char *label) {
  sf_diag d = {0};
  char l[128];
  if (sf_taesd_parts(t) & SF_TAESD_DECODER) {
    CHECK_MSG(sf_taesd_decode(t, TX(pool), TP(), dec->in, dec->in_dims[0], dec->in_dims[2], dec->in_dims[3], SF_TAESD_RAW, img, &d) ==
                  SF_OK,
              "%s", d.msg);
    snprintf(l, sizeof l, "taesd/decode (%s)", label);
    CHECK(report(dec->c, l, "image", img, dec->ref, dec->n_out));
  }
  if (sf_taesd_parts(t) & SF_TAESD_ENCODER) {
    CHECK_MSG(sf_taesd_encode(t, TX(pool), TP(), enc->in, enc->in_dims[0], enc->in_dims[2], enc->in_dims[3], SF_TAESD_RAW, lat, &d) ==
                  SF_OK,
              "%s", d.msg);
    snprintf(l, sizeof l, "taesd/encode (%s)", label);
    CHECK(report(enc->c, l, "latents", lat, enc->ref, enc->n_out));
  }
}

/* ---- fixtures --------------------------------------------------------------------------------- */

static void test_fixtures(const char *fx) {
  fx_manifest m;
  CHECK(fx_manifest_open(&m, fx));
  case_data dec, enc;
  int ok = load_case(&m, "taesd/decode", "latents", "image", "taesd_decoder", &dec);
  ok &= load_case(&m, "taesd/encode", "image", "latents", "taesd_encoder", &enc);
  CHECK(ok);
  if (!ok) {
    free_case(&dec);
    free_case(&enc);
    fx_manifest_close(&m);
    return;
  }
  CHECK(dec.out_dims[2] == 8 * dec.in_dims[2] && dec.out_dims[3] == 8 * dec.in_dims[3]);
  CHECK(enc.in_dims[2] == 8 * enc.out_dims[2] && enc.in_dims[3] == 8 * enc.out_dims[3]);

  char dpath[4200], epath[4200];
  snprintf(dpath, sizeof dpath, "%s/public/taesd/taesd_decoder.safetensors", fx);
  snprintf(epath, sizeof epath, "%s/public/taesd/taesd_encoder.safetensors", fx);
  sf_diag d = {0};
  sf_taesd *t = sf_taesd_open_files(dpath, epath, &d);
  CHECK_MSG(t != NULL, "%s", d.msg);
  float *img = malloc(dec.n_out * sizeof *img), *img2 = malloc(dec.n_out * sizeof *img);
  float *lat = malloc(enc.n_out * sizeof *lat), *lat2 = malloc(enc.n_out * sizeof *lat);
  pthreadpool_t p2 = pthreadpool_create(2);
  if (t != NULL) {
    CHECK_EQ_INT(sf_taesd_get_config(t)->latent_channels, 4);
    run_cases(t, &dec, &enc, NULL, img, lat, "taesd.py files, 1 thread");
    run_cases(t, &dec, &enc, p2, img2, lat2, "taesd.py files, 2 threads");
    CHECK_MSG(memcmp(img, img2, dec.n_out * sizeof *img) == 0, "decode: 1 vs 2 threads differ");
    CHECK_MSG(memcmp(lat, lat2, enc.n_out * sizeof *lat) == 0, "encode: 1 vs 2 threads differ");

    /* Public ranges: decoder output mapped to [-1, 1] exactly as x*2-1; encoder input
     * [-1, 1] mapped back to [0, 1]. */
    CHECK_EQ_INT(sf_taesd_decode(t, TX(NULL), TP(), dec.in, dec.in_dims[0], dec.in_dims[2], dec.in_dims[3], 0, img2, &d),
                 SF_OK);
    sf_diag pd = {0};
    CHECK_MSG(sf_plan_check(sf_taesd_decoder_graph(t), TP(), &pd) == 0, "%s", pd.msg);
    size_t mism = 0;
    for (size_t i = 0; i < dec.n_out; i++) mism += img2[i] != img[i] * 2.0f - 1.0f;
    CHECK_EQ_INT(mism, 0);
    float *pm = malloc(enc.n_in * sizeof *pm);
    for (size_t i = 0; i < enc.n_in; i++) pm[i] = enc.in[i] * 2.0f - 1.0f;
    CHECK_EQ_INT(sf_taesd_encode(t, TX(NULL), TP(), pm, enc.in_dims[0], enc.in_dims[2], enc.in_dims[3], 0, lat2, &d), SF_OK);
    CHECK(report(enc.c, "taesd/encode (image given in [-1, 1])", "latents", lat2, enc.ref, enc.n_out));
    free(pm);
    CHECK_MSG(sf_plan_check(sf_taesd_encoder_graph(t), TP(), &pd) == 0, "%s", pd.msg);
  }

  sf_diag e = {0};
  sf_weights *wd = sf_weights_open_file(dpath, &e), *we = sf_weights_open_file(epath, &e);
  CHECK_MSG(wd && we, "%s", e.msg);
  char tmpl[] = "/tmp/sf_test_taesd_XXXXXX";
  char *tmp = mkdtemp(tmpl);
  CHECK(tmp != NULL);
  if (t && wd && we && tmp) {
    size_t n = sf_weights_count(wd) + sf_weights_count(we);
    out_tensor *ts = calloc(n + 1, sizeof *ts);
    char path[4200], cfgsrc[4200], cfgdst[4200];

    /* The same weights as a diffusers AutoencoderTiny folder: decoder.layers.(N-1),
     * encoder.layers.N. Same weights, same graph: bit-identical outputs. */
    size_t k = 0;
    add_renamed(ts, &k, wd, "decoder.layers.", -1, NULL);
    add_renamed(ts, &k, we, "encoder.layers.", 0, NULL);
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", tmp);
    CHECK(write_safetensors(path, ts, k));
    snprintf(cfgsrc, sizeof cfgsrc, "%s/../shared/configs/taesd/config.json", SF_TEST_SOURCE_DIR);
    snprintf(cfgdst, sizeof cfgdst, "%s/config.json", tmp);
    CHECK(sf_test_copy_file(cfgsrc, cfgdst));
    sf_taesd *td = sf_taesd_open_dir(tmp, SF_TAESD_BOTH, &e);
    CHECK_MSG(td != NULL, "%s", e.msg);
    if (td) {
      run_cases(td, &dec, &enc, p2, img2, lat2, "diffusers folder");
      CHECK_MSG(memcmp(img, img2, dec.n_out * sizeof *img) == 0, "diffusers naming decodes differently");
      CHECK_MSG(memcmp(lat, lat2, enc.n_out * sizeof *lat) == 0, "diffusers naming encodes differently");
    }
    sf_taesd_destroy(td);
    /* One half of the diffusers checkpoint: the other half is excused, not reported unused. */
    td = sf_taesd_open_dir(tmp, SF_TAESD_DECODER, &e);
    CHECK_MSG(td != NULL, "%s", e.msg);
    if (td) {
      CHECK_EQ_INT(sf_taesd_encode(td, TX(NULL), TP(), enc.in, 1, enc.in_dims[2], enc.in_dims[3], SF_TAESD_RAW, lat2, &e),
                   SF_ERR_BAD_STATE);
      sf_diag_clear(&e);
    }
    sf_taesd_destroy(td);
    td = sf_taesd_open_dir(tmp, SF_TAESD_ENCODER, &e);
    CHECK_MSG(td != NULL, "%s", e.msg);
    sf_taesd_destroy(td);
    remove(path);
    remove(cfgdst);

    /* A missing tensor and an unused one are named. */
    const char *missing = "13.conv.2.weight";
    k = 0;
    add_renamed(ts, &k, wd, "", 0, missing);
    snprintf(path, sizeof path, "%s/dec_missing.safetensors", tmp);
    CHECK(write_safetensors(path, ts, k));
    sf_diag_clear(&e);
    sf_taesd *bad = sf_taesd_open_files(path, NULL, &e);
    CHECK(bad == NULL);
    CHECK_EQ_INT(e.status, SF_ERR_BAD_MODEL);
    CHECK_MSG(strstr(e.msg, missing) != NULL, "message does not name the tensor: %s", e.msg);
    printf("missing tensor: %s\n", e.msg);
    sf_taesd_destroy(bad);
    remove(path);

    k = 0;
    add_renamed(ts, &k, we, "", 0, NULL);
    ts[k].src = sf_weights_at(we, 0);
    snprintf(ts[k].name, sizeof ts[k].name, "15.weight");
    k++;
    snprintf(path, sizeof path, "%s/enc_extra.safetensors", tmp);
    CHECK(write_safetensors(path, ts, k));
    sf_diag_clear(&e);
    bad = sf_taesd_open_files(NULL, path, &e);
    CHECK(bad == NULL);
    CHECK_EQ_INT(e.status, SF_ERR_BAD_MODEL);
    CHECK_MSG(strstr(e.msg, "15.weight") != NULL, "message does not name the unused tensor: %s", e.msg);
    printf("unused tensor: %s\n", e.msg);
    sf_taesd_destroy(bad);
    remove(path);
    free(ts);
    rmdir(tmp);
  }
  sf_weights_close(wd);
  sf_weights_close(we);

  /* Random weights in the configs/taesd architecture have exactly the fixture files' size. */
  {
    char cpath[4200];
    snprintf(cpath, sizeof cpath, "%s/../shared/configs/taesd/config.json", SF_TEST_SOURCE_DIR);
    sf_json_doc *doc = sf_json_parse_file(cpath, 1 << 20, &e);
    sf_taesd_config cfg;
    if (doc && sf_taesd_config_parse(sf_json_root(doc), &cfg, &e) == SF_OK) {
      sf_wsrc *rd = sf_wsrc_random(3, "taesd"), *re = sf_wsrc_random(4, "taesd");
      sf_taesd *rt = sf_taesd_build(&cfg, SF_TAESD_NAMES_DIFFUSERS, rd, re, &e);
      CHECK_MSG(rt != NULL, "%s", e.msg);
      sf_weights_stats sd, se;
      sf_weights *w1 = sf_weights_open_file(dpath, &e), *w2 = sf_weights_open_file(epath, &e);
      if (w1 && w2) {
        sf_weights_get_stats(w1, &sd);
        sf_weights_get_stats(w2, &se);
        CHECK_EQ_INT(sf_wsrc_param_count(rd), sd.n_params);
        CHECK_EQ_INT(sf_wsrc_param_count(re), se.n_params);
      }
      sf_weights_close(w1);
      sf_weights_close(w2);
      sf_wsrc_destroy(rd);
      sf_wsrc_destroy(re);
      sf_taesd_destroy(rt);
    }
    sf_json_free(doc);
  }

  pthreadpool_destroy(p2);
  sf_taesd_destroy(t);
  free(img);
  free(img2);
  free(lat);
  free(lat2);
  free_case(&dec);
  free_case(&enc);
  fx_manifest_close(&m);
}

/* ---- no fixtures needed ---------------------------------------------------------------------- */

static void test_random_config(void) {
  char path[4200];
  snprintf(path, sizeof path, "%s/../shared/configs/taesd/config.json", SF_TEST_SOURCE_DIR);
  sf_diag d = {0};
  sf_json_doc *doc = sf_json_parse_file(path, 1 << 20, &d);
  if (doc == NULL) {
    printf("taesd random: config not found (%s), skipped\n", d.msg);
    return;
  }
  sf_taesd_config cfg;
  CHECK_EQ_INT(sf_taesd_config_parse(sf_json_root(doc), &cfg, &d), SF_OK);
  sf_json_free(doc);
  sf_taesd_config def;
  sf_taesd_config_default(&def, 4);
  CHECK(memcmp(&cfg, &def, sizeof cfg) == 0); /* configs/taesd is taesd.py's architecture */

  sf_wsrc *ws = sf_wsrc_random(5, "taesd");
  sf_taesd *t = sf_taesd_build(&cfg, SF_TAESD_NAMES_DIFFUSERS, ws, ws, &d);
  CHECK_MSG(t != NULL, "%s", d.msg);
  sf_wsrc_destroy(ws);
  if (t == NULL) return;
  CHECK_EQ_INT(sf_taesd_scale_factor(t, 0), 8);
  CHECK_EQ_INT(sf_taesd_scale_factor(t, 1), 8);
  /* non-square 8x12 latent -> 64x96 image, and back */
  size_t h = 8, w = 12;
  float *z = malloc(2 * 4 * h * w * sizeof *z), *img = malloc(2 * 3 * 64 * 96 * sizeof *img);
  float *lat = malloc(2 * 4 * h * w * sizeof *lat);
  for (size_t i = 0; i < 2 * 4 * h * w; i++) z[i] = 3.0f * (float)sin(0.3 * (double)i);
  CHECK_MSG(sf_taesd_decode(t, TX(NULL), TP(), z, 2, h, w, 0, img, &d) == SF_OK, "%s", d.msg);
  CHECK_MSG(sf_taesd_encode(t, TX(NULL), TP(), img, 2, 64, 96, 0, lat, &d) == SF_OK, "%s", d.msg);
  size_t bad = 0;
  double rms = 0;
  for (size_t i = 0; i < 2 * 3 * 64 * 96; i++) {
    bad += !isfinite(img[i]);
    rms += (double)img[i] * img[i];
  }
  for (size_t i = 0; i < 2 * 4 * h * w; i++) bad += !isfinite(lat[i]);
  printf("taesd random: 8x12 decode rms %.3g, %zu non-finite values\n", sqrt(rms / (2.0 * 3 * 64 * 96)), bad);
  CHECK_EQ_INT(bad, 0);
  CHECK(rms > 0);
  sf_diag e = {0};
  CHECK_EQ_INT(sf_taesd_encode(t, TX(NULL), TP(), img, 1, 60, 96, 0, lat, &e), SF_ERR_INVALID_ARGUMENT);

  /* cancellation is honoured */
  atomic_int cancel = 1;
  sf_diag_clear(&e);
  CHECK_EQ_INT(sf_taesd_decode(t, TX_CANCEL(NULL, &cancel), TP(), z, 2, h, w, 0, img, &e), SF_ERR_CANCELLED);
  free(z);
  free(img);
  free(lat);
  sf_taesd_destroy(t);

  const char *bad_cfgs[][2] = {
      {"{\"act_fn\":\"silu\"}", "unsupported: act_fn=silu"},
      {"{\"upsample_fn\":\"bilinear\"}", "unsupported: upsample_fn=bilinear"},
      {"{\"_class_name\":\"AutoencoderKL\"}", "unsupported: _class_name=AutoencoderKL"},
      {"{\"num_decoder_blocks\":[3,3,1]}", "decoder_block_out_channels has 4 entries"},
  };
  for (size_t i = 0; i < sizeof bad_cfgs / sizeof *bad_cfgs; i++) {
    sf_diag_clear(&e);
    sf_json_doc *cd = sf_json_parse(bad_cfgs[i][0], strlen(bad_cfgs[i][0]), &e);
    sf_taesd_config c;
    sf_status s = sf_taesd_config_parse(sf_json_root(cd), &c, &e);
    CHECK_EQ_INT(s, i < 3 ? SF_ERR_UNSUPPORTED : SF_ERR_BAD_MODEL);
    CHECK_MSG(strstr(e.msg, bad_cfgs[i][1]) != NULL, "'%s' lacks '%s'", e.msg, bad_cfgs[i][1]);
    sf_json_free(cd);
  }
}

int main(void) {
  sf_diag d = {0};
  if (sf_backend_init(&d) != SF_OK) {
    fprintf(stderr, "%s\n", d.msg);
    return 1;
  }
  if (!sf_test_skip_full_size("the configs/taesd architecture with random weights")) test_random_config();
  const char *fx = sf_test_fixtures();
  if (fx == NULL) {
    printf("fixture cases skipped\n");
    if (sf_test_failed) TEST_MAIN_END();
    return TEST_SKIP_EXIT_CODE;
  }
  test_fixtures(fx);
  TEST_MAIN_END();
}
