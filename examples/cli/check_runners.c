/* One runner per fixture component: feed the case's inputs through the public API and
 * compare every output the library computes. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

/* "tiny-sd/unet (variant fp16)" -> dir "tiny-sd/unet", variant "fp16";
 * "taesd/taesd_decoder.safetensors (RANDOM weights)" -> dir "taesd". */
static void parse_model(const check_state *st, const char *model, char *dir, size_t cap, char *variant,
                        size_t vcap) {
  snprintf(dir, cap, "%s", model ? model : "");
  variant[0] = '\0';
  char *paren = strstr(dir, " (");
  if (paren) {
    const char *v = strstr(paren, "(variant ");
    if (v) {
      snprintf(variant, vcap, "%s", v + 9);
      char *close = strchr(variant, ')');
      if (close) *close = '\0';
    }
    *paren = '\0';
  }
  char *dot = strstr(dir, ".safetensors");
  if (dot && !check_is_single_file(st, dir)) {
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
  }
}

static sf_pipeline *case_pipeline(check_run *run, check_result *r) {
  char dir[512], variant[32];
  if (run->state->model_dir) return check_pipeline(run, r, run->state->model_dir, NULL);
  parse_model(run->state, sf_json_as_string(sf_json_get(run->c, "model")), dir, sizeof dir, variant, sizeof variant);
  return check_pipeline(run, r, dir, variant[0] ? variant : NULL);
}

/* ---- generator: PyTorch's CPU generator ---------------------------------------------- */

static void run_generator(check_run *run, check_result *r) {
  const sf_json *params = sf_json_get(run->c, "params");
  uint64_t seed;
  if (!sf_json_as_u64(sf_json_get(params, "seed_as_uint64"), &seed)) {
    check_fail(r, "params.seed_as_uint64 missing");
    return;
  }
  const sf_json *outputs = sf_json_get(run->c, "outputs");
  for (size_t i = 0; outputs && i < outputs->len && r->verdict != CHECK_FAIL; i++) {
    const char *name = outputs->u.obj.keys[i];
    char key[160];
    snprintf(key, sizeof key, "out.%s", name);
    const sf_st_tensor *t = sf_st_find(run->file, key);
    if (t == NULL) {
      check_fail(r, "case file has no %s", key);
      return;
    }
    if (strcmp(name, "mt19937_raw_u32") == 0) continue; /* raw words are not part of the API */
    int scalar = strstr(name, "_scalar") != NULL;
    sf_rng *rng = NULL;
    sf_status s = sf_rng_create(scalar ? SF_RNG_TORCH_CPU_SCALAR : SF_RNG_TORCH_CPU, seed, &rng);
    if (s != SF_OK) {
      check_api_fail(r, "sf_rng_create", s, NULL);
      return;
    }
    size_t n = (size_t)t->numel;
    float *got = malloc((n ? n : 1) * sizeof *got);
    double *got64 = strncmp(name, "randn_f64", 9) == 0 ? malloc((n ? n : 1) * sizeof *got64) : NULL;
    if (got == NULL || (strncmp(name, "randn_f64", 9) == 0 && got64 == NULL)) {
      check_fail(r, "out of memory");
    } else if (got64) {
      s = sf_rng_randn_f64(rng, got64, n);
      if (s == SF_OK) check_compare_f64(run, r, name, got64, n);
    } else {
      s = strncmp(name, "rand_", 5) == 0 ? sf_rng_rand(rng, got, n) : sf_rng_randn(rng, got, n);
      if (s == SF_OK) check_compare(run, r, name, got, n);
    }
    if (s != SF_OK) check_api_fail(r, name, s, NULL);
    free(got);
    free(got64);
    sf_rng_destroy(rng);
  }
}

/* ---- text encoder ------------------------------------------------------------------------ */

static void run_text_encoder(check_run *run, check_result *r) {
  sf_pipeline *pipe = case_pipeline(run, r);
  if (pipe == NULL) return;
  const sf_st_tensor *ids_t = check_tensor_info(run, r, "in.input_ids");
  if (ids_t == NULL) return;
  if (ids_t->ndim != 2) {
    check_fail(r, "in.input_ids is not 2-D");
    return;
  }
  size_t batch = (size_t)ids_t->shape[0], tokens = (size_t)ids_t->shape[1];
  int64_t *ids64 = malloc(batch * tokens * sizeof *ids64);
  int32_t *ids = malloc(batch * tokens * sizeof *ids);
  int64_t hidden = 0;
  sf_status s = sf_pipeline_get_int(pipe, SF_INFO_TEXT_HIDDEN, &hidden);
  float *out = s == SF_OK ? malloc(batch * tokens * (size_t)hidden * sizeof *out) : NULL;
  if (ids64 == NULL || ids == NULL || out == NULL || sf_st_to_i64(ids_t, ids64) != 0) {
    check_fail(r, s != SF_OK ? "text encoder: no hidden size" : "out of memory");
  } else {
    for (size_t i = 0; i < batch * tokens; i++) ids[i] = (int32_t)ids64[i];
    size_t n = batch * tokens * (size_t)hidden;
    /* diffusers' clip_skip=1 (one layer skipped) is A1111's "clip skip 2". */
    static const struct { const char *output; int clip_skip; } outs[] = {{"last_hidden_state", 0}, {"clip_skip_1", 2}};
    for (size_t k = 0; k < 2; k++) {
      if (sf_json_get(sf_json_get(run->c, "outputs"), outs[k].output) == NULL) continue;
      s = sf_encode_ids(pipe, ids, batch, tokens, outs[k].clip_skip, out, n);
      if (s != SF_OK) {
        check_api_fail(r, "sf_encode_ids", s, run->state->ctx);
        break;
      }
      check_compare(run, r, outs[k].output, out, n);
    }
  }
  free(ids64);
  free(ids);
  free(out);
}

