/* CLIP tokenizer: every fixture prompt against the pipeline ids (vocab.json + merges.txt
 * and OpenAI's .gz give the same ids; pad 0 gives clip.tokenize's ids), robustness on
 * invalid UTF-8 / empty / huge prompts, and loader errors. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/resource.h>

#include "io/json.h"
#include "io/vfs.h"
#include "test.h"
#include "text/text_clean.h"
#include "text/tokenizer.h"

#define MAXLEN 77

static int ids_equal_json(const int32_t *ids, const sf_json *arr, size_t n) {
  if (arr == NULL || arr->type != SF_JSON_ARRAY || arr->len != n) return 0;
  for (size_t i = 0; i < n; i++) {
    int64_t v;
    if (!sf_json_as_i64(sf_json_at(arr, i), &v) || v != ids[i]) return 0;
  }
  return 1;
}

static void print_ids(const char *label, const int32_t *ids, size_t n) {
  fprintf(stderr, "  %s:", label);
  for (size_t i = 0; i < n; i++) {
    fprintf(stderr, " %d", ids[i]);
    if (ids[i] == 49407 && i + 1 < n && ids[i + 1] == 49407) break;
  }
  fputc('\n', stderr);
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  if (f) {
    fputs(text, f);
    fclose(f);
  }
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Output shape every prompt must have: BOS, tokens, EOS, then only padding. */
static int well_formed(const int32_t *ids, size_t n, size_t n_untrunc, int32_t pad) {
  if (ids[0] != 49406) return 0;
  size_t used = n_untrunc < n ? n_untrunc : n;
  if (ids[used - 1] != 49407) return 0;
  for (size_t i = used; i < n; i++) {
    if (ids[i] != pad) return 0;
  }
  for (size_t i = 1; i + 1 < used; i++) {
    if (ids[i] < 0 || ids[i] > 49407) return 0;
  }
  return 1;
}

static void test_cases(const sf_tokenizer *hf, const sf_tokenizer *oa, const char *fx) {
  char path[4200];
  snprintf(path, sizeof path, "%s/public/tokenizer/cases.json", fx);
  sf_diag d = {0};
  sf_json_doc *doc = sf_json_parse_file(path, (size_t)16 << 20, &d);
  CHECK_MSG(doc != NULL, "%s", d.msg);
  if (doc == NULL) return;
  const sf_json *cases = sf_json_get(sf_json_root(doc), "cases");
  CHECK(cases != NULL && cases->type == SF_JSON_ARRAY && cases->len >= 41);
  size_t n_cases = cases ? cases->len : 0, n_ok = 0, n_ftfy = 0;
  for (size_t c = 0; c < n_cases; c++) {
    const sf_json *cs = sf_json_at(cases, c);
    const char *name = sf_json_as_string(sf_json_get(cs, "name"));
    const sf_json *prompt = sf_json_get(cs, "prompt");
    int64_t n_untr_ref = -1;
    sf_json_as_i64(sf_json_get(cs, "num_tokens_untruncated"), &n_untr_ref);
    if (sf_json_as_bool(sf_json_get(cs, "ftfy_sensitive")) == 1) n_ftfy++;
    int32_t a[MAXLEN], b[MAXLEN], o[MAXLEN];
    size_t na = 0, nb = 0, no = 0;
    sf_status s1 = sf_tokenizer_encode(hf, prompt->u.str, prompt->len, 49407, a, MAXLEN, &na, &d);
    sf_status s2 = sf_tokenizer_encode(oa, prompt->u.str, prompt->len, 49407, b, MAXLEN, &nb, &d);
    sf_status s3 = sf_tokenizer_encode(hf, prompt->u.str, prompt->len, 0, o, MAXLEN, &no, &d);
    CHECK(s1 == SF_OK && s2 == SF_OK && s3 == SF_OK);
    int ok_ids = ids_equal_json(a, sf_json_get(cs, "input_ids"), MAXLEN);
    CHECK_MSG(ok_ids, "case %s: input_ids differ", name);
    if (!ok_ids) {
      print_ids("got", a, MAXLEN);
      const sf_json *ref = sf_json_get(cs, "bpe_tokens_untruncated");
      fprintf(stderr, "  ref tokens:");
      for (size_t i = 0; ref && i < ref->len; i++) fprintf(stderr, " %s", sf_json_as_string(sf_json_at(ref, i)));
      fprintf(stderr, "\n  got tokens:");
      for (size_t i = 0; i < MAXLEN && i < na; i++) fprintf(stderr, " %s", sf_tokenizer_token(hf, a[i]));
      fputc('\n', stderr);
    }
    CHECK_MSG((int64_t)na == n_untr_ref, "case %s: num_tokens_untruncated %zu != %lld", name, na,
              (long long)n_untr_ref);
    CHECK_MSG(memcmp(a, b, sizeof a) == 0 && na == nb, "case %s: .gz vocabulary gives other ids", name);
    CHECK_MSG(ids_equal_json(o, sf_json_get(cs, "openai_simple_tokenizer_ids"), MAXLEN) && no == na,
              "case %s: pad 0 differs from openai_simple_tokenizer_ids", name);
    if (ok_ids) n_ok++;
  }
  printf("fixture prompts matched: %zu/%zu (ftfy-sensitive among them: %zu)\n", n_ok, n_cases, n_ftfy);
  sf_json_free(doc);
}

