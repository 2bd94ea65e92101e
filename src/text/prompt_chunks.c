/* Prompt -> rows of token ids and multipliers (prompt_chunks.h); the A1111 path follows
 * stable-diffusion-webui's FrozenCLIPEmbedderWithCustomWordsBase.tokenize_line step by step. */
#include "text/prompt_chunks.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "text/prompt_syntax.h"

#define CHUNK 75            /* tokens of a row between BOS and EOS */
#define COMMA_BACKTRACK 20  /* A1111's opts.comma_padding_backtrack default */

typedef struct builder {
  sf_prompt_chunks *out;
  size_t cap_rows, cap_extra;
  int32_t cur[CHUNK];
  float curw[CHUNK];
  size_t len;
  long last_comma;
  int32_t bos, eos, comma, extra_base;
  size_t hidden;
  const sf_embeddings *emb;
  sf_diag *d;
} builder;

static sf_status oom(builder *b) { return sf_diag_set(b->d, SF_ERR_OUT_OF_MEMORY, "prompt: out of memory"); }

/* Appends BOS + cur (padded with EOS to 75) + EOS as a row; multipliers 1 around cur's. */
static sf_status next_chunk(builder *b) {
  sf_prompt_chunks *o = b->out;
  if (o->n == b->cap_rows) {
    size_t cap = b->cap_rows ? 2 * b->cap_rows : 2;
    int32_t *ids = realloc(o->ids, cap * SF_PROMPT_CHUNK_TOKENS * sizeof *ids);
    if (ids == NULL) return oom(b);
    o->ids = ids;
    float *w = realloc(o->weights, cap * SF_PROMPT_CHUNK_TOKENS * sizeof *w);
    if (w == NULL) return oom(b);
    o->weights = w;
    b->cap_rows = cap;
  }
  int32_t *ids = o->ids + o->n * SF_PROMPT_CHUNK_TOKENS;
  float *w = o->weights + o->n * SF_PROMPT_CHUNK_TOKENS;
  ids[0] = b->bos;
  w[0] = 1.0f;
  for (size_t i = 0; i < CHUNK; i++) {
    ids[1 + i] = i < b->len ? b->cur[i] : b->eos;
    w[1 + i] = i < b->len ? b->curw[i] : 1.0f;
    if (w[1 + i] != 1.0f) o->weighted = 1;
  }
  ids[CHUNK + 1] = b->eos;
  w[CHUNK + 1] = 1.0f;
  o->n++;
  b->len = 0;
  b->last_comma = -1;
  return SF_OK;
}

/* The vectors of embedding e as new extra rows; *first = the id of the first. */
static sf_status add_extra(builder *b, long e, int32_t *first, size_t *count) {
  const float *v = sf_embeddings_vectors(b->emb, (size_t)e, count);
  if (v == NULL || *count == 0 || *count > CHUNK)
    return sf_diag_set(b->d, SF_ERR_BAD_MODEL, "embedding '%s' has %zu vectors (1..%d)",
                       sf_embeddings_word(b->emb, (size_t)e), *count, CHUNK);
  sf_prompt_chunks *o = b->out;
  if (o->n_extra + *count > b->cap_extra) {
    size_t cap = 2 * (o->n_extra + *count);
    float *x = realloc(o->extra, cap * b->hidden * sizeof *x);
    if (x == NULL) return oom(b);
    o->extra = x;
    b->cap_extra = cap;
  }
  if ((size_t)INT32_MAX - (size_t)b->extra_base < o->n_extra + *count)
    return sf_diag_set(b->d, SF_ERR_INVALID_ARGUMENT, "prompt: too many embedding vectors");
  memcpy(o->extra + o->n_extra * b->hidden, v, *count * b->hidden * sizeof *v);
  *first = b->extra_base + (int32_t)o->n_extra;
  o->n_extra += *count;
  return SF_OK;
}

/* One piece of A1111's parse: its tokens into the rows (tokenize_line's inner loop). */
static sf_status add_piece(builder *b, const int32_t *toks, size_t n, float weight) {
  sf_status s = SF_OK;
  size_t pos = 0;
  while (pos < n) {
    int32_t token = toks[pos];
    if (token == b->comma) {
      b->last_comma = (long)b->len;
    } else if (b->len == CHUNK && b->last_comma != -1 && (long)b->len - b->last_comma <= COMMA_BACKTRACK) {
      /* the row is full shortly after a comma: what follows the comma opens the next row */
      size_t at = (size_t)b->last_comma + 1, moved = b->len - at;
      int32_t reloc[CHUNK];
      float relocw[CHUNK];
      memcpy(reloc, b->cur + at, moved * sizeof *reloc);
      memcpy(relocw, b->curw + at, moved * sizeof *relocw);
      b->len = at;
      if ((s = next_chunk(b)) != SF_OK) return s;
      memcpy(b->cur, reloc, moved * sizeof *reloc);
      memcpy(b->curw, relocw, moved * sizeof *relocw);
      b->len = moved;
    }
    if (b->len == CHUNK && (s = next_chunk(b)) != SF_OK) return s;
    size_t matched = 0;
    long e = sf_embeddings_count(b->emb) ? sf_embeddings_match(b->emb, toks, n, pos, &matched) : -1;
    if (e < 0 || matched == 0) {
      b->cur[b->len] = token;
      b->curw[b->len++] = weight;
      pos++;
      continue;
    }
    int32_t first = 0;
    size_t count = 0;
    if ((s = add_extra(b, e, &first, &count)) != SF_OK) return s;
    if (b->len + count > CHUNK && (s = next_chunk(b)) != SF_OK) return s;
    for (size_t k = 0; k < count; k++) {
      b->cur[b->len] = first + (int32_t)k;
      b->curw[b->len++] = weight;
    }
    pos += matched;
  }
  return SF_OK;
}

