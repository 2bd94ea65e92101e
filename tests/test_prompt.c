/* Prompts as the text encoder sees them (text/prompt_chunks.h) and the conditioning built from
 * them (sf_engine_encode_conditioning): diffusers' plain rows unchanged, A1111's rows of 75
 * tokens (long prompts, BREAK, the comma backtrack), weights on the right tokens, A1111's
 * emphasis arithmetic, and generations whose prompt and negative prompt differ in length. */
#include <stdint.h>

#include "pipeline/engine.h"
#include "pipeline/pipeline.h"
#include "pipeline/run.h"
#include "test.h"
#include "text/prompt_chunks.h"
#include "text/tokenizer.h"

#define T SF_PROMPT_CHUNK_TOKENS

static char fixtures[4096];

static const char *fixtures_root(void) {
  const char *e = getenv("SNAPFUSION_FIXTURES");
  return e && *e ? e : SF_TEST_DEFAULT_FIXTURES;
}

static int32_t one_token(const sf_tokenizer *tok, const char *word) {
  int32_t *ids = NULL;
  size_t n = 0;
  sf_diag d = {0};
  int32_t id = -1;
  if (sf_tokenizer_tokenize(tok, word, strlen(word), &ids, &n, &d) == SF_OK && n == 1) id = ids[0];
  free(ids);
  return id;
}

static sf_status build(const sf_tokenizer *tok, const char *prompt, int a1111, sf_prompt_chunks *c) {
  sf_diag d = {0};
  sf_status s = sf_prompt_chunks_build(tok, NULL, 8, 49408, prompt, a1111, c, &d);
  if (s != SF_OK) fprintf(stderr, "%s: %s\n", prompt, d.msg);
  return s;
}

/* Row r of c is BOS, want[0..n), EOS, then EOS padding. */
static int row_is(const sf_prompt_chunks *c, const sf_tokenizer *tok, size_t r, const int32_t *want, size_t n) {
  const int32_t *ids = c->ids + r * T;
  if (ids[0] != sf_tokenizer_bos(tok)) return 0;
  for (size_t i = 0; i < n; i++)
    if (ids[1 + i] != want[i]) return 0;
  for (size_t i = 1 + n; i < T; i++)
    if (ids[i] != sf_tokenizer_eos(tok)) return 0;
  return 1;
}