static void test_robustness(const sf_tokenizer *t) {
  sf_diag d = {0};
  int32_t ids[MAXLEN];
  size_t n = 99;
  CHECK(sf_tokenizer_encode(t, "", 0, 49407, ids, MAXLEN, &n, &d) == SF_OK);
  CHECK_EQ_INT(n, 2);
  CHECK(well_formed(ids, MAXLEN, n, 49407));
  CHECK(sf_tokenizer_encode(t, NULL, 0, 0, ids, MAXLEN, &n, &d) == SF_OK && n == 2 && ids[2] == 0);

  /* Invalid UTF-8: each maximal invalid subsequence is one U+FFFD (errors="replace"). */
  static const char *const bad[] = {"\xFF", "abc\xE2\x82", "\xC3", "\xED\xA0\x80", "\xF4\x90\x80\x80",
                                    "\xC0\xAF", "x\x80y\xBFz", "\xF0\x9F\x98"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    sf_status st = sf_tokenizer_encode(t, bad[i], strlen(bad[i]), 49407, ids, MAXLEN, &n, &d);
    CHECK(st == SF_OK && well_formed(ids, MAXLEN, n, 49407));
  }
  /* A lone 0xFF reads as U+FFFD, whose byte-level BPE is its 3 UTF-8 bytes. */
  int32_t rep[MAXLEN];
  size_t nr = 0;
  CHECK(sf_tokenizer_encode(t, "\xEF\xBF\xBD", 3, 49407, rep, MAXLEN, &nr, &d) == SF_OK);
  CHECK(sf_tokenizer_encode(t, "\xFF", 1, 49407, ids, MAXLEN, &n, &d) == SF_OK);
  CHECK(n == nr && memcmp(ids, rep, sizeof ids) == 0);
  /* Truncated sequence inside a word: same as writing the U+FFFD explicitly. */
  CHECK(sf_tokenizer_encode(t, "ab\xE2\x82 cd", 7, 49407, ids, MAXLEN, &n, &d) == SF_OK);
  CHECK(sf_tokenizer_encode(t, "ab\xEF\xBF\xBD cd", 8, 49407, rep, MAXLEN, &nr, &d) == SF_OK);
  CHECK(n == nr && memcmp(ids, rep, sizeof ids) == 0);

  /* Random bytes, fixed seed. */
  uint64_t s = 0x9E3779B97F4A7C15ull;
  char buf[512];
  int all_ok = 1;
  for (int r = 0; r < 300; r++) {
    size_t len = (size_t)(r % 97) * 5 + 1;
    for (size_t i = 0; i < len; i++) {
      s ^= s << 13;
      s ^= s >> 7;
      s ^= s << 17;
      buf[i] = (char)(s >> 24);
    }
    sf_status st = sf_tokenizer_encode(t, buf, len, 49407, ids, MAXLEN, &n, &d);
    if (st != SF_OK || !well_formed(ids, MAXLEN, n, 49407)) all_ok = 0;
  }
  CHECK(all_ok);

  /* Special-token literals, text fix-ups beyond the fixtures. */
  CHECK(sf_tokenizer_encode(t, "a<|endoftext|>b", 15, 49407, ids, MAXLEN, &n, &d) == SF_OK);
  CHECK(n == 5 && ids[2] == 49407 && ids[1] == ids[1] && ids[4] == 49407);
  int32_t x[MAXLEN];
  size_t nx;
  CHECK(sf_tokenizer_encode(t, "&#x41;BC&eacute;", 16, 49407, ids, MAXLEN, &n, &d) == SF_OK);
  CHECK(sf_tokenizer_encode(t, "abc\xC3\xA9", 5, 49407, x, MAXLEN, &nx, &d) == SF_OK);
  CHECK(n == nx && memcmp(ids, x, sizeof x) == 0);
  /* '<' in the text turns HTML unescaping off, as ftfy's "auto" does. */
  CHECK(sf_tokenizer_encode(t, "&amp; <", 7, 49407, ids, MAXLEN, &n, &d) == SF_OK);
  CHECK(sf_tokenizer_encode(t, "& <", 3, 49407, x, MAXLEN, &nx, &d) == SF_OK);
  CHECK(n != nx);
  /* Windows-1252 mojibake of a right single quote, NFD -> NFC, soft hyphen kept. */
  CHECK(sf_tokenizer_encode(t, "don\xC3\xA2\xE2\x82\xAC\xE2\x84\xA2t", 12, 49407, ids, MAXLEN, &n, &d) == SF_OK);
  CHECK(sf_tokenizer_encode(t, "don't", 5, 49407, x, MAXLEN, &nx, &d) == SF_OK);
  CHECK(n == nx && memcmp(ids, x, sizeof x) == 0);
  /* Final sigma: "ΟΔΟΣ" lower-cases to "οδος" with a final ς. */
  CHECK(sf_tokenizer_encode(t, "\xCE\x9F\xCE\x94\xCE\x9F\xCE\xA3", 8, 49407, ids, MAXLEN, &n, &d) == SF_OK);
  CHECK(sf_tokenizer_encode(t, "\xCE\xBF\xCE\xB4\xCE\xBF\xCF\x82", 8, 49407, x, MAXLEN, &nx, &d) == SF_OK);
  CHECK(n == nx && memcmp(ids, x, sizeof x) == 0);

  /* Bad arguments. */
  CHECK(sf_tokenizer_encode(t, "a", 1, 49407, ids, 1, &n, &d) == SF_ERR_INVALID_ARGUMENT);
  CHECK(sf_tokenizer_token(t, -1) == NULL && sf_tokenizer_token(t, 49408) == NULL);
  CHECK(strcmp(sf_tokenizer_token(t, 320), "a</w>") == 0);
}

