/* The tokenizer's vocab.json / merges.txt reader (internal: sf_tokenizer_load_dir_vfs, what a
 * pipeline load uses) on an in-memory file set. Input: vocab.json's bytes, a NUL byte, then
 * merges.txt's (no NUL: all vocab.json, and merges.txt is empty).
 *
 * Invariants: a refused pair fails with a known status and a message; a loaded tokenizer has
 * BOS and EOS in its vocabulary and encodes prompts (fixed ones, and the input's own bytes) into
 * well-formed ids (fuzz_tokenizer_check.h). */
#include "fuzz_tokenizer_check.h"
#include "io/vfs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *nul = memchr(data, 0, size);
  size_t vlen = nul ? (size_t)(nul - data) : size;
  const uint8_t *merges = nul ? nul + 1 : data + size;
  size_t mlen = nul ? size - vlen - 1 : 0;
  sf_vfs *fs = sf_vfs_mem_create();
  sf_diag d = {0};
  if (fs == NULL || sf_vfs_mem_add(fs, "tokenizer/vocab.json", data, vlen, 0, &d) != SF_OK ||
      sf_vfs_mem_add(fs, "tokenizer/merges.txt", merges, mlen, 0, &d) != SF_OK)
    fz_die("cannot build the file set");
  sf_tokenizer *t = sf_tokenizer_load_dir_vfs(fs, "tokenizer", &d);
  if (t == NULL) {
    FZ_ASSERT(d.status != SF_OK && d.status != SF_ERR_INTERNAL && d.msg[0], "status %d, message '%s'", (int)d.status,
              d.msg);
  } else {
    size_t vocab = sf_tokenizer_vocab_size(t);
    FZ_ASSERT(sf_tokenizer_bos(t) >= 0 && (size_t)sf_tokenizer_bos(t) < vocab, "BOS %d", sf_tokenizer_bos(t));
    FZ_ASSERT(sf_tokenizer_eos(t) >= 0 && (size_t)sf_tokenizer_eos(t) < vocab, "EOS %d", sf_tokenizer_eos(t));
    FZ_ASSERT(sf_tokenizer_token(t, (int32_t)vocab) == NULL && sf_tokenizer_token(t, -1) == NULL, "token out of range");
    fz_encode_checked(t, (const char *)merges, mlen);
    sf_tokenizer_free(t);
  }
  sf_vfs_mem_destroy(fs);
  return 0;
}