static void chunk_tests(const sf_tokenizer *tok) {
  int32_t cat = one_token(tok, "cat"), dog = one_token(tok, "dog"), comma = one_token(tok, ",");
  CHECK(cat >= 0 && dog >= 0 && comma >= 0 && cat != dog);
  sf_prompt_chunks a, b;
  sf_diag d = {0};

  /* plain = sf_tokenizer_encode's ids; A1111 on a prompt without syntax = the same ids */
  const char *prompt = "a photo of a cat, highly detailed";
  int32_t ids[T];
  CHECK(sf_tokenizer_encode(tok, prompt, strlen(prompt), sf_tokenizer_eos(tok), ids, T, NULL, &d) == SF_OK);
  CHECK(build(tok, prompt, 0, &a) == SF_OK && a.n == 1 && !a.weighted && memcmp(a.ids, ids, sizeof ids) == 0);
  CHECK(build(tok, prompt, 1, &b) == SF_OK && b.n == 1 && !b.weighted && memcmp(b.ids, ids, sizeof ids) == 0);
  sf_prompt_chunks_free(&a);
  sf_prompt_chunks_free(&b);

  /* weights on the tokens they belong to, as float32 of A1111's doubles */
  CHECK(build(tok, "a (cat:1.5) [dog]", 1, &a) == SF_OK && a.n == 1 && a.weighted);
  if (a.n == 1) {
    CHECK(a.ids[2] == cat && a.weights[2] == 1.5f && a.ids[3] == dog && a.weights[3] == (float)(1 / 1.1));
    CHECK(a.weights[0] == 1.0f && a.weights[1] == 1.0f && a.weights[4] == 1.0f && a.weights[T - 1] == 1.0f);
  }
  sf_prompt_chunks_free(&a);

  /* 100 tokens: plain cuts at 75, A1111 makes two rows */
  char long_prompt[1024] = "";
  for (int i = 0; i < 100; i++) strcat(long_prompt, "cat ");
  int32_t cats[100], dogs[10];
  for (int i = 0; i < 100; i++) cats[i] = cat;
  for (int i = 0; i < 10; i++) dogs[i] = dog;
  CHECK(build(tok, long_prompt, 0, &a) == SF_OK && a.n == 1 && a.untruncated == 102 && row_is(&a, tok, 0, cats, 75));
  CHECK(build(tok, long_prompt, 1, &b) == SF_OK && b.n == 2 && row_is(&b, tok, 0, cats, 75) &&
        row_is(&b, tok, 1, cats, 25));
  sf_prompt_chunks_free(&a);
  sf_prompt_chunks_free(&b);

  /* BREAK starts a row; a trailing BREAK adds none; an empty prompt is one row */
  CHECK(build(tok, "cat BREAK dog", 1, &a) == SF_OK && a.n == 2 && row_is(&a, tok, 0, &cat, 1) &&
        row_is(&a, tok, 1, &dog, 1));
  sf_prompt_chunks_free(&a);
  CHECK(build(tok, "cat BREAK", 1, &a) == SF_OK && a.n == 1 && row_is(&a, tok, 0, &cat, 1));
  sf_prompt_chunks_free(&a);
  CHECK(build(tok, "", 1, &a) == SF_OK && a.n == 1 && row_is(&a, tok, 0, NULL, 0));
  sf_prompt_chunks_free(&a);
  /* plain: BREAK is a word */
  CHECK(build(tok, "cat BREAK dog", 0, &a) == SF_OK && a.n == 1 && a.ids[2] != dog);
  sf_prompt_chunks_free(&a);

  /* the comma backtrack: 70 cats, a comma, 10 dogs -> the row ends after the comma */
  char comma_prompt[1024] = "";
  for (int i = 0; i < 70; i++) strcat(comma_prompt, "cat ");
  strcat(comma_prompt, ",");
  for (int i = 0; i < 10; i++) strcat(comma_prompt, " dog");
  int32_t row0[71];
  for (int i = 0; i < 70; i++) row0[i] = cat;
  row0[70] = comma;
  CHECK(build(tok, comma_prompt, 1, &a) == SF_OK && a.n == 2 && row_is(&a, tok, 0, row0, 71) &&
        row_is(&a, tok, 1, dogs, 10));
  sf_prompt_chunks_free(&a);
  /* a comma further back than 20 tokens does not move anything */
  char far_prompt[1024] = "";
  for (int i = 0; i < 40; i++) strcat(far_prompt, "cat ");
  strcat(far_prompt, ",");
  for (int i = 0; i < 40; i++) strcat(far_prompt, " dog");
  CHECK(build(tok, far_prompt, 1, &a) == SF_OK && a.n == 2 && a.ids[1 + 40] == comma && a.ids[1 + 74] == dog &&
        a.ids[T + 1] == dog && a.ids[T + 6] == dog && a.ids[T + 7] == sf_tokenizer_eos(tok));
  sf_prompt_chunks_free(&a);

  /* a malformed weight is an argument error */
  CHECK(sf_prompt_chunks_build(tok, NULL, 8, 49408, "(cat:1..2)", 1, &a, &d) == SF_ERR_INVALID_ARGUMENT);
  CHECK(a.ids == NULL && a.n == 0);
}

static sf_context *ctx;

static sf_pipeline *load_tiny(void) {
  char dir[4300];
  snprintf(dir, sizeof dir, "%s/tiny-sd", fixtures);
  sf_pipeline *p = NULL;
  sf_status s = sf_pipeline_load(ctx, dir, NULL, &p);
  CHECK_MSG(s == SF_OK, "load %s: %s", dir, sf_context_last_error(ctx));
  return p;
}

