/* snapfusion info MODEL_DIR: what a model folder holds, without building networks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void info_usage(FILE *f) {
  fprintf(f,
          "usage: snapfusion info [--json] [--variant NAME] [--config DIR] [--memory [options]] MODEL_DIR|FILE\n"
          "Describes a diffusers model folder, or a single-file checkpoint (.safetensors in the\n"
          "original LDM layout: the components it holds, the architecture inferred from its\n"
          "shapes or given by --config DIR, EMA or not): components, classes, key config values,\n"
          "tensor and parameter counts and dtypes. Every file is validated and every\n"
          "network's architecture checked against its checkpoint (every problem is listed);\n"
          "no weight is read or packed.\n"
          "  --json          print JSON instead of text\n"
          "  --variant NAME  prefer weights *.NAME.safetensors (e.g. fp16)\n"
          "  --memory        also the memory a generation would need (sf_pipeline_estimate_memory),\n"
          "                  for: -W/-H PIXELS (default: the model's), --cfg-scale X (default 7.5),\n"
          "                  --weights f32|f16|q8, --low-memory, -t N (threads)\n"
          "  --tokenizer DIR a tokenizer folder for folders without one\n"
          "  --config DIR    a single file's diffusers config folder (SF_PARAM_CONFIG_PATH)\n");
}

/* sf_pipeline_estimate_memory's figures for one generation. */
static int print_memory(sf_context *ctx, sf_pipeline *pipe, long long width, long long height, double cfg_scale,
                        int json) {
  sf_params *gen = NULL;
  sf_status s = sf_params_create(&gen);
  if (s == SF_OK && width) s = sf_params_set_int(gen, SF_PARAM_WIDTH, width);
  if (s == SF_OK && height) s = sf_params_set_int(gen, SF_PARAM_HEIGHT, height);
  if (s == SF_OK) s = sf_params_set_float(gen, SF_PARAM_GUIDANCE_SCALE, cfg_scale);
  static const struct {
    sf_memory what;
    const char *name;
  } figures[] = {{SF_MEMORY_PEAK, "peak"},
                 {SF_MEMORY_WEIGHTS, "weights"},
                 {SF_MEMORY_WORKSPACE, "workspace"},
                 {SF_MEMORY_OTHER, "other"},
                 {SF_MEMORY_WEIGHTS_TOTAL, "weights_total"},
                 {SF_MEMORY_WORKSPACE_RUN, "workspace_run"}};
  int64_t v[6] = {0};
  for (size_t i = 0; s == SF_OK && i < 6; i++) s = sf_pipeline_estimate_memory(pipe, gen, figures[i].what, &v[i]);
  sf_params_destroy(gen);
  if (s != SF_OK) return cli_fail("memory estimate", s, ctx);
  int64_t w = 0, h = 0, wt = 0;
  sf_pipeline_get_int(pipe, SF_INFO_DEFAULT_WIDTH, &w);
  sf_pipeline_get_int(pipe, SF_INFO_DEFAULT_HEIGHT, &h);
  sf_pipeline_get_int(pipe, SF_INFO_WEIGHT_TYPE, &wt);
  if (width) w = width;
  if (height) h = height;
  if (json) {
    printf("{\"width\":%lld,\"height\":%lld,\"cfg_scale\":%g,\"weights\":\"%s\"", (long long)w, (long long)h,
           cfg_scale, cli_weights_name((int)wt));
    for (size_t i = 0; i < 6; i++) printf(",\"%s_bytes\":%lld", figures[i].name, (long long)v[i]);
    printf("}\n");
  } else {
    printf("\nmemory estimate for %lldx%lld, cfg %g, %s weights: peak %.1f MiB = weights %.1f + workspace %.1f + "
           "other %.1f (all weights %.1f MiB; the generation's workspace %.1f MiB)\n",
           (long long)w, (long long)h, cfg_scale, cli_weights_name((int)wt), v[0] / 1048576.0, v[1] / 1048576.0,
           v[2] / 1048576.0, v[3] / 1048576.0, v[4] / 1048576.0, v[5] / 1048576.0);
  }
  return 0;
}

