/* A1111's prompt attention syntax (text/prompt_syntax.h): the examples of A1111's own
 * documentation (the doctest of modules/prompt_parser.py parse_prompt_attention and the wiki's
 * "Attention/emphasis" section), weights compared exactly with Python's float results. */
#include "test.h"
#include "text/prompt_syntax.h"

typedef struct want {
  const char *text;
  double weight;
} want;

static void expect(const char *prompt, const want *w, size_t n) {
  sf_prompt_pieces p;
  sf_diag d = {0};
  sf_status s = sf_prompt_parse_a1111(prompt, &p, &d);
  CHECK_MSG(s == SF_OK, "%s: %s", prompt, d.msg);
  if (s != SF_OK) return;
  CHECK_MSG(p.n == n, "%s: %zu pieces, expected %zu", prompt, p.n, n);
  for (size_t i = 0; i < n && i < p.n; i++)
    CHECK_MSG(strcmp(p.v[i].text, w[i].text) == 0 && p.v[i].weight == w[i].weight,
              "%s: piece %zu is ['%s', %.17g], expected ['%s', %.17g]", prompt, i, p.v[i].text, p.v[i].weight,
              w[i].text, w[i].weight);
  sf_prompt_pieces_free(&p);
}

#define EXPECT(prompt, ...)                                  \
  do {                                                       \
    static const want w_[] = {__VA_ARGS__};                  \
    expect(prompt, w_, sizeof w_ / sizeof w_[0]);            \
  } while (0)

int main(void) {
  /* prompt_parser.py's doctest, verbatim (the Python reprs are the exact doubles) */
  EXPECT("normal text", {"normal text", 1.0});
  EXPECT("an (important) word", {"an ", 1.0}, {"important", 1.1}, {" word", 1.0});
  EXPECT("(unbalanced", {"unbalanced", 1.1});
  EXPECT("\\(literal\\]", {"(literal]", 1.0});
  EXPECT("(unnecessary)(parens)", {"unnecessaryparens", 1.1});
  EXPECT("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).", {"a ", 1.0}, {"house", 1.5730000000000004},
         {" ", 1.1}, {"on", 1.0}, {" a ", 1.1}, {"hill", 0.55}, {", sun, ", 1.1}, {"sky", 1.4641000000000006},
         {".", 1.1});
  /* the wiki's emphasis rules */
  EXPECT("a (word) b", {"a ", 1.0}, {"word", 1.1}, {" b", 1.0});
  EXPECT("a ((word)) b", {"a ", 1.0}, {"word", 1.2100000000000002}, {" b", 1.0});
  EXPECT("a [word] b", {"a ", 1.0}, {"word", 0.9090909090909091}, {" b", 1.0});
  EXPECT("a (word:1.5) b", {"a ", 1.0}, {"word", 1.5}, {" b", 1.0});
  EXPECT("a (word:0.25) b", {"a ", 1.0}, {"word", 0.25}, {" b", 1.0});
  EXPECT("a (word: 1.5 ) b", {"a ", 1.0}, {"word", 1.5}, {" b", 1.0});
  EXPECT("\\(word\\)", {"(word)", 1.0});
  EXPECT("a \\\\ b", {"a \\ b", 1.0});
  EXPECT("a \\b", {"a b", 1.0}); /* a lone backslash is dropped */
  /* stray closers and colons are text */
  EXPECT("a) b] c:d", {"a) b] c:d", 1.0});
  EXPECT("ratio 16:9", {"ratio 16:9", 1.0});
  EXPECT("x:1.5) y", {"x:1.5) y", 1.0}); /* a weight with no open '(' is text */
  EXPECT("[[a]", {"a", 0.82644628099173545});
  EXPECT("", {"", 1.0});
  EXPECT("()", {"", 1.0});
  /* BREAK: a whole upper-case word, surrounding whitespace removed */
  EXPECT("a cat BREAK a dog", {"a cat", 1.0}, {"BREAK", -1.0}, {"a dog", 1.0});
  EXPECT("BREAK", {"", 1.0}, {"BREAK", -1.0}, {"", 1.0});
  EXPECT("aBREAK b BREAKs break", {"aBREAK b BREAKs break", 1.0});
  EXPECT("a,BREAK,b", {"a,", 1.0}, {"BREAK", -1.0}, {",b", 1.0});
  EXPECT("(a) BREAK b", {"a", 1.1}, {"", 1.0}, {"BREAK", -1.0}, {"b", 1.0});
  /* A1111's quirk: inside brackets the marker's weight is multiplied, and it is no longer one */
  EXPECT("(a BREAK b)", {"a", 1.1}, {"BREAK", -1.1}, {"b", 1.1});
  {
    sf_prompt_pieces p;
    sf_diag d = {0};
    CHECK(sf_prompt_parse_a1111("(a BREAK b)", &p, &d) == SF_OK && p.n == 3 && !sf_prompt_piece_is_break(&p.v[1]));
    sf_prompt_pieces_free(&p);
    CHECK(sf_prompt_parse_a1111("a BREAK b", &p, &d) == SF_OK && p.n == 3 && sf_prompt_piece_is_break(&p.v[1]));
    sf_prompt_pieces_free(&p);
    /* a weight float() rejects is an error with a message */
    CHECK(sf_prompt_parse_a1111("(a:1.2.3)", &p, &d) == SF_ERR_INVALID_ARGUMENT && strstr(d.msg, "1.2.3") != NULL);
    CHECK(sf_prompt_parse_a1111("(a:.)", &p, &d) == SF_ERR_INVALID_ARGUMENT);
    CHECK(p.v == NULL && p.n == 0);
  }
  /* signed weights and nesting with a colon weight */
  EXPECT("(a:-1)", {"a", -1.0});
  EXPECT("((a:2))", {"a", 2.2000000000000002});
  EXPECT("(a:+.5)", {"a", 0.5});
  TEST_MAIN_END();
}
