/* sf_pipeline_describe: what `snapfusion info` prints, also as JSON for bindings. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/json.h"
#include "pipeline/pipeline.h"

typedef struct {
  char *buf;
  size_t len, cap;
  int oom;
} strbuf;

static void sb_printf(strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(strbuf *sb, const char *fmt, ...) {
  if (sb->oom) return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(sb->buf ? sb->buf + sb->len : NULL, sb->buf ? sb->cap - sb->len : 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
      sb->oom = 1;
      return;
    }
    if (sb->buf && sb->len + (size_t)n < sb->cap) {
      sb->len += (size_t)n;
      return;
    }
    size_t cap = (sb->cap ? sb->cap * 2 : 1024) + (size_t)n;
    char *nb = realloc(sb->buf, cap);
    if (nb == NULL) {
      sb->oom = 1;
      return;
    }
    sb->buf = nb;
    sb->cap = cap;
  }
}

/* JSON string literal of s (escaping quotes, backslashes and control characters). */
static void sb_json_str(strbuf *sb, const char *s) {
  sb_printf(sb, "\"");
  for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
    if (*p == '"' || *p == '\\') sb_printf(sb, "\\%c", *p);
    else if (*p < 0x20) sb_printf(sb, "\\u%04x", *p);
    else sb_printf(sb, "%c", *p);
  }
  sb_printf(sb, "\"");
}

/* A config value, compactly: numbers, strings, bools, null and arrays of those. */
static void sb_json_value(strbuf *sb, const sf_json *v) {
  switch (v->type) {
    case SF_JSON_NULL: sb_printf(sb, "null"); break;
    case SF_JSON_BOOL: sb_printf(sb, "%s", v->u.boolean ? "true" : "false"); break;
    case SF_JSON_NUMBER: sb_printf(sb, "%.*s", (int)v->u.num.text_len, v->u.num.text); break;
    case SF_JSON_STRING: sb_json_str(sb, v->u.str); break;
    case SF_JSON_ARRAY:
      sb_printf(sb, "[");
      for (size_t i = 0; i < v->len; i++) {
        if (i) sb_printf(sb, ", ");
        sb_json_value(sb, &v->u.items[i]);
      }
      sb_printf(sb, "]");
      break;
    case SF_JSON_OBJECT: sb_printf(sb, "{...}"); break;
  }
}

/* The config keys worth showing per component class (others stay in config.json). */
static const char *const KEY_FIELDS[] = {
    "block_out_channels", "layers_per_block", "down_block_types", "up_block_types", "mid_block_type",
    "transformer_layers_per_block", "attention_head_dim", "num_attention_heads", "cross_attention_dim",
    "sample_size", "in_channels", "out_channels", "latent_channels", "scaling_factor", "norm_num_groups",
    "use_linear_projection", "hidden_size", "num_hidden_layers", "intermediate_size", "hidden_act",
    "max_position_embeddings", "vocab_size", "prediction_type", "beta_schedule", "beta_start", "beta_end",
    "num_train_timesteps", "timestep_spacing", "steps_offset", NULL};