/* ftfy.fix_text on inputs whose results ftfy documents (docstrings and its tests). */
static void test_ftfy_examples(void) {
  static const char *const ex[][2] = {
      {"\xC3\xA2\xC5\x93\xE2\x80\x9D No problems", "\xE2\x9C\x94 No problems"},
      {"\xEF\xBC\xAC\xEF\xBC\xAF\xEF\xBC\xB5\xEF\xBC\xA4\xE3\x80\x80\xEF\xBC\xAE\xEF\xBC\xAF"
       "\xEF\xBC\xA9\xEF\xBC\xB3\xEF\xBC\xA5\xEF\xBC\xB3",
       "LOUD NOISES"},
      {"s\xC3\x83\xC2\xB3", "s\xC3\xB3"},
      {"voil\xC3\x83 le travail", "voil\xC3\xA0 le travail"},
      {"sch\xC3\x83\xC2\xB6n", "sch\xC3\xB6n"},
      {"This \xC3\xA2\xE2\x82\xAC\xE2\x80\x9D should be an em dash", "This \xE2\x80\x94 should be an em dash"},
      {"This text was never UTF-8 at all\xC2\x85", "This text was never UTF-8 at all\xE2\x80\xA6"},
      {"&amp;\n<html>\n&amp;", "&\n<html>\n&amp;"},
      {"P&EACUTE;REZ", "P\xC3\x89REZ"},
      {"BUNDESSTRA&SZLIG;E", "BUNDESSTRASSE"},
      {"&ntilde; &Ntilde; &NTILDE; &nTILDE;", "\xC3\xB1 \xC3\x91 \xC3\x91 &nTILDE;"},
      {"&#x2019;&#8217;&#59;&#x;&#12ab;", "''&#59;&#x;&#12ab;"},
      {"\x1B[36;44mI'm blue\x1B[0m", "I'm blue"},
      {"\xEF\xAC\x82" "u\xEF\xAC\x83" "e\xEF\xAC\x86", "fluffiest"},
      {"\xE2\x80\x9Chere\xE2\x80\x99s a test\xE2\x80\x9D", "\"here's a test\""},
      {"a\r\nb\rc\xE2\x80\xA8" "d", "a\nb\nc\nd"},
      {"x\x01\x7F\xEF\xBB\xBFy\xE2\x80\x8B", "xy\xE2\x80\x8B"},
      {"e\xCC\x81", "\xC3\xA9"},
  };
  for (size_t i = 0; i < sizeof ex / sizeof ex[0]; i++) {
    sf_cpbuf in = {0}, out = {0}, want = {0};
    CHECK(sf_text_decode_utf8(ex[i][0], strlen(ex[i][0]), &in) == SF_OK);
    CHECK(sf_text_decode_utf8(ex[i][1], strlen(ex[i][1]), &want) == SF_OK);
    CHECK(sf_text_ftfy(in.v, in.n, &out) == SF_OK);
    int eq = out.n == want.n && (out.n == 0 || memcmp(out.v, want.v, out.n * sizeof(uint32_t)) == 0);
    CHECK_MSG(eq, "ftfy example %zu", i);
    if (!eq) {
      for (size_t k = 0; k < out.n; k++) fprintf(stderr, " %X", out.v[k]);
      fputc('\n', stderr);
    }
    sf_cpbuf_free(&in);
    sf_cpbuf_free(&out);
    sf_cpbuf_free(&want);
  }
}

