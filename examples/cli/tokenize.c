/* snapfusion tokenize -m MODEL_DIR "prompt": the ids and tokens a prompt becomes. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void tokenize_usage(FILE *f) {
  fprintf(f,
          "usage: snapfusion tokenize -m MODEL_DIR [--all] PROMPT\n"
          "Prints the CLIP token ids of PROMPT (BOS, tokens, EOS; padding with --all) and the\n"
          "token each id stands for. MODEL_DIR is a pipeline folder or a tokenizer folder.\n");
}

int cmd_tokenize(int argc, char **argv) {
  const char *model = NULL, *prompt = NULL;
  int all = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      tokenize_usage(stdout);
      return 0;
    } else if ((strcmp(argv[i], "-m") == 0 || strcmp(argv[i], "--model") == 0) && i + 1 < argc) {
      model = argv[++i];
    } else if (strcmp(argv[i], "--all") == 0) {
      all = 1;
    } else if (prompt == NULL && (argv[i][0] != '-' || argv[i][1] == '\0')) {
      prompt = argv[i];
    } else {
      fprintf(stderr, "snapfusion tokenize: unexpected argument '%s'\n", argv[i]);
      tokenize_usage(stderr);
      return CLI_EXIT_USAGE;
    }
  }
  if (model == NULL || prompt == NULL) {
    tokenize_usage(stderr);
    return CLI_EXIT_USAGE;
  }
  sf_context *ctx = cli_context(1);
  if (ctx == NULL) return CLI_EXIT_FAIL;
  sf_params *opts = NULL;
  sf_pipeline *pipe = NULL;
  sf_status s = sf_params_create(&opts);
  /* Only the tokenizer is needed, and it is loaded even when inspecting. */
  if (s == SF_OK) s = sf_params_set_int(opts, SF_PARAM_INSPECT_ONLY, 1);
  if (s == SF_OK) s = sf_pipeline_load(ctx, model, opts, &pipe);
  int rc = 0;
  int32_t ids[77];
  size_t untruncated = 0;
  if (s == SF_OK) s = sf_tokenize(pipe, prompt, ids, 77, &untruncated);
  if (s != SF_OK) {
    rc = cli_fail(model, s, ctx);
  } else {
    /* The last id of the sequence is EOS; padding repeats it (CLIP pads with EOS). */
    size_t last = 1;
    while (last < 76 && !(ids[last] == ids[76] && ids[last + 1] == ids[76])) last++;
    for (size_t i = 0; i < 77; i++) {
      if (!all && i > last) break;
      char tok[256];
      if (sf_token_text(pipe, ids[i], tok, sizeof tok, NULL) != SF_OK) snprintf(tok, sizeof tok, "?");
      printf("%3zu %6d %s\n", i, (int)ids[i], tok);
    }
    printf("%zu tokens with BOS and EOS%s\n", untruncated, untruncated > 77 ? " (truncated to 77)" : "");
  }
  sf_pipeline_destroy(pipe);
  sf_params_destroy(opts);
  sf_context_destroy(ctx);
  return rc;
}