/* ---- UNet ------------------------------------------------------------------------------------ */

static void run_unet(check_run *run, check_result *r) {
  sf_pipeline *pipe = case_pipeline(run, r);
  if (pipe == NULL) return;
  const sf_st_tensor *st = check_tensor_info(run, r, "in.sample");
  const sf_st_tensor *et = check_tensor_info(run, r, "in.encoder_hidden_states");
  if (st == NULL || et == NULL) return;
  if (st->ndim != 4 || et->ndim != 3) {
    check_fail(r, "unexpected input ranks");
    return;
  }
  size_t n_sample, n_t, n_text;
  float *sample = check_tensor(run, r, "in.sample", &n_sample);
  size_t batch = (size_t)st->shape[0];
  /* the timestep as float per batch item, or (the models set) one integer timestep for all */
  float *t = NULL;
  if (sf_st_find(run->file, "in.timestep_f32") == NULL && sf_st_find(run->file, "in.timestep") != NULL) {
    float *t1 = check_tensor(run, r, "in.timestep", &n_t);
    t = t1 && n_t == 1 ? malloc(batch * sizeof *t) : NULL;
    for (size_t i = 0; t && i < batch; i++) t[i] = t1[0];
    if (t) n_t = batch;
    else t = t1, t1 = NULL;
    free(t1);
  } else {
    t = check_tensor(run, r, "in.timestep_f32", &n_t);
  }
  float *text = check_tensor(run, r, "in.encoder_hidden_states", &n_text);
  float *out = malloc(n_sample * sizeof *out);
  if (sample && t && text && out) {
    if (n_t != batch) {
      check_fail(r, "the timestep input has %zu values for batch %zu", n_t, batch);
    } else {
      sf_status s = sf_unet_predict(pipe, sample, batch, (size_t)st->shape[2], (size_t)st->shape[3], t, text,
                                    (size_t)et->shape[1], out);
      if (s != SF_OK) check_api_fail(r, "sf_unet_predict", s, run->state->ctx);
      else check_compare(run, r, "noise_pred", out, n_sample);
    }
  } else if (r->verdict != CHECK_FAIL) {
    check_fail(r, "out of memory");
  }
  free(sample);
  free(t);
  free(text);
  free(out);
}

/* ---- decoders and encoders ------------------------------------------------------------------ */

static void run_decoder(check_run *run, check_result *r, sf_network net, const char *in_name, uint32_t flags) {
  sf_pipeline *pipe = case_pipeline(run, r);
  if (pipe == NULL) return;
  char key[64];
  snprintf(key, sizeof key, "in.%s", in_name);
  const sf_st_tensor *zt = check_tensor_info(run, r, key);
  if (zt == NULL) return;
  if (zt->ndim != 4) {
    check_fail(r, "%s is not 4-D", key);
    return;
  }
  size_t b = (size_t)zt->shape[0], h = (size_t)zt->shape[2], w = (size_t)zt->shape[3];
  float *z = check_tensor(run, r, key, NULL);
  size_t n_img = b * 3 * 8 * h * 8 * w;
  float *img = malloc(n_img * sizeof *img);
  if (z && img) {
    sf_status s = sf_decode_latents(pipe, net, z, b, h, w, flags, img);
    if (s != SF_OK) check_api_fail(r, "sf_decode_latents", s, run->state->ctx);
    else check_compare(run, r, "image", img, n_img);
  } else if (r->verdict != CHECK_FAIL) {
    check_fail(r, "out of memory");
  }
  free(z);
  free(img);
}

static void run_vae_decoder(check_run *run, check_result *r) {
  /* The fixture's z is already divided by the scaling factor. */
  run_decoder(run, r, SF_NET_VAE_DECODER, "z", SF_LATENTS_UNSCALED);
}

static void run_taesd_decoder(check_run *run, check_result *r) {
  run_decoder(run, r, SF_NET_TAESD_DECODER, "latents", SF_IMAGE_RAW);
}

