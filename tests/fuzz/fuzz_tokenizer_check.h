/* The shape every tokenisation must have (shared by the tokenizer targets): exactly max_len ids,
 * BOS first, the untruncated count n (BOS and EOS included) at least 2, EOS at min(n, max_len)-1,
 * then only padding, and every id a vocabulary entry. */
#ifndef SF_FUZZ_TOKENIZER_CHECK_H
#define SF_FUZZ_TOKENIZER_CHECK_H

#include "fuzz_common.h"
#include "text/tokenizer.h"

static inline void fz_check_ids(const sf_tokenizer *t, const int32_t *ids, size_t max_len, size_t n, int32_t pad) {
  int32_t bos = sf_tokenizer_bos(t), eos = sf_tokenizer_eos(t);
  size_t vocab = sf_tokenizer_vocab_size(t);
  FZ_ASSERT(n >= 2, "untruncated count %zu", n);
  FZ_ASSERT(ids[0] == bos, "ids[0] = %d, BOS is %d", ids[0], bos);
  size_t used = n < max_len ? n : max_len;
  FZ_ASSERT(ids[used - 1] == eos, "ids[%zu] = %d, EOS is %d (untruncated %zu)", used - 1, ids[used - 1], eos, n);
  for (size_t i = used; i < max_len; i++) FZ_ASSERT(ids[i] == pad, "ids[%zu] = %d is not padding", i, ids[i]);
  for (size_t i = 0; i < used; i++) {
    FZ_ASSERT(ids[i] >= 0 && (size_t)ids[i] < vocab, "ids[%zu] = %d outside the vocabulary (%zu)", i, ids[i], vocab);
    FZ_ASSERT(sf_tokenizer_token(t, ids[i]) != NULL, "ids[%zu] = %d has no token", i, ids[i]);
  }
}

/* Encodes a few fixed prompts (and text, if not NULL) with t and checks them. */
static inline void fz_encode_checked(const sf_tokenizer *t, const char *text, size_t len) {
  static const char *const prompts[] = {"a photo of a cat", "",
                                        "Hello,   WORLD!! don't <|endoftext|>x<|startoftext|> 1234 caf\xc3\xa9 "
                                        "\xe7\x8c\xab \xf0\x9f\x98\x80 \xff\xfe",
                                        NULL};
  int32_t ids[77];
  sf_diag d = {0};
  for (int i = 0; prompts[i] || text; i++) {
    const char *s = prompts[i] ? prompts[i] : text;
    size_t n = prompts[i] ? strlen(s) : len, untrunc = 0;
    FZ_ASSERT(sf_tokenizer_encode(t, s, n, sf_tokenizer_eos(t), ids, 77, &untrunc, &d) == SF_OK, "encode: %s", d.msg);
    fz_check_ids(t, ids, 77, untrunc, sf_tokenizer_eos(t));
    if (prompts[i] == NULL) break;
  }
}

#endif
