/* OpenAI's bpe_simple_vocab_16e6.txt.gz reader (internal: sf_tokenizer_load_openai_gz, which
 * takes a path: a temporary file is written each run). Input: one mode byte, then
 *   odd mode byte:  the vocabulary text, gzip-compressed here (mutations reach the merges);
 *   even mode byte: the .gz file's bytes as they are (mutations reach the gzip stream).
 *
 * Invariants: as fuzz_tokenizer_files (a refusal has a known status and a message; a loaded
 * vocabulary encodes prompts into well-formed ids). */
#include <zlib.h>

#include "fuzz_tokenizer_check.h"

static const char *path;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  path = fz_tmp_file(".txt.gz");
  return 0;
}

/* data as a gzip file, malloc'd. */
static unsigned char *gzip(const uint8_t *data, size_t size, size_t *out_size) {
  z_stream z;
  memset(&z, 0, sizeof z);
  if (deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) fz_die("zlib");
  size_t cap = deflateBound(&z, (uLong)size) + 64;
  unsigned char *out = malloc(cap);
  if (out == NULL) fz_die("out of memory");
  z.next_in = (unsigned char *)data;
  z.avail_in = (uInt)size;
  z.next_out = out;
  z.avail_out = (uInt)cap;
  if (deflate(&z, Z_FINISH) != Z_STREAM_END) fz_die("deflate");
  *out_size = cap - z.avail_out;
  deflateEnd(&z);
  return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  if (data[0] & 1) {
    size_t zsize;
    unsigned char *z = gzip(data + 1, size - 1, &zsize);
    fz_write_file(path, z, zsize);
    free(z);
  } else {
    fz_write_file(path, data + 1, size - 1);
  }
  sf_diag d = {0};
  sf_tokenizer *t = sf_tokenizer_load_openai_gz(path, &d);
  if (t == NULL) {
    FZ_ASSERT(d.status != SF_OK && d.status != SF_ERR_INTERNAL && d.msg[0], "status %d, message '%s'", (int)d.status,
              d.msg);
    return 0;
  }
  FZ_ASSERT(sf_tokenizer_vocab_size(t) >= 514, "vocabulary of %zu", sf_tokenizer_vocab_size(t));
  fz_encode_checked(t, NULL, 0);
  sf_tokenizer_free(t);
  return 0;
}
