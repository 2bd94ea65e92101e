/* Model-folder configs through the public API: the first input byte picks a file of tiny-sd,
 * the rest replaces it, and the folder is loaded from an sf_files set with tiny-sd's real
 * weights (borrowed):
 *   0: unet/config.json          (SF_PARAM_COMPONENTS = SF_NET_UNET)
 *   1: vae/config.json           (SF_NET_VAE_DECODER | SF_NET_VAE_ENCODER)
 *   2: text_encoder/config.json  (SF_NET_TEXT_ENCODER)
 *   3: model_index.json          (every network)
 * The text encoder needs a tokenizer: a small byte-level one (512 byte symbols and the two
 * specials) stands in for the real 1.5 MB files, whose parsing would be most of the cost.
 *
 * Invariants: a config that does not match the weights is refused with a known status and a
 * message, never a crash; every network that loads runs once on a small input. */
#include "fuzz_common.h"

static sf_context *ctx;
static sf_params *options[4];
static char *vocab;
static size_t vocab_len;
static const char merges[] = "#version: 0.2\n";

/* vocab.json of a byte-level BPE vocabulary without merges, ids as CLIP's SimpleTokenizer gives
 * them (bytes_to_unicode's order, the same with </w>, then the specials). */
static void make_vocab(void) {
  size_t cap = 65536, n = 0;
  vocab = malloc(cap);
  if (vocab == NULL) fz_die("out of memory");
  int order[256], k = 0;
  for (int b = 0; b < 256; b++)
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174) order[k++] = b;
  int extra = 0, cp_of[256];
  for (int b = 0; b < 256; b++) cp_of[b] = b;
  for (int b = 0; b < 256; b++)
    if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174)) {
      order[k++] = b;
      cp_of[b] = 256 + extra++;
    }
  n += (size_t)snprintf(vocab + n, cap - n, "{");
  for (int eow = 0; eow < 2; eow++)
    for (int i = 0; i < 256; i++) {
      int cp = cp_of[order[i]];
      char u[8];
      if (cp == '"' || cp == '\\') snprintf(u, sizeof u, "\\%c", cp);
      else if (cp < 0x80) snprintf(u, sizeof u, "%c", cp);
      else snprintf(u, sizeof u, "%c%c", 0xC0 | (cp >> 6), 0x80 | (cp & 0x3F));
      n += (size_t)snprintf(vocab + n, cap - n, "\"%s%s\": %d, ", u, eow ? "</w>" : "", eow * 256 + i);
    }
  n += (size_t)snprintf(vocab + n, cap - n, "\"<|startoftext|>\": 512, \"<|endoftext|>\": 513}");
  if (n >= cap) fz_die("vocabulary too long");
  vocab_len = n;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  fz_tiny_sd_read();
  make_vocab();
  ctx = fz_context();
  static const int64_t networks[4] = {SF_NET_UNET, SF_NET_VAE_DECODER | SF_NET_VAE_ENCODER, SF_NET_TEXT_ENCODER,
                                      SF_NET_TEXT_ENCODER | SF_NET_UNET | SF_NET_VAE_DECODER | SF_NET_VAE_ENCODER};
  for (int i = 0; i < 4; i++)
    if (sf_params_create(&options[i]) != SF_OK ||
        sf_params_set_int(options[i], SF_PARAM_COMPONENTS, networks[i]) != SF_OK)
      fz_die("params");
  return 0;
}