/* A1111's emphasis on the encoder output, checked from its definition. */
static void conditioning_tests(sf_pipeline *p) {
  sf_run *r = NULL;
  sf_diag d = {0};
  CHECK(sf_run_acquire(p, &r, &d) == SF_OK);
  if (r == NULL) return;
  size_t hd = p->text_cfg.hidden;
  float *plain = NULL, *a1111 = NULL, *w = NULL;
  size_t tp = 0, ta = 0, tw = 0;
  CHECK(sf_engine_encode_conditioning(p, r, "a photo of a cat", 0, 0, &plain, &tp, &d) == SF_OK && tp == T);
  CHECK(sf_engine_encode_conditioning(p, r, "a photo of a cat", 0, 1, &a1111, &ta, &d) == SF_OK && ta == T);
  CHECK(plain && a1111 && memcmp(plain, a1111, T * hd * sizeof *plain) == 0);
  /* the same ids through the building block give the same rows */
  int32_t ids[T];
  float *direct = malloc(T * hd * sizeof *direct);
  CHECK(sf_engine_tokenize(p, "a photo of a cat", ids, NULL, &d) == SF_OK &&
        sf_engine_encode_ids(p, r, ids, 1, T, 0, direct, &d) == SF_OK && plain &&
        memcmp(direct, plain, T * hd * sizeof *direct) == 0);
  free(direct);
  /* "(cat:1.5)": the cat row x1.5, then everything x (old mean / new mean) */
  CHECK(sf_engine_encode_conditioning(p, r, "a photo of a (cat:1.5)", 0, 1, &w, &tw, &d) == SF_OK && tw == T);
  if (plain && w) {
    double sum = 0, wsum = 0;
    for (size_t i = 0; i < T * hd; i++) sum += plain[i];
    for (size_t t = 0; t < T; t++)
      for (size_t k = 0; k < hd; k++) wsum += plain[t * hd + k] * (t == 5 ? 1.5f : 1.0f);
    float factor = (float)(sum / (double)(T * hd)) / (float)(wsum / (double)(T * hd));
    size_t bad = 0;
    for (size_t t = 0; t < T; t++)
      for (size_t k = 0; k < hd; k++) bad += w[t * hd + k] != (plain[t * hd + k] * (t == 5 ? 1.5f : 1.0f)) * factor;
    CHECK_MSG(bad == 0, "%zu values differ from A1111's emphasis", bad);
    CHECK(factor != 1.0f);
  }
  free(w);
  /* 100 tokens: two rows, each the encoding of its ids */
  char long_prompt[1024] = "";
  for (int i = 0; i < 100; i++) strcat(long_prompt, "cat ");
  w = NULL;
  CHECK(sf_engine_encode_conditioning(p, r, long_prompt, 0, 1, &w, &tw, &d) == SF_OK && tw == 2 * T);
  sf_prompt_chunks c;
  CHECK(sf_prompt_chunks_build(p->tokenizer, NULL, hd, 49408, long_prompt, 1, &c, &d) == SF_OK && c.n == 2);
  float *rows = malloc(2 * T * hd * sizeof *rows);
  CHECK(c.n == 2 && sf_engine_encode_ids(p, r, c.ids + T, 1, T, 0, rows, &d) == SF_OK && w &&
        memcmp(rows, w + T * hd, T * hd * sizeof *rows) == 0);
  sf_prompt_chunks_free(&c);
  free(rows);
  free(w);
  free(plain);
  free(a1111);
  sf_run_release(r);
}

static sf_image *generate(sf_pipeline *p, const char *prompt, const char *negative, int64_t syntax, sf_status *st) {
  sf_params *o = NULL;
  sf_image *img = NULL;
  sf_status s = sf_params_create(&o);
  if (s == SF_OK) s = sf_params_set_string(o, SF_PARAM_PROMPT, prompt);
  if (s == SF_OK && negative) s = sf_params_set_string(o, SF_PARAM_NEGATIVE_PROMPT, negative);
  if (s == SF_OK && syntax >= 0) s = sf_params_set_int(o, SF_PARAM_PROMPT_SYNTAX, syntax);
  if (s == SF_OK) s = sf_params_set_int(o, SF_PARAM_STEPS, 2);
  if (s == SF_OK) s = sf_params_set_int(o, SF_PARAM_SEED, 7);
  if (s == SF_OK) s = sf_generate(p, o, NULL, NULL, &img);
  sf_params_destroy(o);
  if (st) *st = s;
  return img;
}

static int same_pixels(const sf_image *a, const sf_image *b) {
  return a && b && sf_image_width(a) == sf_image_width(b) && sf_image_height(a) == sf_image_height(b) &&
         memcmp(sf_image_pixels(a), sf_image_pixels(b), sf_image_stride(a) * sf_image_height(a)) == 0;
}

