/* snapfusion pack: a model's weights prepacked into one file that later loads map in place
 * (sf_pipeline_write_pack, SF_PARAM_PACK_PATH); --verify checks a pack's every byte. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "io/pack.h"

static void pack_usage(FILE *f) {
  fprintf(f,
          "usage: snapfusion pack MODEL_DIR -o FILE [options]\n"
          "       snapfusion pack --verify FILE\n"
          "Loads MODEL_DIR and writes the weights of its text encoder, UNet and VAE (decoder and\n"
          "encoder) to FILE as this CPU's GEMM kernels use them, in the chosen precision. Loads with\n"
          "that file (txt2img --pack FILE, bench txt2img --pack FILE, SF_PARAM_PACK_PATH) map it and\n"
          "use it in place: no packing, the weights stay clean file-backed memory. The file fits\n"
          "this model's configs and CPUs that run its panel layout (it names both). TAESD is not\n"
          "packed.\n"
          "  -o, --output FILE     the pack to write (replaced; written to FILE.partial first)\n"
          "  --weights TYPE        f32, f16 or q8 (default: as the checkpoint stores them; random\n"
          "                        weights: f32)\n"
          "  --variant NAME        prefer *.NAME.safetensors weights (e.g. fp16)\n"
          "  --random-weights      MODEL_DIR holds configs only: seeded random weights (benchmarks)\n"
          "  --seed N              the random weights' seed (default 0)\n"
          "  --config DIR          a single-file checkpoint's diffusers config folder\n"
          "  --tokenizer DIR       a tokenizer folder, for folders without one (the text encoder's\n"
          "                        load asks for it; the pack does not hold it)\n"
          "  -t, --threads N       worker threads for the load (default: one per core)\n"
          "  --verify FILE         check FILE: header, index and every blob's CRC-32; prints what it\n"
          "                        holds\n"
          "exit status: 0 done; 2 bad arguments; 1 a failure (the library's message)\n");
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const char *net_names(unsigned bits, char *buf, size_t cap) {
  static const char *names[] = {"text encoder", "UNet", "VAE decoder", "VAE encoder"};
  size_t n = 0;
  buf[0] = '\0';
  for (int i = 0; i < 4; i++)
    if (bits & (1u << i)) n += (size_t)snprintf(buf + n, n < cap ? cap - n : 0, "%s%s", n ? ", " : "", names[i]);
  return buf;
}

/* The header and what the blobs hold. */
static void describe(const sf_pack *pk) {
  const sf_pack_info *in = sf_pack_get_info(pk);
  char nets[128];
  uint64_t bytes[4] = {0}, kinds[5] = {0};
  for (size_t i = 0; i < sf_pack_count(pk); i++) {
    const sf_pack_blob *b = sf_pack_at(pk, i);
    for (int k = 0; k < 4; k++)
      if (b->network == (1u << k)) bytes[k] += b->size;
    if (b->kind <= 4) kinds[b->kind] += b->size;
  }
  printf("%s: pack format %u, written by libsnapfusion %s\n", sf_pack_label(pk), (unsigned)in->version, in->library);
  printf("  panel layout %s (%u x %u tiles), %s weights%s\n", in->isa, (unsigned)in->mr, (unsigned)in->nr,
         cli_weights_name((int)in->weight_type), in->weight_policy == 0 ? " (as the checkpoint stored them)" : "");
  printf("  networks: %s; %zu blobs, %.1f MiB\n", net_names(in->networks, nets, sizeof nets), sf_pack_count(pk),
         (double)in->file_bytes / 1048576.0);
  static const char *names[] = {"text encoder", "UNet", "VAE decoder", "VAE encoder"};
  for (int k = 0; k < 4; k++)
    if (bytes[k]) printf("  %-13s %9.1f MiB\n", names[k], (double)bytes[k] / 1048576.0);
  printf("  GEMM panels %.1f MiB, biases and scales %.1f MiB, other tensors %.1f MiB\n",
         (double)kinds[SF_PACK_PANELS] / 1048576.0, (double)(kinds[SF_PACK_BIAS] + kinds[SF_PACK_SCALE]) / 1048576.0,
         (double)kinds[SF_PACK_TENSOR] / 1048576.0);
}

static int verify(const char *path) {
  sf_diag d = {0};
  sf_pack *pk = sf_pack_open(path, &d);
  if (pk == NULL) {
    fprintf(stderr, "snapfusion: %s: %s: %s\n", path, sf_status_string(d.status), d.msg);
    return CLI_EXIT_FAIL;
  }
  describe(pk);
  double t0 = now_s();
  sf_status s = sf_pack_verify(pk, &d);
  if (s != SF_OK) {
    fprintf(stderr, "snapfusion: %s: %s\n", sf_status_string(s), d.msg);
  } else {
    printf("  all %zu blob checksums match (%.2f s)\n", sf_pack_count(pk), now_s() - t0);
  }
  sf_pack_close(pk);
  return s == SF_OK ? 0 : CLI_EXIT_FAIL;
}