int cmd_info(int argc, char **argv) {
  const char *dir = NULL, *variant = NULL, *tokenizer = NULL, *config_dir = NULL;
  int json = 0, memory = 0, low_memory = 0, weights = 0;
  long long width = 0, height = 0, threads = 0;
  double cfg_scale = 7.5;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      info_usage(stdout);
      return 0;
    } else if (strcmp(argv[i], "--json") == 0) {
      json = 1;
    } else if (strcmp(argv[i], "--variant") == 0 && i + 1 < argc) {
      variant = argv[++i];
    } else if (strcmp(argv[i], "--tokenizer") == 0 && i + 1 < argc) {
      tokenizer = argv[++i];
    } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
      config_dir = argv[++i];
    } else if (strcmp(argv[i], "--memory") == 0) {
      memory = 1;
    } else if (strcmp(argv[i], "--low-memory") == 0) {
      low_memory = 1;
    } else if (strcmp(argv[i], "--weights") == 0 && i + 1 < argc) {
      if (!cli_parse_weights(argv[++i], &weights)) {
        fprintf(stderr, "snapfusion info: --weights takes f32, f16 or q8\n");
        return CLI_EXIT_USAGE;
      }
    } else if ((strcmp(argv[i], "-W") == 0 || strcmp(argv[i], "-H") == 0 || strcmp(argv[i], "-t") == 0) &&
               i + 1 < argc) {
      long long *to = argv[i][1] == 'W' ? &width : argv[i][1] == 'H' ? &height : &threads;
      if (!cli_parse_int(argv[i + 1], to) || *to < 1 || *to > 16384) {
        fprintf(stderr, "snapfusion info: %s takes 1..16384\n", argv[i]);
        return CLI_EXIT_USAGE;
      }
      i++;
    } else if (strcmp(argv[i], "--cfg-scale") == 0 && i + 1 < argc) {
      char *end = NULL;
      cfg_scale = strtod(argv[++i], &end);
      if (end == argv[i] || *end != '\0' || !(cfg_scale >= 0 && cfg_scale <= 100)) {
        fprintf(stderr, "snapfusion info: --cfg-scale takes 0..100\n");
        return CLI_EXIT_USAGE;
      }
    } else if (argv[i][0] == '-' || dir != NULL) {
      fprintf(stderr, "snapfusion info: unexpected argument '%s'\n", argv[i]);
      info_usage(stderr);
      return CLI_EXIT_USAGE;
    } else {
      dir = argv[i];
    }
  }
  if (dir == NULL) {
    fprintf(stderr, "snapfusion info: missing MODEL_DIR\n");
    info_usage(stderr);
    return CLI_EXIT_USAGE;
  }
  sf_context *ctx = cli_context(threads > 0 ? (int)threads : 0);
  if (ctx == NULL) return CLI_EXIT_FAIL;
  sf_params *opts = NULL;
  sf_status s = sf_params_create(&opts);
  if (s == SF_OK) s = sf_params_set_int(opts, SF_PARAM_INSPECT_ONLY, 1);
  if (s == SF_OK && variant) s = sf_params_set_string(opts, SF_PARAM_VARIANT, variant);
  if (s == SF_OK && tokenizer) s = sf_params_set_string(opts, SF_PARAM_TOKENIZER_PATH, tokenizer);
  if (s == SF_OK && config_dir) s = sf_params_set_string(opts, SF_PARAM_CONFIG_PATH, config_dir);
  if (s == SF_OK && weights) s = sf_params_set_int(opts, SF_PARAM_WEIGHT_TYPE, weights);
  if (s == SF_OK && low_memory) s = sf_params_set_int(opts, SF_PARAM_LOW_MEMORY, 1);
  sf_pipeline *pipe = NULL;
  if (s == SF_OK) s = sf_pipeline_load(ctx, dir, opts, &pipe);
  sf_params_destroy(opts);
  int rc = 0;
  if (s != SF_OK) {
    rc = cli_fail(dir, s, ctx);
  } else {
    size_t need = 0;
    s = sf_pipeline_describe(pipe, json ? SF_FORMAT_JSON : SF_FORMAT_TEXT, NULL, 0, &need);
    char *text = s == SF_OK ? malloc(need) : NULL;
    if (text && sf_pipeline_describe(pipe, json ? SF_FORMAT_JSON : SF_FORMAT_TEXT, text, need, NULL) == SF_OK) {
      fputs(text, stdout);
      fputc('\n', stdout);
    } else {
      rc = cli_fail("describe", s == SF_OK ? SF_ERR_OUT_OF_MEMORY : s, ctx);
    }
    free(text);
    if (rc == 0 && memory) rc = print_memory(ctx, pipe, width, height, cfg_scale, json);
  }
  sf_pipeline_destroy(pipe);
  sf_context_destroy(ctx);
  return rc;
}
