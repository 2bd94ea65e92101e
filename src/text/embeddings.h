/* Textual-inversion embeddings (placeholder until the loader lands: no embeddings). */
#ifndef SF_TEXT_EMBEDDINGS_H
#define SF_TEXT_EMBEDDINGS_H

#include <stddef.h>
#include <stdint.h>

#include "core/diag.h"
#include "text/tokenizer.h"

typedef struct sf_embeddings sf_embeddings;
size_t sf_embeddings_count(const sf_embeddings *e);
const char *sf_embeddings_word(const sf_embeddings *e, size_t i);
long sf_embeddings_match(const sf_embeddings *e, const int32_t *tokens, size_t n, size_t pos, size_t *len);
const float *sf_embeddings_vectors(const sf_embeddings *e, size_t i, size_t *count);

#endif
