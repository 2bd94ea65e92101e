/* LoRAs on the command line: --lora FILE[:SCALE] (repeatable) and A1111's <lora:NAME:SCALE> tags in
 * the prompt, resolved in --lora-dir and removed from the prompt text, gathered into the
 * SF_PARAM_LORAS list (one "PATH\tSCALE" a line). */
#include "lora_args.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int parse_scale(const char *s, size_t len, double *out) {
  char buf[64];
  if (len == 0 || len >= sizeof buf || isspace((unsigned char)*s)) return 0;
  memcpy(buf, s, len);
  buf[len] = '\0';
  char *end = NULL;
  *out = strtod(buf, &end);
  return *end == '\0' && isfinite(*out);
}

/* Appends "path\tscale\n" to the list. */
static int append(cli_loras *l, const char *path, size_t path_len, double scale) {
  if (memchr(path, '\n', path_len) || memchr(path, '\t', path_len)) return 0;
  size_t need = l->len + path_len + 40;
  if (need > l->cap) {
    size_t cap = need * 2;
    char *s = realloc(l->spec, cap);
    if (s == NULL) return 0;
    l->spec = s;
    l->cap = cap;
  }
  l->len += (size_t)snprintf(l->spec + l->len, l->cap - l->len, "%.*s\t%.17g\n", (int)path_len, path, scale);
  l->count++;
  return 1;
}

int cli_lora_add(cli_loras *l, const char *arg) {
  /* FILE:SCALE when what follows the last ':' is a number (so "C:\x" or "a:b.safetensors" stay paths) */
  const char *colon = strrchr(arg, ':');
  double scale = 1.0;
  if (colon && colon != arg && parse_scale(colon + 1, strlen(colon + 1), &scale))
    return append(l, arg, (size_t)(colon - arg), scale);
  return *arg != '\0' && append(l, arg, strlen(arg), 1.0);
}

int cli_lora_from_prompt(cli_loras *l, const char *prompt, const char *dir, char **out_prompt, char *err,
                         size_t err_cap) {
  size_t n = strlen(prompt);
  char *out = malloc(n + 1);
  if (out == NULL) {
    snprintf(err, err_cap, "out of memory");
    return 0;
  }
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    if (strncmp(prompt + i, "<lora:", 6) != 0) {
      out[o++] = prompt[i++];
      continue;
    }
    const char *body = prompt + i + 6, *close = strchr(body, '>');
    if (close == NULL) {
      out[o++] = prompt[i++];
      continue;
    }
    /* NAME or NAME:SCALE */
    const char *colon = memchr(body, ':', (size_t)(close - body));
    size_t name_len = colon ? (size_t)(colon - body) : (size_t)(close - body);
    double scale = 1.0;
    if (name_len == 0 || (colon && !parse_scale(colon + 1, (size_t)(close - colon - 1), &scale))) {
      snprintf(err, err_cap, "prompt tag '%.*s': expected <lora:NAME> or <lora:NAME:SCALE> (one scale for both networks)",
               (int)(close - prompt - i + 1), prompt + i);
      free(out);
      return 0;
    }
    if (dir == NULL) {
      snprintf(err, err_cap, "the prompt names LoRA '%.*s': give --lora-dir DIR (where NAME.safetensors is)",
               (int)name_len, body);
      free(out);
      return 0;
    }
    char path[4096];
    const int has_ext = name_len > 12 && memcmp(body + name_len - 12, ".safetensors", 12) == 0;
    snprintf(path, sizeof path, "%s/%.*s%s", dir, (int)name_len, body, has_ext ? "" : ".safetensors");
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
      snprintf(err, err_cap, "prompt tag <lora:%.*s>: no file %s", (int)name_len, body, path);
      free(out);
      return 0;
    }
    if (!append(l, path, strlen(path), scale)) {
      snprintf(err, err_cap, "out of memory");
      free(out);
      return 0;
    }
    i = (size_t)(close - prompt) + 1; /* the tag goes, the text around it stays (as A1111 does) */
  }
  if (o < n) /* tags were removed: no blank left at the end (A1111 keeps the text around a tag) */
    while (o > 0 && isspace((unsigned char)out[o - 1])) o--;
  out[o] = '\0';
  *out_prompt = out;
  return 1;
}

void cli_loras_free(cli_loras *l) {
  free(l->spec);
  memset(l, 0, sizeof *l);
}