static void test_long(const sf_tokenizer *t) {
  size_t len = 100 * 1024;
  char *big = malloc(len + 1);
  CHECK(big != NULL);
  if (big == NULL) return;
  static const char *const words[] = {"a", "photo", "of", "an", "astronaut,", "riding", "HORSES", "on", "mars!!",
                                      "caf\xC3\xA9", "12345"};
  size_t p = 0, w = 0;
  while (p < len) {
    const char *s = words[w++ % (sizeof words / sizeof words[0])];
    size_t l = strlen(s);
    if (p + l + 1 > len) break;
    memcpy(big + p, s, l);
    p += l;
    big[p++] = ' ';
  }
  int32_t ids[MAXLEN];
  size_t n = 0;
  sf_diag d = {0};
  double t0 = now_s();
  CHECK(sf_tokenizer_encode(t, big, p, 49407, ids, MAXLEN, &n, &d) == SF_OK);
  double dt = now_s() - t0;
  CHECK(n > 20000 && ids[76] == 49407 && ids[75] != 49407);
  printf("100 KB prompt: %zu tokens in %.1f ms\n", n, dt * 1e3);
  /* One 100 KB "word" of letters: BPE must not be quadratic. */
  memset(big, 'q', len);
  for (size_t i = 0; i < len; i += 7) big[i] = 'u';
  t0 = now_s();
  CHECK(sf_tokenizer_encode(t, big, len, 49407, ids, MAXLEN, &n, &d) == SF_OK);
  printf("100 KB single word: %zu tokens in %.1f ms\n", n, (now_s() - t0) * 1e3);
  free(big);

  const char *p75 = "a highly detailed matte painting of a futuristic city at sunset with flying cars, trending on "
                    "artstation, octane render, 8k, masterpiece, best quality, ultra detailed, sharp focus";
  t0 = now_s();
  for (int i = 0; i < 100; i++) sf_tokenizer_encode(t, p75, strlen(p75), 49407, ids, MAXLEN, &n, &d);
  printf("typical prompt (%zu tokens): %.3f ms each\n", n, (now_s() - t0) * 10);
}

