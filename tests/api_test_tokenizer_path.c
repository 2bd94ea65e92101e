/* SF_PARAM_TOKENIZER_PATH through the public API: a config-only folder (as in
 * ../shared/configs) lists a tokenizer it does not ship; with random weights it loads only
 * when a tokenizer folder is named, which then tokenizes like the real CLIP vocabulary.
 * A named tokenizer also replaces one the folder has. Without the text encoder among the
 * requested networks the missing tokenizer is not needed. */
#define _XOPEN_SOURCE 700 /* mkdtemp */
#include <snapfusion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"

static sf_context *ctx;
static char root[64];
static char path_buf[4400];

static const char *at(const char *rel) {
  snprintf(path_buf, sizeof path_buf, "%s/%s", root, rel);
  return path_buf;
}

static int message_has(const char *word) { return strstr(sf_last_error(), word) != NULL; }

static sf_pipeline *load_networks(const char *dir, const char *tokenizer, int random, int64_t networks,
                                  sf_status expect) {
  sf_params *opt = NULL;
  CHECK(sf_params_create(&opt) == SF_OK);
  if (networks) CHECK(sf_params_set_int(opt, SF_PARAM_COMPONENTS, networks) == SF_OK);
  if (tokenizer) CHECK(sf_params_set_string(opt, SF_PARAM_TOKENIZER_PATH, tokenizer) == SF_OK);
  if (random) CHECK(sf_params_set_int(opt, SF_PARAM_RANDOM_WEIGHTS, 1) == SF_OK);
  sf_pipeline *p = NULL;
  sf_status s = sf_pipeline_load(ctx, dir, opt, &p);
  CHECK_MSG(s == expect, "load %s (tokenizer %s): %s, want %s: %s", dir, tokenizer ? tokenizer : "-",
            sf_status_string(s), sf_status_string(expect), sf_last_error());
  CHECK((p != NULL) == (s == SF_OK));
  sf_params_destroy(opt);
  return p;
}

static sf_pipeline *load(const char *dir, const char *tokenizer, int random, sf_status expect) {
  return load_networks(dir, tokenizer, random, 0, expect);
}

static void expect_cat_ids(sf_pipeline *p) {
  int32_t ids[77];
  size_t untruncated = 0;
  CHECK_MSG(sf_tokenize(p, "a photo of a cat", ids, 77, &untruncated) == SF_OK, "%s", sf_last_error());
  /* The CLIP BPE ids of these words, as OpenAI's vocabulary numbers them. */
  static const int32_t want[] = {49406, 320, 1125, 539, 320, 2368, 49407};
  CHECK(untruncated == 7);
  for (size_t i = 0; i < 7; i++) CHECK_MSG(ids[i] == want[i], "id %zu: %d, want %d", i, ids[i], want[i]);
  for (size_t i = 7; i < 77; i++) CHECK(ids[i] == 49407);
}

int main(void) {
  const char *fx = sf_test_fixtures();
  if (fx == NULL) return TEST_SKIP_EXIT_CODE;
  char tiny[4200], tokenizer[4200], te_config[4300], vae_config[4300];
  snprintf(tiny, sizeof tiny, "%s/public/tiny-sd", fx);
  snprintf(tokenizer, sizeof tokenizer, "%s/public/tokenizer", fx);
  snprintf(te_config, sizeof te_config, "%s/text_encoder/config.json", tiny);
  snprintf(vae_config, sizeof vae_config, "%s/vae/config.json", tiny);
  CHECK(sf_context_create(&ctx) == SF_OK);
  CHECK(sf_context_set_int(ctx, SF_PARAM_THREADS, 1) == SF_OK);

  /* A config-only folder: model_index.json lists a tokenizer folder that is not there. */
  snprintf(root, sizeof root, "/tmp/sf_tokpath_XXXXXX");
  CHECK(mkdtemp(root) != NULL);
  FILE *f = fopen(at("model_index.json"), "w");
  CHECK(f != NULL);
  if (f) {
    fputs("{\"_class_name\": \"StableDiffusionPipeline\",\n"
          " \"text_encoder\": [\"transformers\", \"CLIPTextModel\"],\n"
          " \"vae\": [\"diffusers\", \"AutoencoderKL\"],\n"
          " \"tokenizer\": [\"transformers\", \"CLIPTokenizer\"]}\n",
          f);
    fclose(f);
  }
  CHECK(mkdir(at("text_encoder"), 0700) == 0);
  CHECK(sf_test_copy_file(te_config, at("text_encoder/config.json")));
  CHECK(mkdir(at("vae"), 0700) == 0);
  CHECK(sf_test_copy_file(vae_config, at("vae/config.json")));

  sf_pipeline *p = load(root, NULL, 1, SF_ERR_IO);
  CHECK_MSG(message_has("tokenizer/: component folder is missing") && message_has("SF_PARAM_TOKENIZER_PATH"),
            "%s", sf_last_error());
  /* Only the VAE decoder: no prompt is ever encoded, so the missing tokenizer does not matter. */
  p = load_networks(root, NULL, 1, SF_NET_VAE_DECODER, SF_OK);
  if (p) {
    int64_t built = 0;
    CHECK(sf_pipeline_get_int(p, SF_INFO_NETWORKS, &built) == SF_OK && built == SF_NET_VAE_DECODER);
    int32_t ids[77];
    CHECK(sf_tokenize(p, "a cat", ids, 77, NULL) != SF_OK);
  }
  sf_pipeline_destroy(p);
  p = load_networks(root, NULL, 1, SF_NET_TEXT_ENCODER | SF_NET_VAE_DECODER, SF_ERR_IO);
  CHECK_MSG(message_has("SF_PARAM_TOKENIZER_PATH"), "%s", sf_last_error());
  p = load(root, tokenizer, 1, SF_OK);
  if (p) {
    expect_cat_ids(p);
    /* The random-weight text encoder runs on the borrowed tokenizer's ids. */
    int64_t tokens = 0, hidden = 0;
    CHECK(sf_pipeline_get_int(p, SF_INFO_TEXT_TOKENS, &tokens) == SF_OK && tokens == 77);
    CHECK(sf_pipeline_get_int(p, SF_INFO_TEXT_HIDDEN, &hidden) == SF_OK && hidden > 0);
    size_t count = (size_t)(tokens * hidden);
    float *emb = malloc(count * sizeof *emb);
    CHECK(emb != NULL);
    if (emb) {
      CHECK_MSG(sf_encode_prompt(p, "a photo of a cat", 0, emb, count) == SF_OK, "%s", sf_last_error());
      int finite = 1;
      for (size_t i = 0; i < count; i++) finite &= emb[i] == emb[i];
      CHECK(finite);
    }
    free(emb);
    sf_pipeline_destroy(p);
  }
  /* A tokenizer path that is not a tokenizer folder fails, naming the option. */
  p = load(root, root, 1, SF_ERR_IO);
  CHECK_MSG(message_has("SF_PARAM_TOKENIZER_PATH"), "%s", sf_last_error());
  sf_pipeline_destroy(p);

  /* A folder with its own tokenizer: the named one is used instead (same vocabulary here,
   * so the ids agree), and the folder's real weights still load. */
  p = load(tiny, tokenizer, 0, SF_OK);
  if (p) expect_cat_ids(p);
  sf_pipeline_destroy(p);

  remove(at("vae/config.json"));
  rmdir(at("vae"));
  remove(at("text_encoder/config.json"));
  rmdir(at("text_encoder"));
  remove(at("model_index.json"));
  rmdir(root);
  sf_context_destroy(ctx);
  TEST_MAIN_END();
}
