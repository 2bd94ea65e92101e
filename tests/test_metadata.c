/* The PNG "parameters" text (A1111's infotext): everything needed to make the image again —
 * clip skip, denoising strength, the Karras schedule for Euler as well as DPM++, the decoder
 * (TAESD), "Emphasis: None" when A1111 would read the prompt's brackets as weights, and for a
 * single-file checkpoint its name without extension and A1111's "Model hash" (the first 10 hex
 * digits of the file's SHA-256). */
#include <stdint.h>

#include "core/sha256.h"
#include "snapfusion.h"
#include "test.h"

static sf_context *ctx;
static char root[4096];

static sf_pipeline *load(const char *dir, const char *config, const char *taesd) {
  sf_params *o = NULL;
  sf_pipeline *p = NULL;
  sf_status s = sf_params_create(&o);
  if (s == SF_OK && config) s = sf_params_set_string(o, SF_PARAM_CONFIG_PATH, config);
  if (s == SF_OK && taesd) s = sf_params_set_string(o, SF_PARAM_TAESD_PATH, taesd);
  if (s == SF_OK) s = sf_pipeline_load(ctx, dir, o, &p);
  sf_params_destroy(o);
  CHECK_MSG(s == SF_OK, "load %s: %s", dir, sf_context_last_error(ctx));
  return p;
}

typedef struct opts {
  const char *prompt;
  int clip_skip, karras, syntax, taesd;
  int64_t sampler;
  const sf_image *init;
} opts;

/* The parameters text of a 2-step generation (malloc'ed), NULL on failure. */
static char *params_of(sf_pipeline *p, opts o) {
  sf_params *g = NULL;
  sf_image *img = NULL;
  sf_status s = sf_params_create(&g);
  if (s == SF_OK) s = sf_params_set_string(g, SF_PARAM_PROMPT, o.prompt ? o.prompt : "a cat");
  if (s == SF_OK) s = sf_params_set_int(g, SF_PARAM_STEPS, 2);
  if (s == SF_OK && o.clip_skip) s = sf_params_set_int(g, SF_PARAM_CLIP_SKIP, o.clip_skip);
  if (s == SF_OK && o.karras) s = sf_params_set_int(g, SF_PARAM_KARRAS_SIGMAS, 1);
  if (s == SF_OK && o.sampler) s = sf_params_set_int(g, SF_PARAM_SAMPLER, o.sampler);
  if (s == SF_OK && o.syntax) s = sf_params_set_int(g, SF_PARAM_PROMPT_SYNTAX, o.syntax);
  if (s == SF_OK && o.taesd) s = sf_params_set_int(g, SF_PARAM_DECODER, SF_NET_TAESD_DECODER);
  if (s == SF_OK && o.init) {
    s = sf_params_set_init_image(g, sf_image_pixels(o.init), sf_image_width(o.init), sf_image_height(o.init),
                                 sf_image_stride(o.init));
    if (s == SF_OK) s = sf_params_set_float(g, SF_PARAM_STRENGTH, 0.6);
  }
  if (s == SF_OK) s = sf_generate(p, g, NULL, NULL, &img);
  sf_params_destroy(g);
  CHECK_MSG(s == SF_OK, "generate: %s", sf_context_last_error(ctx));
  if (s != SF_OK) return NULL;
  char *text = strdup(sf_image_parameters(img));
  sf_image_destroy(img);
  return text;
}

static void expect(sf_pipeline *p, opts o, const char *has, const char *has_not) {
  char *t = params_of(p, o);
  if (has) CHECK_MSG(t && strstr(t, has) != NULL, "'%s' not in: %s", has, t ? t : "(none)");
  if (has_not) CHECK_MSG(t && strstr(t, has_not) == NULL, "'%s' in: %s", has_not, t ? t : "(none)");
  free(t);
}

int main(void) {
  const char *e = getenv("SNAPFUSION_FIXTURES");
  snprintf(root, sizeof root, "%s", e && *e ? e : SF_TEST_DEFAULT_FIXTURES);
  char tiny[4300], taesd[4300], file[4300], config[4300];
  snprintf(tiny, sizeof tiny, "%s/public/tiny-sd", root);
  snprintf(taesd, sizeof taesd, "%s/public/taesd", root);
  snprintf(file, sizeof file, "%s/models/single-file/tiny-sd-mini.safetensors", root);
  snprintf(config, sizeof config, "%s/models/tiny-sd-mini", root);
  FILE *probe = fopen(file, "rb");
  if (probe == NULL) {
    printf("SKIPPED: %s not found\n", file);
    return TEST_SKIP_EXIT_CODE;
  }
  CHECK(sf_context_create(&ctx) == SF_OK);
  sf_context_set_int(ctx, SF_PARAM_THREADS, 2);

  sf_pipeline *p = load(tiny, NULL, taesd);
  if (p) {
    expect(p, (opts){0}, "Model: tiny-sd", "Clip skip");
    expect(p, (opts){0}, NULL, "Model hash"); /* a folder has none */
    expect(p, (opts){.clip_skip = 2}, "Clip skip: 2", NULL);
    expect(p, (opts){.clip_skip = 1}, NULL, "Clip skip");
    expect(p, (opts){.sampler = SF_SAMPLER_EULER, .karras = 1}, "Sampler: Euler, Schedule type: Karras", NULL);
    expect(p, (opts){.sampler = SF_SAMPLER_EULER}, "Sampler: Euler,", "Karras");
    expect(p, (opts){.sampler = SF_SAMPLER_DPMPP_2M, .karras = 1}, "Sampler: DPM++ 2M Karras,", NULL);
    expect(p, (opts){.taesd = 1}, "VAE Decoder: TAESD", NULL);
    expect(p, (opts){0}, NULL, "VAE Decoder");
    expect(p, (opts){.prompt = "a (cat:1.2)"}, "Emphasis: None", NULL);
    expect(p, (opts){.prompt = "a (cat:1.2)", .syntax = SF_PROMPT_SYNTAX_A1111}, "a (cat:1.2)\n", "Emphasis");
    expect(p, (opts){.prompt = "a cat"}, NULL, "Emphasis");
    /* img2img records its strength */
    sf_image *init = NULL;
    sf_params *g = NULL;
    sf_params_create(&g);
    sf_params_set_string(g, SF_PARAM_PROMPT, "a cat");
    sf_params_set_int(g, SF_PARAM_STEPS, 1);
    CHECK(sf_generate(p, g, NULL, NULL, &init) == SF_OK);
    sf_params_destroy(g);
    if (init) expect(p, (opts){.init = init}, "Denoising strength: 0.6", NULL);
    sf_image_destroy(init);
    sf_pipeline_destroy(p);
  }

  /* a single file: its name without extension and the SHA-256's first 10 hex digits */
  sf_sha256 h;
  sf_sha256_init(&h);
  unsigned char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, probe)) > 0) sf_sha256_update(&h, buf, n);
  fclose(probe);
  uint8_t digest[32];
  char hex[65], want[64];
  sf_sha256_final(&h, digest);
  sf_sha256_hex(digest, hex);
  snprintf(want, sizeof want, "Model hash: %.10s", hex);
  p = load(file, config, NULL);
  if (p) {
    expect(p, (opts){0}, want, NULL);
    expect(p, (opts){0}, "Model: tiny-sd-mini", "Model: tiny-sd-mini.safetensors");
    expect(p, (opts){0}, want, NULL); /* cached, the same */
    sf_pipeline_destroy(p);
  }
  sf_context_destroy(ctx);
  TEST_MAIN_END();
}