static void test_load_errors(const char *fx) {
  sf_diag d = {0};
  char vocab[4200], merges[4200];
  snprintf(vocab, sizeof vocab, "%s/public/tokenizer/vocab.json", fx);
  snprintf(merges, sizeof merges, "%s/public/tokenizer/merges.txt", fx);

  CHECK(sf_tokenizer_load_files("/nonexistent/vocab.json", merges, &d) == NULL);
  CHECK(d.status == SF_ERR_IO);
  sf_diag_clear(&d);
  CHECK(sf_tokenizer_load_files(vocab, "/nonexistent/merges.txt", &d) == NULL);
  CHECK(d.status == SF_ERR_IO);
  sf_diag_clear(&d);
  CHECK(sf_tokenizer_load_dir("/nonexistent", &d) == NULL && d.status == SF_ERR_IO);
  sf_diag_clear(&d);
  CHECK(sf_tokenizer_load_openai_gz("/nonexistent.gz", &d) == NULL && d.status == SF_ERR_IO);
  sf_diag_clear(&d);

  char dir[] = "/tmp/sf_tok_test_XXXXXX";
  if (mkdtemp(dir) == NULL) {
    CHECK(0);
    return;
  }
  char bad_vocab[128], bad_merges[128], small_vocab[128], not_gz[128];
  snprintf(bad_vocab, sizeof bad_vocab, "%s/bad_vocab.json", dir);
  snprintf(bad_merges, sizeof bad_merges, "%s/bad_merges.txt", dir);
  snprintf(small_vocab, sizeof small_vocab, "%s/small_vocab.json", dir);
  snprintf(not_gz, sizeof not_gz, "%s/not.gz", dir);
  write_file(bad_vocab, "{\"a\": 1, \"b\": ");
  CHECK(sf_tokenizer_load_files(bad_vocab, merges, &d) == NULL && d.status == SF_ERR_BAD_MODEL);
  sf_diag_clear(&d);
  write_file(bad_vocab, "{\"a\": \"one\"}");
  CHECK(sf_tokenizer_load_files(bad_vocab, merges, &d) == NULL && d.status == SF_ERR_BAD_MODEL);
  sf_diag_clear(&d);
  write_file(bad_vocab, "[1, 2]");
  CHECK(sf_tokenizer_load_files(bad_vocab, merges, &d) == NULL && d.status == SF_ERR_BAD_MODEL);
  sf_diag_clear(&d);
  /* A vocabulary without the byte symbols. */
  write_file(small_vocab, "{\"a\": 0, \"<|startoftext|>\": 1, \"<|endoftext|>\": 2}");
  CHECK(sf_tokenizer_load_files(small_vocab, merges, &d) == NULL && d.status == SF_ERR_BAD_MODEL);
  sf_diag_clear(&d);
  /* merges.txt with a symbol missing from the real vocabulary. */
  write_file(bad_merges, "#version: 0.2\nt h\nzzzq\xC3\xA9 xx\n");
  CHECK(sf_tokenizer_load_files(vocab, bad_merges, &d) == NULL && d.status == SF_ERR_BAD_MODEL);
  CHECK(strstr(d.msg, "line 3") != NULL);
  sf_diag_clear(&d);
  write_file(bad_merges, "#version: 0.2\nt h e\n");
  CHECK(sf_tokenizer_load_files(vocab, bad_merges, &d) == NULL && d.status == SF_ERR_BAD_MODEL);
  sf_diag_clear(&d);
  write_file(not_gz, "this is not gzip");
  CHECK(sf_tokenizer_load_openai_gz(not_gz, &d) == NULL && d.status == SF_ERR_BAD_MODEL);
  sf_diag_clear(&d);
  remove(bad_vocab);
  remove(bad_merges);
  remove(small_vocab);
  remove(not_gz);
  remove(dir);
}

static long peak_rss_kb(void) {
  struct rusage ru;
  return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : 0;
}

/* Found by fuzz_tokenizer_files: ids may leave gaps (up to 2^24), and the symbol table was sized
 * by the largest id, so one token at id 16777215 in a 6 KB vocab.json made the load write a
 * 400 MB table (15 s under the fuzzer). It is sized by the tokens there are. */