char *sf_pipeline_describe_alloc(const sf_pipeline *p, int format) {
  strbuf sb = {0};
  const sf_model_folder *m = p->folder;
  int json = format == 1;
  if (json) {
    sb_printf(&sb, "{\"path\": ");
    sb_json_str(&sb, m->dir);
    sb_printf(&sb, ", \"class\": ");
    sb_json_str(&sb, m->class_name);
    sb_printf(&sb, ", \"random_weights\": %s, \"single_file\": %s", p->random_weights ? "true" : "false",
              m->single_file ? "true" : "false");
    if (m->single_file) {
      sb_printf(&sb, ", \"config\": ");
      if (m->config_source) sb_json_str(&sb, m->config_source);
      else sb_printf(&sb, "\"inferred\"");
    }
    sb_printf(&sb, ", \"components\": [");
  } else {
    sb_printf(&sb, "model: %s\nclass: %s\n", m->dir, m->class_name ? m->class_name : "(none)");
    if (p->random_weights)
      sb_printf(&sb, "weights: seeded random (seed %llu)\n", (unsigned long long)p->random_seed);
    if (m->single_file && m->config_source)
      sb_printf(&sb, "single-file checkpoint (LDM layout); configs from %s\n", m->config_source);
    else if (m->single_file)
      sb_printf(&sb, "single-file checkpoint (LDM layout); architecture inferred from the tensor shapes, SD-1.5's "
                     "values for the rest (UNet heads 8, text heads 12, SD-1.5's scheduler, no tokenizer)\n");
  }
  for (size_t i = 0; i < m->n_components; i++) {
    const sf_component *c = &m->components[i];
    const sf_json *cfg = sf_component_config(c);
    sf_weights_stats st = {0};
    if (c->weights) sf_weights_get_stats(c->weights, &st);
    if (json) {
      sb_printf(&sb, "%s{\"name\": ", i ? ", " : "");
      sb_json_str(&sb, c->name);
      sb_printf(&sb, ", \"library\": ");
      sb_json_str(&sb, c->library);
      sb_printf(&sb, ", \"class\": ");
      sb_json_str(&sb, c->class_name);
      sb_printf(&sb, ", \"config_only\": %s, \"tensors\": %zu, \"parameters\": %llu, \"files\": %zu, \"dtypes\": {",
                c->config_only ? "true" : "false", st.n_tensors, (unsigned long long)st.n_params, st.n_files);
      int first = 1;
      for (int t = 0; t < SF_DTYPE_COUNT; t++)
        if (st.dtype_tensors[t]) {
          sb_printf(&sb, "%s\"%s\": %zu", first ? "" : ", ", sf_dtype_name((sf_dtype)t), st.dtype_tensors[t]);
          first = 0;
        }
      sb_printf(&sb, "}, \"config\": {");
      first = 1;
      for (size_t k = 0; cfg && KEY_FIELDS[k]; k++) {
        const sf_json *v = sf_json_get(cfg, KEY_FIELDS[k]);
        if (v == NULL) continue;
        sb_printf(&sb, "%s\"%s\": ", first ? "" : ", ", KEY_FIELDS[k]);
        sb_json_value(&sb, v);
        first = 0;
      }
      sb_printf(&sb, "}");
      if (c->note) {
        sb_printf(&sb, ", \"note\": ");
        sb_json_str(&sb, c->note);
      }
      sb_printf(&sb, "}");
    } else {
      sb_printf(&sb, "\n[%s] %s%s%s\n", c->name, c->library ? c->library : "", c->library ? "." : "",
                c->class_name ? c->class_name : "(unknown class)");
      if (c->weights)
        sb_printf(&sb, "  weights: %s%s%s, %zu tensors in %zu file(s), %llu parameters (%.1f MiB)\n",
                  c->weights_file ? c->weights_file : "?", c->is_variant ? " (variant)" : "",
                  c->sharded ? " (sharded)" : "", st.n_tensors, st.n_files, (unsigned long long)st.n_params,
                  st.n_bytes / 1048576.0);
      else if (c->config_only)
        sb_printf(&sb, "  weights: none (config only)\n");
      if (c->weights) {
        sb_printf(&sb, "  dtypes:");
        for (int t = 0; t < SF_DTYPE_COUNT; t++)
          if (st.dtype_tensors[t])
            sb_printf(&sb, " %s x%zu (%llu params)", sf_dtype_name((sf_dtype)t), st.dtype_tensors[t],
                      (unsigned long long)st.dtype_params[t]);
        sb_printf(&sb, "\n");
      }
      for (size_t k = 0; cfg && KEY_FIELDS[k]; k++) {
        const sf_json *v = sf_json_get(cfg, KEY_FIELDS[k]);
        if (v == NULL) continue;
        sb_printf(&sb, "  %s: ", KEY_FIELDS[k]);
        sb_json_value(&sb, v);
        sb_printf(&sb, "\n");
      }
      if (c->note) sb_printf(&sb, "  note: %s\n", c->note);
    }
  }
  if (json) sb_printf(&sb, "]}");
  if (sb.oom) {
    free(sb.buf);
    return NULL;
  }
  return sb.buf;
}