static sf_status build_a1111(builder *b, const sf_tokenizer *tok, const char *prompt) {
  sf_prompt_pieces pieces;
  sf_status s = sf_prompt_parse_a1111(prompt, &pieces, b->d);
  if (s != SF_OK) return s;
  for (size_t i = 0; i < pieces.n && s == SF_OK; i++) {
    if (sf_prompt_piece_is_break(&pieces.v[i])) {
      s = next_chunk(b);
      continue;
    }
    int32_t *toks = NULL;
    size_t n = 0;
    s = sf_tokenizer_tokenize(tok, pieces.v[i].text, strlen(pieces.v[i].text), &toks, &n, b->d);
    float w = (float)pieces.v[i].weight;
    if (s == SF_OK && !isfinite(w))
      s = sf_diag_set(b->d, SF_ERR_INVALID_ARGUMENT, "prompt syntax: the weight of '%.40s' (%g) is out of float range",
                      pieces.v[i].text, pieces.v[i].weight);
    if (s == SF_OK) s = add_piece(b, toks, n, w);
    free(toks);
  }
  sf_prompt_pieces_free(&pieces);
  if (s == SF_OK && (b->len > 0 || b->out->n == 0)) s = next_chunk(b);
  return s;
}

/* diffusers: one row, the prompt's first 75 tokens (embeddings expanded first). */
static sf_status build_plain(builder *b, const sf_tokenizer *tok, const char *prompt) {
  int32_t *toks = NULL;
  size_t n = 0;
  sf_status s = sf_tokenizer_tokenize(tok, prompt, strlen(prompt), &toks, &n, b->d);
  size_t count = 0, pos = 0;
  while (s == SF_OK && pos < n) {
    size_t matched = 0;
    long e = sf_embeddings_count(b->emb) ? sf_embeddings_match(b->emb, toks, n, pos, &matched) : -1;
    if (e < 0 || matched == 0) {
      if (b->len < CHUNK) {
        b->cur[b->len] = toks[pos];
        b->curw[b->len++] = 1.0f;
      }
      count++;
      pos++;
      continue;
    }
    int32_t first = 0;
    size_t vectors = 0;
    s = add_extra(b, e, &first, &vectors);
    for (size_t k = 0; s == SF_OK && k < vectors; k++, count++)
      if (b->len < CHUNK) {
        b->cur[b->len] = first + (int32_t)k;
        b->curw[b->len++] = 1.0f;
      }
    pos += matched;
  }
  free(toks);
  b->out->untruncated = count + 2;
  return s == SF_OK ? next_chunk(b) : s;
}

sf_status sf_prompt_chunks_build(const sf_tokenizer *tok, const sf_embeddings *emb, size_t hidden, int32_t extra_base,
                                 const char *prompt, int a1111, sf_prompt_chunks *out, sf_diag *d) {
  memset(out, 0, sizeof *out);
  if (tok == NULL || extra_base < 0) return sf_diag_set(d, SF_ERR_INVALID_ARGUMENT, "prompt: no tokenizer");
  builder b = {0};
  b.out = out;
  b.last_comma = -1;
  b.bos = sf_tokenizer_bos(tok);
  b.eos = sf_tokenizer_eos(tok);
  b.comma = -1;
  b.extra_base = extra_base;
  b.hidden = hidden;
  b.emb = emb;
  b.d = d;
  sf_status s = SF_OK;
  if (a1111) {
    /* A1111's comma_token: vocab[",</w>"], the one token "," becomes */
    int32_t *c = NULL;
    size_t nc = 0;
    s = sf_tokenizer_tokenize(tok, ",", 1, &c, &nc, d);
    if (s == SF_OK && nc == 1) b.comma = c[0];
    free(c);
    if (s == SF_OK) s = build_a1111(&b, tok, prompt ? prompt : "");
  } else {
    s = build_plain(&b, tok, prompt ? prompt : "");
  }
  if (s != SF_OK) sf_prompt_chunks_free(out);
  return s;
}

void sf_prompt_chunks_free(sf_prompt_chunks *c) {
  if (c == NULL) return;
  free(c->ids);
  free(c->weights);
  free(c->extra);
  memset(c, 0, sizeof *c);
}