static int bad(const char *msg) {
  fprintf(stderr, "snapfusion pack: %s (see --help)\n", msg);
  return CLI_EXIT_USAGE;
}

int cmd_pack(int argc, char **argv) {
  const char *dir = NULL, *out = NULL, *variant = NULL, *tokenizer = NULL, *verify_path = NULL, *config_dir = NULL;
  int weights = SF_WEIGHT_DEFAULT, random = 0;
  long long seed = 0, threads = 0;
  int have_seed = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define TAKE(name) (strcmp(a, name) == 0 && v != NULL && (i++, 1))
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      pack_usage(stdout);
      return 0;
    } else if (TAKE("-o") || TAKE("--output")) out = v;
    else if (TAKE("--weights")) { if (!cli_parse_weights(v, &weights)) return bad("--weights takes f32, f16 or q8"); }
    else if (TAKE("--variant")) variant = v;
    else if (TAKE("--tokenizer")) tokenizer = v;
    else if (TAKE("--config")) config_dir = v;
    else if (TAKE("--verify")) verify_path = v;
    else if (TAKE("--seed")) { if (!cli_parse_int(v, &seed)) return bad("--seed takes an integer"); have_seed = 1; }
    else if (TAKE("-t") || TAKE("--threads")) { if (!cli_parse_int(v, &threads) || threads < 1 || threads > 1024) return bad("-t takes 1..1024"); }
    else if (strcmp(a, "--random-weights") == 0) random = 1;
    else if (a[0] == '-') {
      fprintf(stderr, "snapfusion pack: unexpected option '%s'%s (see --help)\n", a, v == NULL ? " or missing value" : "");
      return CLI_EXIT_USAGE;
    } else if (dir == NULL) dir = a;
    else return bad("more than one MODEL_DIR");
#undef TAKE
  }
  if (verify_path) {
    if (dir || out) return bad("--verify takes a pack file and nothing else");
    return verify(verify_path);
  }
  if (dir == NULL) return bad("missing MODEL_DIR");
  if (out == NULL) return bad("missing -o FILE");
  if (have_seed && !random) return bad("--seed is the seed of --random-weights");

  sf_context *ctx = cli_context((int)threads);
  if (ctx == NULL) return CLI_EXIT_FAIL;
  sf_params *load = NULL;
  sf_pipeline *pipe = NULL;
  int rc = 0;
  sf_status s = sf_params_create(&load);
  if (s == SF_OK && weights != SF_WEIGHT_DEFAULT) s = sf_params_set_int(load, SF_PARAM_WEIGHT_TYPE, weights);
  if (s == SF_OK && variant) s = sf_params_set_string(load, SF_PARAM_VARIANT, variant);
  if (s == SF_OK && tokenizer) s = sf_params_set_string(load, SF_PARAM_TOKENIZER_PATH, tokenizer);
  if (s == SF_OK && config_dir) s = sf_params_set_string(load, SF_PARAM_CONFIG_PATH, config_dir);
  if (s == SF_OK && random) s = sf_params_set_int(load, SF_PARAM_RANDOM_WEIGHTS, 1);
  if (s == SF_OK && random) s = sf_params_set_int(load, SF_PARAM_RANDOM_SEED, seed);
  /* TAESD is never packed: not loaded */
  if (s == SF_OK)
    s = sf_params_set_int(load, SF_PARAM_COMPONENTS,
                          SF_NET_TEXT_ENCODER | SF_NET_UNET | SF_NET_VAE_DECODER | SF_NET_VAE_ENCODER);
  double t0 = now_s();
  if (s == SF_OK) s = sf_pipeline_load(ctx, dir, load, &pipe);
  double t1 = now_s();
  if (s != SF_OK) {
    rc = cli_fail(dir, s, ctx);
  } else if ((s = sf_pipeline_write_pack(pipe, out)) != SF_OK) {
    rc = cli_fail(out, s, ctx);
  } else {
    double t2 = now_s();
    fprintf(stderr, "loaded and packed %s in %.2f s, wrote %s in %.2f s\n", dir, t1 - t0, out, t2 - t1);
    sf_diag d = {0};
    sf_pack *pk = sf_pack_open(out, &d);
    if (pk != NULL) {
      describe(pk);
    } else {
      fprintf(stderr, "snapfusion: %s: %s\n", sf_status_string(d.status), d.msg);
      rc = CLI_EXIT_FAIL;
    }
    sf_pack_close(pk);
  }
  sf_pipeline_destroy(pipe);
  sf_params_destroy(load);
  sf_context_destroy(ctx);
  return rc;
}