static void run_vae(sf_pipeline *p, unsigned nets) {
  size_t c = (size_t)fz_info(p, SF_INFO_LATENT_CHANNELS, 0), f = (size_t)fz_info(p, SF_INFO_SCALE_FACTOR, 0);
  FZ_ASSERT(c > 0 && f > 0, "VAE info: channels %zu, factor %zu", c, f);
  if (c > 64 || f > 64) return;
  size_t side = 2, n = c * side * side, npix = 3 * (f * side) * (f * side);
  float *lat = fz_floats(n, 1.0f), *img = fz_floats(npix, 1.0f), *mean = fz_floats(n, 0), *logvar = fz_floats(n, 0);
  if (nets & SF_NET_VAE_DECODER) {
    sf_status s = sf_decode_latents_v2(p, SF_NET_VAE_DECODER, lat, n, 1, side, side, 0, img, npix);
    FZ_ASSERT(s == SF_OK, "sf_decode_latents_v2 on a loaded VAE: %s", sf_status_string(s));
  }
  if (nets & SF_NET_VAE_ENCODER) {
    sf_status s = sf_encode_image_v2(p, SF_NET_VAE_ENCODER, img, npix, 1, f * side, f * side, 0, mean, n, logvar, n);
    FZ_ASSERT(s == SF_OK, "sf_encode_image_v2 on a loaded VAE: %s", sf_status_string(s));
  }
  free(lat);
  free(img);
  free(mean);
  free(logvar);
}

static void run_text(sf_pipeline *p) {
  size_t hidden = (size_t)fz_info(p, SF_INFO_TEXT_HIDDEN, 0);
  FZ_ASSERT(hidden > 0, "text encoder without a width");
  if (hidden > 4096) return;
  float *out = fz_floats(77 * hidden, 0);
  int32_t ids[77] = {49406, 320, 1125, 539, 320, 2368, 49407};
  for (int i = 7; i < 77; i++) ids[i] = 49407;
  sf_status s = sf_encode_ids(p, ids, 1, 77, 0, out, 77 * hidden);
  FZ_ASSERT(s == SF_OK, "sf_encode_ids on a loaded text encoder: %s", sf_status_string(s));
  /* A model_index.json without a (recognisable) tokenizer entry loads the text encoder alone:
   * prompts are then refused (SF_ERR_BAD_STATE), ids still work. */
  s = sf_encode_prompt(p, "a photo of a cat", 0, out, 77 * hidden);
  FZ_ASSERT(s == SF_OK || s == SF_ERR_BAD_STATE, "sf_encode_prompt on a loaded text encoder: %s", sf_status_string(s));
  if (s != SF_OK) fz_check_failure(s, "sf_encode_prompt");
  s = sf_encode_ids(p, ids, 1, 77, 2, out, 77 * hidden);
  if (s != SF_OK) fz_check_failure(s, "sf_encode_ids (clip skip 2)"); /* needs two layers */
  free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  static const char *const which[4] = {"unet/config.json", "vae/config.json", "text_encoder/config.json",
                                       "model_index.json"};
  int sel = data[0] % 4;
  static const char *const skip[] = {"tokenizer/", NULL};
  sf_files *files = fz_tiny_sd_set(skip);
  if (sf_files_add(files, "tokenizer/vocab.json", vocab, vocab_len, 0) != SF_OK ||
      sf_files_add(files, "tokenizer/merges.txt", merges, sizeof merges - 1, 0) != SF_OK ||
      sf_files_add(files, which[sel], data + 1, size - 1, 0) != SF_OK)
    fz_die(sf_last_error());
  sf_pipeline *p = NULL;
  sf_status s = sf_pipeline_load_files(ctx, files, options[sel], &p);
  if (s == SF_OK) {
    unsigned nets = (unsigned)fz_info(p, SF_INFO_NETWORKS, 0);
    if (nets & SF_NET_UNET) fz_run_unet(p);
    if (nets & (SF_NET_VAE_DECODER | SF_NET_VAE_ENCODER)) run_vae(p, nets);
    if (nets & SF_NET_TEXT_ENCODER) run_text(p);
  } else {
    FZ_ASSERT(p == NULL, "a failed load returned a pipeline");
    fz_check_failure(s, "sf_pipeline_load_files");
  }
  sf_pipeline_destroy(p);
  sf_files_destroy(files);
  return 0;
}
