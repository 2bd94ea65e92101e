/* Prompts through the public API: arbitrary bytes (up to 64 KiB; the C string ends at the first
 * NUL) through sf_tokenize on a pipeline with tiny-sd's real tokenizer, and the whole input
 * (NULs included) through the same tokenizer's internal encoder.
 *
 * Invariants: every prompt tokenises (invalid UTF-8 reads as U+FFFD); exactly 77 ids, ids[0] =
 * BOS (49406), the untruncated count n >= 2, EOS (49407) at min(n, 77) - 1 and padding (EOS)
 * after it, every id in the vocabulary (sf_token_text knows it); the same ids twice; and the
 * internal encoder gives the public call's ids for inputs without NUL.
 * The same text through A1111's prompt syntax (text/prompt_syntax.h, text/prompt_chunks.h): it
 * parses (or is refused as an argument error with a message), every row is BOS + 75 ids in the
 * vocabulary + EOS with finite weights (1 at BOS/EOS), and plain mode gives the public ids. */
#include <math.h>

#include "fuzz_tokenizer_check.h"
#include "pipeline/pipeline.h"
#include "text/prompt_chunks.h"
#include "text/prompt_syntax.h"

static sf_context *ctx;
static sf_pipeline *pipe_;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  fz_tiny_sd_read();
  ctx = fz_context();
  sf_params *opt = NULL;
  if (sf_params_create(&opt) != SF_OK || sf_params_set_int(opt, SF_PARAM_COMPONENTS, SF_NET_TEXT_ENCODER) != SF_OK)
    fz_die("params");
  sf_files *files = fz_tiny_sd_set(NULL);
  if (sf_pipeline_load_files(ctx, files, opt, &pipe_) != SF_OK) fz_die(sf_last_error());
  sf_files_destroy(files); /* borrowed: the fixture bytes stay for the whole process */
  sf_params_destroy(opt);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 65536) return 0;
  char *prompt = malloc(size + 1);
  if (prompt == NULL) fz_die("out of memory");
  memcpy(prompt, data, size);
  prompt[size] = 0;
  int32_t ids[77], again[77];
  size_t n = 0, n2 = 0;
  sf_status s = sf_tokenize(pipe_, prompt, ids, 77, &n);
  FZ_ASSERT(s == SF_OK, "sf_tokenize: %s", sf_status_string(s));
  FZ_ASSERT(ids[0] == 49406, "ids[0] = %d", ids[0]);
  const sf_tokenizer *t = pipe_->tokenizer;
  FZ_ASSERT(sf_tokenizer_eos(t) == 49407 && sf_tokenizer_vocab_size(t) == 49408, "tiny-sd's tokenizer");
  fz_check_ids(t, ids, 77, n, 49407);
  for (int i = 0; i < 77; i++) {
    size_t need = 0;
    FZ_ASSERT(sf_token_text(pipe_, ids[i], NULL, 0, &need) == SF_OK && need > 1, "sf_token_text(%d)", ids[i]);
  }
  FZ_ASSERT(sf_tokenize(pipe_, prompt, again, 77, &n2) == SF_OK && n2 == n && memcmp(ids, again, sizeof ids) == 0,
            "two tokenisations differ");

  sf_diag d = {0};
  FZ_ASSERT(sf_tokenizer_encode(t, (const char *)data, size, 49407, again, 77, &n2, &d) == SF_OK, "encode: %s", d.msg);
  fz_check_ids(t, again, 77, n2, 49407);
  if (memchr(data, 0, size) == NULL)
    FZ_ASSERT(n2 == n && memcmp(ids, again, sizeof ids) == 0, "sf_tokenize and the internal encoder differ");
  sf_prompt_pieces pieces;
  sf_diag pd = {0};
  s = sf_prompt_parse_a1111(prompt, &pieces, &pd);
  FZ_ASSERT(s == SF_OK || (s == SF_ERR_INVALID_ARGUMENT && pd.msg[0]), "parse: %s %s", sf_status_string(s), pd.msg);
  if (s == SF_OK) {
    FZ_ASSERT(pieces.n >= 1, "no piece");
    size_t total = 0;
    for (size_t i = 0; i < pieces.n; i++) total += strlen(pieces.v[i].text);
    FZ_ASSERT(total <= strlen(prompt), "pieces longer than the prompt");
  }
  sf_prompt_pieces_free(&pieces);
  for (int a1111 = 0; a1111 <= 1; a1111++) {
    sf_prompt_chunks c;
    sf_diag cd = {0};
    s = sf_prompt_chunks_build(t, NULL, 8, 49408, prompt, a1111, &c, &cd);
    FZ_ASSERT(s == SF_OK || (a1111 && s == SF_ERR_INVALID_ARGUMENT && cd.msg[0]), "chunks: %s %s",
              sf_status_string(s), cd.msg);
    if (s != SF_OK) continue;
    FZ_ASSERT(c.n >= 1 && (a1111 || c.n == 1), "%zu rows", c.n);
    for (size_t r = 0; r < c.n; r++) {
      const int32_t *row = c.ids + r * 77;
      const float *w = c.weights + r * 77;
      FZ_ASSERT(row[0] == 49406 && row[76] == 49407 && w[0] == 1.0f && w[76] == 1.0f, "row %zu ends", r);
      for (int i = 0; i < 77; i++)
        FZ_ASSERT(row[i] >= 0 && row[i] < 49408 && isfinite(w[i]), "row %zu id %d weight %g", r, row[i], w[i]);
    }
    if (!a1111) FZ_ASSERT(memcmp(c.ids, ids, sizeof ids) == 0 && c.untruncated == n, "plain rows != sf_tokenize");
    sf_prompt_chunks_free(&c);
  }
  free(prompt);
  return 0;
}