static void generation_tests(sf_pipeline *p) {
  sf_status s;
  sf_image *plain = generate(p, "a photo of a cat", "blurry", -1, &s);
  CHECK(s == SF_OK);
  sf_image *a = generate(p, "a photo of a cat", "blurry", SF_PROMPT_SYNTAX_A1111, &s);
  CHECK(s == SF_OK && same_pixels(plain, a));
  sf_image_destroy(a);
  a = generate(p, "a photo of a (cat:1.0)", "blurry", SF_PROMPT_SYNTAX_A1111, &s);
  CHECK(s == SF_OK && same_pixels(plain, a));
  sf_image_destroy(a);
  a = generate(p, "a photo of a (cat:1.8)", "blurry", SF_PROMPT_SYNTAX_A1111, &s);
  CHECK(s == SF_OK && a && !same_pixels(plain, a));
  sf_image_destroy(a);
  /* plain: the parentheses are text */
  a = generate(p, "a photo of a (cat:1.0)", "blurry", SF_PROMPT_SYNTAX_PLAIN, &s);
  CHECK(s == SF_OK && a && !same_pixels(plain, a));
  sf_image_destroy(a);
  /* prompt of two chunks, negative of one (padded), and the other way round */
  char long_prompt[1024] = "";
  for (int i = 0; i < 90; i++) strcat(long_prompt, "cat ");
  a = generate(p, long_prompt, "blurry", SF_PROMPT_SYNTAX_A1111, &s);
  CHECK_MSG(s == SF_OK && a, "two-chunk prompt: %s", sf_context_last_error(ctx));
  sf_image *b = generate(p, "a photo of a cat", long_prompt, SF_PROMPT_SYNTAX_A1111, &s);
  CHECK(s == SF_OK && b && !same_pixels(a, b));
  sf_image_destroy(a);
  sf_image_destroy(b);
  /* with BREAK both sides have two chunks */
  a = generate(p, "a photo BREAK of a cat", "blurry BREAK ugly", SF_PROMPT_SYNTAX_A1111, &s);
  CHECK(s == SF_OK && a && !same_pixels(plain, a));
  sf_image_destroy(a);
  /* errors */
  a = generate(p, "(cat:1.2.3)", NULL, SF_PROMPT_SYNTAX_A1111, &s);
  CHECK(s == SF_ERR_INVALID_ARGUMENT && a == NULL && strstr(sf_context_last_error(ctx), "1.2.3") != NULL);
  /* weights out of float range, or that overflow the chunk's mean: refused, never NaN */
  a = generate(p, "(cat:99999999999999999999999999999999999999999)", NULL, SF_PROMPT_SYNTAX_A1111, &s);
  CHECK(s == SF_ERR_INVALID_ARGUMENT && a == NULL && strstr(sf_context_last_error(ctx), "float range") != NULL);
  a = generate(p, "a (dog:300000000000000000000000000000000000000)", NULL, SF_PROMPT_SYNTAX_A1111, &s);
  CHECK(s == SF_ERR_INVALID_ARGUMENT && a == NULL);
  a = generate(p, "cat", NULL, 5, &s);
  CHECK(s == SF_ERR_INVALID_ARGUMENT && a == NULL && strstr(sf_context_last_error(ctx), "SF_PARAM_PROMPT_SYNTAX"));
  sf_image_destroy(plain);
}

int main(void) {
  snprintf(fixtures, sizeof fixtures, "%s/public", fixtures_root());
  char tdir[4300];
  snprintf(tdir, sizeof tdir, "%s/tokenizer", fixtures);
  sf_diag d = {0};
  sf_tokenizer *tok = sf_tokenizer_load_dir(tdir, &d);
  if (tok == NULL) {
    printf("SKIPPED: %s\n", d.msg);
    return TEST_SKIP_EXIT_CODE;
  }
  chunk_tests(tok);
  sf_tokenizer_free(tok);
  CHECK(sf_context_create(&ctx) == SF_OK);
  sf_context_set_int(ctx, SF_PARAM_THREADS, 2);
  sf_pipeline *p = load_tiny();
  if (p) {
    conditioning_tests(p);
    generation_tests(p);
  }
  sf_pipeline_destroy(p);
  sf_context_destroy(ctx);
  TEST_MAIN_END();
}