static void run_encoder(check_run *run, check_result *r, sf_network net, uint32_t flags, const char *mean_name,
                        const char *logvar_name) {
  sf_pipeline *pipe = case_pipeline(run, r);
  if (pipe == NULL) return;
  const sf_st_tensor *it = check_tensor_info(run, r, "in.image");
  if (it == NULL) return;
  if (it->ndim != 4 || it->shape[1] != 3) {
    check_fail(r, "in.image is not [b,3,h,w]");
    return;
  }
  size_t b = (size_t)it->shape[0], H = (size_t)it->shape[2], W = (size_t)it->shape[3];
  int64_t ch = 4;
  sf_pipeline_get_int(pipe, SF_INFO_LATENT_CHANNELS, &ch);
  size_t n_lat = b * (size_t)ch * (H / 8) * (W / 8);
  float *img = check_tensor(run, r, "in.image", NULL);
  float *mean = malloc(n_lat * sizeof *mean);
  float *logvar = logvar_name ? malloc(n_lat * sizeof *logvar) : NULL;
  if (img && mean && (!logvar_name || logvar)) {
    sf_status s = sf_encode_image(pipe, net, img, b, H, W, flags, mean, logvar);
    if (s != SF_OK) {
      check_api_fail(r, "sf_encode_image", s, run->state->ctx);
    } else {
      check_compare(run, r, mean_name, mean, n_lat);
      if (logvar_name) check_compare(run, r, logvar_name, logvar, n_lat);
    }
  } else if (r->verdict != CHECK_FAIL) {
    check_fail(r, "out of memory");
  }
  free(img);
  free(mean);
  free(logvar);
}

static void run_vae_encoder(check_run *run, check_result *r) {
  run_encoder(run, r, SF_NET_VAE_ENCODER, SF_LATENTS_UNSCALED, "mean", "logvar");
}

static void run_taesd_encoder(check_run *run, check_result *r) {
  run_encoder(run, r, SF_NET_TAESD_ENCODER, SF_IMAGE_RAW, "latents", NULL);
}

/* ---- tokenizer ---------------------------------------------------------------------------------- */

static void run_tokenizer(check_run *run, check_result *r) {
  char dir[512], variant[32], path[4200];
  parse_model(run->state, sf_json_as_string(sf_json_get(run->c, "model")), dir, sizeof dir, variant, sizeof variant);
  sf_pipeline *pipe = check_pipeline(run, r, dir, NULL);
  if (pipe == NULL) return;
  snprintf(path, sizeof path, "%s/%s", run->state->set_dir, sf_json_as_string(sf_json_get(run->c, "file")));
  sf_diag d = {0};
  sf_json_doc *doc = sf_json_parse_file(path, 64u << 20, &d);
  if (doc == NULL) {
    check_fail(r, "%s", d.msg);
    return;
  }
  const sf_json *cases = sf_json_get(sf_json_root(doc), "cases");
  size_t n_ok = 0, n = cases ? cases->len : 0;
  for (size_t i = 0; i < n; i++) {
    const sf_json *c = sf_json_at(cases, i);
    const sf_json *prompt = sf_json_get(c, "prompt");
    const sf_json *want = sf_json_get(c, "input_ids");
    int64_t want_untr = -1;
    sf_json_as_i64(sf_json_get(c, "num_tokens_untruncated"), &want_untr);
    if (prompt == NULL || prompt->type != SF_JSON_STRING || want == NULL || want->len > 77) {
      check_fail(r, "tokenizer case %zu is malformed", i);
      break;
    }
    if (strlen(prompt->u.str) != prompt->len) {
      check_fail(r, "tokenizer case %zu: prompt contains NUL, not representable in the C API", i);
      continue;
    }
    int32_t ids[77];
    size_t untr = 0;
    sf_status s = sf_tokenize(pipe, prompt->u.str, ids, 77, &untr);
    if (s != SF_OK) {
      check_api_fail(r, "sf_tokenize", s, run->state->ctx);
      break;
    }
    int same = want->len == 77 && (want_untr < 0 || (size_t)want_untr == untr);
    for (size_t k = 0; same && k < 77; k++) {
      int64_t v;
      same = sf_json_as_i64(sf_json_at(want, k), &v) && v == ids[k];
    }
    if (same) n_ok++;
    else check_fail(r, "case '%s' differs", sf_json_as_string(sf_json_get(c, "name")));
  }
  r->outputs += n;
  if (r->verdict == CHECK_FAIL && strlen(r->reason) + 40 < sizeof r->reason)
    snprintf(r->reason + strlen(r->reason), sizeof r->reason - strlen(r->reason), " (%zu/%zu prompts exact)", n_ok, n);
  sf_json_free(doc);
}

const check_runner check_runners[] = {
    {"generator", run_generator},
    {"tokenizer", run_tokenizer},
    {"text_encoder", run_text_encoder},
    {"unet", run_unet},
    {"vae_decoder", run_vae_decoder},
    {"vae_encoder", run_vae_encoder},
    {"taesd_decoder", run_taesd_decoder},
    {"taesd_encoder", run_taesd_encoder},
    {"scheduler", check_run_scheduler},
    {"pipeline", check_run_pipeline},
    {NULL, NULL},
};
