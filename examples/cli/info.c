/* snapfusion info MODEL_DIR: what a model folder holds, without building networks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void info_usage(FILE *f) {
  fprintf(f,
          "usage: snapfusion info [--json] [--variant NAME] MODEL_DIR\n"
          "Describes a diffusers model folder: components, classes, key config values,\n"
          "tensor and parameter counts and dtypes. Every file is validated; nothing is built.\n"
          "  --json          print JSON instead of text\n"
          "  --variant NAME  prefer weights *.NAME.safetensors (e.g. fp16)\n");
}

int cmd_info(int argc, char **argv) {
  const char *dir = NULL, *variant = NULL;
  int json = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      info_usage(stdout);
      return 0;
    } else if (strcmp(argv[i], "--json") == 0) {
      json = 1;
    } else if (strcmp(argv[i], "--variant") == 0 && i + 1 < argc) {
      variant = argv[++i];
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
  sf_context *ctx = cli_context(1);
  if (ctx == NULL) return CLI_EXIT_FAIL;
  sf_params *opts = NULL;
  sf_status s = sf_params_create(&opts);
  if (s == SF_OK) s = sf_params_set_int(opts, SF_PARAM_INSPECT_ONLY, 1);
  if (s == SF_OK && variant) s = sf_params_set_string(opts, SF_PARAM_VARIANT, variant);
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
  }
  sf_pipeline_destroy(pipe);
  sf_context_destroy(ctx);
  return rc;
}
