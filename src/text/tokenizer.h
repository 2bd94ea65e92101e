/* CLIP BPE tokenizer, exact to what Stable Diffusion pipelines feed the text encoder:
 * transformers' (slow) CLIPTokenizer with ftfy installed, which also equals OpenAI's
 * simple_tokenizer apart from padding. Pipeline per prompt:
 *   UTF-8 decode (invalid bytes -> U+FFFD, like errors="replace")
 *   -> split on the literal special tokens "<|startoftext|>" / "<|endoftext|>"
 *   -> per piece: ftfy.fix_text, whitespace_clean, lower()
 *   -> CLIP's pre-tokenizer regex -> byte-level BPE with "</w>" word ends
 *   -> BOS, at most max_len-2 tokens, EOS, padding.
 *
 * A tokenizer is immutable after loading: sf_tokenizer_encode keeps no cache inside it,
 * so one tokenizer may be used from several threads at once. */
#ifndef SF_TEXT_TOKENIZER_H
#define SF_TEXT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "core/diag.h"
#include "io/vfs.h"
#include "snapfusion.h"

typedef struct sf_tokenizer sf_tokenizer;

/* vocab.json (an object token -> id) + merges.txt (first line, "#version: 0.2", skipped;
 * at most 48894 merges are read, as CLIPTokenizer does). Every merge's two symbols and
 * their concatenation must be vocabulary tokens (SF_ERR_BAD_MODEL otherwise). */
sf_tokenizer *sf_tokenizer_load_files(const char *vocab_json_path, const char *merges_txt_path, sf_diag *d);
/* A diffusers "tokenizer/" folder: <dir>/vocab.json and <dir>/merges.txt. */
sf_tokenizer *sf_tokenizer_load_dir(const char *tokenizer_dir, sf_diag *d);
/* The same two, reading from fs (io/vfs.h; memory files are named "memory:PATH" in messages). */
sf_tokenizer *sf_tokenizer_load_files_vfs(const sf_vfs *fs, const char *vocab_json_path, const char *merges_txt_path,
                                          sf_diag *d);
sf_tokenizer *sf_tokenizer_load_dir_vfs(const sf_vfs *fs, const char *tokenizer_dir, sf_diag *d);
/* OpenAI's bpe_simple_vocab_16e6.txt.gz; the vocabulary is built as simple_tokenizer
 * does (256 byte symbols, the same with "</w>", one token per merge, then the two
 * special tokens), so ids equal those of the diffusers files. */
sf_tokenizer *sf_tokenizer_load_openai_gz(const char *bpe_gz_path, sf_diag *d);
void sf_tokenizer_free(sf_tokenizer *t);

/* Encodes text[0..len) into exactly max_len ids: BOS, up to max_len-2 tokens, EOS, then
 * pad_id (49407 for diffusers/transformers, 0 for OpenAI's clip.tokenize). A literal
 * "<|endoftext|>" in the prompt becomes id 49407 mid-sequence, as in both references.
 * *n_untruncated (optional) = number of ids before truncation, BOS and EOS included
 * (the fixtures' num_tokens_untruncated). max_len must be >= 2. */
sf_status sf_tokenizer_encode(const sf_tokenizer *t, const char *text, size_t len, int32_t pad_id,
                              int32_t *ids, size_t max_len, size_t *n_untruncated, sf_diag *d);

/* The tokens of text[0..len) as sf_tokenizer_encode finds them, without BOS/EOS, padding or
 * truncation: *ids is malloc'ed (the caller frees it; NULL when *n is 0). A1111's prompt
 * syntax tokenizes each weighted piece of a prompt this way. */
sf_status sf_tokenizer_tokenize(const sf_tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n,
                                sf_diag *d);

/* The token string of an id in vocab.json's byte-level form ("photo</w>"), NULL if
 * out of range. For debugging output. */
const char *sf_tokenizer_token(const sf_tokenizer *t, int32_t id);
/* Vocabulary size (max id + 1), and the BOS / EOS ids. */
size_t sf_tokenizer_vocab_size(const sf_tokenizer *t);
int32_t sf_tokenizer_bos(const sf_tokenizer *t);
int32_t sf_tokenizer_eos(const sf_tokenizer *t);

#endif