static void test_sparse_ids(void) {
  char *vocab = malloc(16384);
  size_t n = 0;
  if (vocab == NULL) {
    CHECK(0);
    return;
  }
  n += (size_t)snprintf(vocab + n, 16384 - n, "{");
  for (int eow = 0; eow < 2; eow++)
    for (int b = 0, other = 0; b < 256; b++) { /* bytes_to_unicode; ids in byte order */
      int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      int cp = printable ? b : 256 + other++;
      char u[4] = {0};
      if (cp == '"' || cp == '\\') snprintf(u, sizeof u, "\\%c", cp);
      else if (cp < 0x80) u[0] = (char)cp;
      else {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
      }
      n += (size_t)snprintf(vocab + n, 16384 - n, "\"%s%s\": %d, ", u, eow ? "</w>" : "", eow * 256 + b);
    }
  n += (size_t)snprintf(vocab + n, 16384 - n,
                        "\"<|startoftext|>\": 512, \"<|endoftext|>\": 513, \"zz</w>\": 16777215}");
  CHECK(n < 16384);
  static const char merges[] = "#version: 0.2\nz z</w>\n";
  sf_vfs *fs = sf_vfs_mem_create();
  sf_diag d = {0};
  CHECK(fs != NULL && sf_vfs_mem_add(fs, "tok/vocab.json", vocab, n, 0, &d) == SF_OK &&
        sf_vfs_mem_add(fs, "tok/merges.txt", merges, sizeof merges - 1, 0, &d) == SF_OK);
  long before = peak_rss_kb();
  sf_tokenizer *t = sf_tokenizer_load_dir_vfs(fs, "tok", &d);
  long grew = peak_rss_kb() - before;
  CHECK_MSG(t != NULL, "%s", d.msg);
  CHECK_MSG(grew < 150 * 1024, "loading a 6 KB vocabulary raised the peak RSS by %ld MB", grew / 1024);
  if (t != NULL) {
    CHECK_EQ_INT(sf_tokenizer_vocab_size(t), 16777216);
    CHECK(sf_tokenizer_token(t, 16777215) != NULL && strcmp(sf_tokenizer_token(t, 16777215), "zz</w>") == 0);
    CHECK(sf_tokenizer_token(t, 600) == NULL);
    int32_t ids[MAXLEN];
    size_t untrunc = 0;
    CHECK(sf_tokenizer_encode(t, "zz z", 4, 513, ids, MAXLEN, &untrunc, &d) == SF_OK);
    CHECK_EQ_INT(untrunc, 4);
    CHECK(ids[0] == 512 && ids[1] == 16777215 && ids[2] == 256 + 'z' && ids[3] == 513 && ids[4] == 513);
  }
  sf_tokenizer_free(t);
  sf_vfs_mem_destroy(fs);
  free(vocab);
}

int main(void) {
  test_sparse_ids();
  const char *fx = sf_test_fixtures();
  if (fx == NULL) return TEST_SKIP_EXIT_CODE;
  char dir[4200], gz[4200];
  snprintf(dir, sizeof dir, "%s/public/tokenizer", fx);
  snprintf(gz, sizeof gz, "%s/public/tokenizer/bpe_simple_vocab_16e6.txt.gz", fx);
  sf_diag d = {0};
  double t0 = now_s();
  sf_tokenizer *hf = sf_tokenizer_load_dir(dir, &d);
  double t1 = now_s();
  CHECK_MSG(hf != NULL, "%s", d.msg);
  sf_tokenizer *oa = sf_tokenizer_load_openai_gz(gz, &d);
  double t2 = now_s();
  CHECK_MSG(oa != NULL, "%s", d.msg);
  printf("load vocab.json+merges.txt: %.1f ms, .gz: %.1f ms\n", (t1 - t0) * 1e3, (t2 - t1) * 1e3);
  if (hf && oa) {
    CHECK_EQ_INT(sf_tokenizer_vocab_size(hf), 49408);
    CHECK_EQ_INT(sf_tokenizer_vocab_size(oa), 49408);
    CHECK_EQ_INT(sf_tokenizer_bos(hf), 49406);
    CHECK_EQ_INT(sf_tokenizer_eos(oa), 49407);
    int same_strings = 1;
    for (int32_t i = 0; i < 49408; i++) {
      if (strcmp(sf_tokenizer_token(hf, i), sf_tokenizer_token(oa, i)) != 0) same_strings = 0;
    }
    CHECK(same_strings);
    test_cases(hf, oa, fx);
    test_robustness(hf);
    test_ftfy_examples();
    test_long(hf);
  }
  test_load_errors(fx);
  sf_tokenizer_free(hf);
  sf_tokenizer_free(oa);
  TEST_MAIN_END();
}
