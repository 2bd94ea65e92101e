/* LoRAs given on the command line, as the SF_PARAM_LORAS list. */
#ifndef SF_CLI_LORA_ARGS_H
#define SF_CLI_LORA_ARGS_H

#include <stddef.h>

typedef struct cli_loras {
  char *spec; /* "PATH\tSCALE\n" lines; NULL when none */
  size_t len, cap, count;
} cli_loras;

/* --lora FILE[:SCALE] (scale default 1). 0 when malformed or out of memory. */
int cli_lora_add(cli_loras *l, const char *arg);
/* A1111's <lora:NAME[:SCALE]> tags of prompt: each resolved to dir/NAME.safetensors (which must
 * exist) and added; *out_prompt (malloc'd) is the prompt without them. 0 with err set otherwise. */
int cli_lora_from_prompt(cli_loras *l, const char *prompt, const char *dir, char **out_prompt, char *err,
                         size_t err_cap);
void cli_loras_free(cli_loras *l);

#endif
