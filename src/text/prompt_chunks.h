/* A prompt as the text encoder's input: rows of 77 token ids (BOS, 75 tokens, EOS), one
 * multiplier per token, and the vectors of the textual-inversion embeddings it names.
 *
 * Plain (diffusers): the whole prompt tokenized at once, cut to 75 tokens, one row; every
 *   multiplier 1. Exactly the ids a diffusers pipeline feeds its text encoder.
 * A1111: text/prompt_syntax.h's pieces, each tokenized alone (as A1111's tokenize_line does),
 *   filled into rows of 75 tokens; a BREAK or a full row starts the next row; a row that fills
 *   up within 20 tokens after a comma moves the tokens after the comma to the next row
 *   (A1111's comma_padding_backtrack = 20, its default); every row is BOS + 75 + EOS, padded
 *   with EOS; the multiplier of a token is its piece's weight (as float32), 1 for BOS, EOS
 *   and padding.
 * An embedding's word (matched as its token sequence, the longest first) becomes as many
 * positions as it has vectors, their ids extra_base + r for row r of `extra`; in A1111 mode
 * they never straddle two rows. */
#ifndef SF_TEXT_PROMPT_CHUNKS_H
#define SF_TEXT_PROMPT_CHUNKS_H

#include <stddef.h>
#include <stdint.h>

#include "core/diag.h"
#include "text/embeddings.h"
#include "text/tokenizer.h"

#define SF_PROMPT_CHUNK_TOKENS 77

typedef struct sf_prompt_chunks {
  size_t n;           /* rows */
  int32_t *ids;       /* [n * 77] */
  float *weights;     /* [n * 77] */
  int weighted;       /* some weight is not 1 */
  float *extra;       /* [n_extra, hidden]: the embeddings' vectors, in order of use */
  size_t n_extra;
  size_t untruncated; /* plain mode: tokens before the cut, BOS and EOS included */
} sf_prompt_chunks;

sf_status sf_prompt_chunks_build(const sf_tokenizer *tok, const sf_embeddings *emb, size_t hidden, int32_t extra_base,
                                 const char *prompt, int a1111, sf_prompt_chunks *out, sf_diag *d);
void sf_prompt_chunks_free(sf_prompt_chunks *c);

#endif
