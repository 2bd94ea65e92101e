#define _POSIX_C_SOURCE 200809L
#include <locale.h>
#include <stdint.h>

#include "io/json.h"
#include "test.h"

static sf_diag diag;

static sf_json_doc *parse_n(const char *s, size_t n) {
  sf_diag_clear(&diag);
  return sf_json_parse(s, n, &diag);
}

static sf_json_doc *parse(const char *s) { return parse_n(s, strlen(s)); }

/* Asserts that text is rejected as bad input with a message containing needle and the
 * byte offset. */
static void reject_n(const char *text, size_t n, const char *needle, int line) {
  sf_json_doc *doc = parse_n(text, n);
  CHECK_MSG(doc == NULL, "line %d: accepted", line);
  sf_json_free(doc);
  CHECK_MSG(diag.status == SF_ERR_BAD_MODEL, "line %d: status %d", line, (int)diag.status);
  CHECK_MSG(strstr(diag.msg, needle) != NULL, "line %d: message '%s' lacks '%s'", line, diag.msg,
            needle);
  CHECK_MSG(strstr(diag.msg, "at byte ") != NULL, "line %d: no offset in '%s'", line, diag.msg);
}

#define REJECT(text, needle) reject_n(text, sizeof(text) - 1, needle, __LINE__)

static void test_structure(void) {
  sf_json_doc *doc = parse(" {\"a\": [1, 2, {\"b\": null}], \"c\": true, \"d\": false,\n"
                           "  \"e\": \"x\", \"f\": {}, \"g\": []} ");
  CHECK(doc != NULL);
  if (doc == NULL) return;
  const sf_json *r = sf_json_root(doc);
  CHECK_EQ_INT(r->type, SF_JSON_OBJECT);
  CHECK_EQ_INT(r->len, 6);
  CHECK(strcmp(r->u.obj.keys[0], "a") == 0 && strcmp(r->u.obj.keys[5], "g") == 0);
  const sf_json *a = sf_json_get(r, "a");
  CHECK(a && a->type == SF_JSON_ARRAY && a->len == 3);
  int64_t v = 0;
  CHECK(sf_json_as_i64(sf_json_at(a, 1), &v) && v == 2);
  CHECK(sf_json_at(a, 3) == NULL);
  CHECK(sf_json_is_null(sf_json_get(sf_json_at(a, 2), "b")));
  CHECK(sf_json_get(sf_json_at(a, 2), "b") != NULL);
  CHECK_EQ_INT(sf_json_as_bool(sf_json_get(r, "c")), 1);
  CHECK_EQ_INT(sf_json_as_bool(sf_json_get(r, "d")), 0);
  CHECK_EQ_INT(sf_json_as_bool(sf_json_get(r, "e")), -1);
  CHECK(strcmp(sf_json_as_string(sf_json_get(r, "e")), "x") == 0);
  CHECK(sf_json_as_string(sf_json_get(r, "c")) == NULL);
  CHECK(sf_json_get(r, "zz") == NULL);
  CHECK(sf_json_get(a, "a") == NULL); /* not an object */
  CHECK(sf_json_get(sf_json_get(r, "f"), "a") == NULL);
  CHECK_EQ_INT(sf_json_get(r, "g")->len, 0);
  CHECK(sf_json_is_null(NULL));
  sf_json_free(doc);

  /* scalars at top level */
  doc = parse("\"only\"");
  CHECK(doc && strcmp(sf_json_as_string(sf_json_root(doc)), "only") == 0);
  sf_json_free(doc);
  doc = parse("null");
  CHECK(doc && sf_json_is_null(sf_json_root(doc)));
  sf_json_free(doc);
  /* byte order mark: RFC 8259 lets parsers ignore it */
  doc = parse("\xEF\xBB\xBF[1]");
  CHECK(doc != NULL);
  sf_json_free(doc);
}

static void test_strings(void) {
  sf_json_doc *doc =
      parse("[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\", \"\\u0041\\u00e9\\u20AC\\ud83d\\ude00\","
            " \"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\", \"a\\u0000b\"]");
  CHECK(doc != NULL);
  if (doc == NULL) return;
  const sf_json *r = sf_json_root(doc);
  CHECK(strcmp(sf_json_at(r, 0)->u.str, "\"\\/\b\f\n\r\t") == 0);
  CHECK_EQ_INT(sf_json_at(r, 0)->len, 8);
  CHECK(strcmp(sf_json_at(r, 1)->u.str, "A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80") == 0);
  CHECK_EQ_INT(sf_json_at(r, 1)->len, 10);
  CHECK(strcmp(sf_json_at(r, 2)->u.str, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf") ==
        0);
  CHECK_EQ_INT(sf_json_at(r, 3)->len, 3);
  CHECK(memcmp(sf_json_at(r, 3)->u.str, "a\0b", 4) == 0);
  sf_json_free(doc);

  doc = parse("{\"k\\u0000x\": 1, \"k\": 2, \"\xe2\x82\xac\": 3}");
  CHECK(doc != NULL);
  if (doc) {
    const sf_json *r2 = sf_json_root(doc);
    int64_t v = 0;
    CHECK(sf_json_as_i64(sf_json_get_n(r2, "k\0x", 3), &v) && v == 1);
    CHECK(sf_json_as_i64(sf_json_get(r2, "k"), &v) && v == 2);
    CHECK(sf_json_as_i64(sf_json_get(r2, "\xe2\x82\xac"), &v) && v == 3);
    CHECK_EQ_INT(r2->u.obj.key_lens[0], 3);
  }
  sf_json_free(doc);
}

static void test_numbers(void) {
  sf_json_doc *doc = parse("[0, -0, 1.5, -1e-3, 1E+2, 18446744073709551615, -9223372036854775808,"
                           " 9223372036854775807, 9223372036854775808, 18446744073709551616,"
                           " 1e3, 2.0, 2.5, 0.1, 1.7976931348623157e308, 5e-324,"
                           " 123456789012345678901234567890, 1.2345678901234567890123,"
                           " 1000000000000000000000e-21, 10e-1, 0.0001e4, -1.0]");
  CHECK(doc != NULL);
  if (doc == NULL) return;
  const sf_json *r = sf_json_root(doc);
  int64_t i;
  uint64_t u;
  double x;
  CHECK(sf_json_as_i64(sf_json_at(r, 0), &i) && i == 0);
  CHECK(sf_json_as_u64(sf_json_at(r, 1), &u) && u == 0);
  CHECK(sf_json_as_double(sf_json_at(r, 1), &x) && x == 0.0 && signbit(x));
  CHECK(sf_json_as_double(sf_json_at(r, 2), &x) && x == 1.5);
  CHECK(!sf_json_as_i64(sf_json_at(r, 2), &i));
  CHECK(sf_json_as_double(sf_json_at(r, 3), &x) && x == -1e-3);
  CHECK(sf_json_as_i64(sf_json_at(r, 4), &i) && i == 100);
  CHECK(sf_json_as_u64(sf_json_at(r, 5), &u) && u == UINT64_MAX);
  CHECK(!sf_json_as_i64(sf_json_at(r, 5), &i));
  CHECK(sf_json_as_i64(sf_json_at(r, 6), &i) && i == INT64_MIN);
  CHECK(!sf_json_as_u64(sf_json_at(r, 6), &u));
  CHECK(sf_json_as_i64(sf_json_at(r, 7), &i) && i == INT64_MAX);
  CHECK(!sf_json_as_i64(sf_json_at(r, 8), &i));
  CHECK(sf_json_as_u64(sf_json_at(r, 8), &u) && u == (uint64_t)INT64_MAX + 1);
  CHECK(!sf_json_as_u64(sf_json_at(r, 9), &u));
  CHECK(sf_json_as_double(sf_json_at(r, 9), &x) && x == 18446744073709551616.0);
  CHECK(sf_json_as_i64(sf_json_at(r, 10), &i) && i == 1000);
  CHECK(sf_json_as_i64(sf_json_at(r, 11), &i) && i == 2);
  CHECK(!sf_json_as_i64(sf_json_at(r, 12), &i) && !sf_json_as_u64(sf_json_at(r, 12), &u));
  CHECK(sf_json_as_double(sf_json_at(r, 13), &x) && x == 0.1);
  CHECK(sf_json_as_double(sf_json_at(r, 14), &x) && x == 1.7976931348623157e308);
  CHECK(sf_json_as_double(sf_json_at(r, 15), &x) && x == 5e-324);
  CHECK(sf_json_as_double(sf_json_at(r, 16), &x) && x == 123456789012345678901234567890.0);
  CHECK(!sf_json_as_u64(sf_json_at(r, 16), &u));
  CHECK(sf_json_as_double(sf_json_at(r, 17), &x) && x == 1.2345678901234567890123);
  CHECK(sf_json_as_i64(sf_json_at(r, 18), &i) && i == 1);
  CHECK(sf_json_as_i64(sf_json_at(r, 19), &i) && i == 1);
  CHECK(sf_json_as_i64(sf_json_at(r, 20), &i) && i == 1);
  CHECK(sf_json_as_i64(sf_json_at(r, 21), &i) && i == -1);
  CHECK(!sf_json_as_u64(sf_json_at(r, 21), &u));
  const sf_json *n5 = sf_json_at(r, 5);
  CHECK(n5->u.num.text_len == 20 && memcmp(n5->u.num.text, "18446744073709551615", 20) == 0);
  CHECK(!sf_json_as_i64(NULL, &i) && !sf_json_as_double(sf_json_at(r, 99), &x));
  sf_json_free(doc);

  /* The host's locale must not change how numbers are read (',' decimal point). */
  if (setlocale(LC_NUMERIC, "de_DE.UTF-8") != NULL || setlocale(LC_NUMERIC, "fr_FR.UTF-8")) {
    doc = parse("[1.2345678901234567890123, 0.5]");
    CHECK(doc != NULL);
    if (doc) {
      CHECK(sf_json_as_double(sf_json_at(sf_json_root(doc), 0), &x) &&
            x == 1.2345678901234567890123);
      CHECK(sf_json_as_double(sf_json_at(sf_json_root(doc), 1), &x) && x == 0.5);
    }
    sf_json_free(doc);
    setlocale(LC_NUMERIC, "C");
  }
}

static void test_nonfinite(void) {
  const char *text = "[NaN, Infinity, -Infinity, -1, 2]";
  sf_json_doc *doc = parse(text);
  CHECK(doc == NULL && strstr(diag.msg, "unexpected character 'N'") != NULL);
  sf_diag_clear(&diag);
  doc = sf_json_parse_ex(text, strlen(text), SF_JSON_ALLOW_NONFINITE, &diag);
  CHECK_MSG(doc != NULL, "%s", diag.msg);
  if (doc) {
    const sf_json *r = sf_json_root(doc);
    double x = 0;
    int64_t i;
    CHECK(sf_json_as_double(sf_json_at(r, 0), &x) && isnan(x));
    CHECK(sf_json_as_double(sf_json_at(r, 1), &x) && isinf(x) && x > 0);
    CHECK(sf_json_as_double(sf_json_at(r, 2), &x) && isinf(x) && x < 0);
    CHECK(!sf_json_as_i64(sf_json_at(r, 2), &i));
    CHECK(sf_json_as_i64(sf_json_at(r, 3), &i) && i == -1);
  }
  sf_json_free(doc);
  sf_diag_clear(&diag);
  doc = sf_json_parse_ex("[-Inf]", 6, SF_JSON_ALLOW_NONFINITE, &diag);
  CHECK(doc == NULL && strstr(diag.msg, "digit") != NULL);
  sf_json_free(doc);
}

static void test_depth(void) {
  char buf[256];
  for (int depth = 63; depth <= 66; depth++) {
    int n = 0;
    for (int k = 0; k < depth; k++) buf[n++] = '[';
    for (int k = 0; k < depth; k++) buf[n++] = ']';
    sf_json_doc *doc = parse_n(buf, (size_t)n);
    if (depth <= 64) {
      CHECK_MSG(doc != NULL, "depth %d: %s", depth, diag.msg);
    } else {
      CHECK(doc == NULL && strstr(diag.msg, "nesting") != NULL);
    }
    sf_json_free(doc);
  }
  /* objects count too */
  char obj[1024];
  int n = 0;
  for (int k = 0; k < 65; k++) n += snprintf(obj + n, sizeof obj - (size_t)n, "{\"a\":");
  n += snprintf(obj + n, sizeof obj - (size_t)n, "1");
  for (int k = 0; k < 65; k++) obj[n++] = '}';
  reject_n(obj, (size_t)n, "nesting deeper than 64", __LINE__);
}

static void test_rejections(void) {
  REJECT("", "empty");
  REJECT("  \n\t ", "empty");
  REJECT("{\"a\":1,\"a\":2}", "duplicate key \"a\"");
  REJECT("{\"a\":1,\"a\":2}", "at byte 7 (line 1");
  REJECT("{\"\\u0061\":1,\"a\":2}", "duplicate");
  REJECT("{\"k0\":0,\"k1\":1,\"k2\":2,\"k3\":3,\"k4\":4,\"k5\":5,\"k6\":6,\"k7\":7,\"k8\":8,"
         "\"k9\":9,\"k10\":0,\"k11\":1,\"k12\":2,\"k13\":3,\"k14\":4,\"k9\":5}",
         "duplicate key \"k9\"");
  REJECT("[1,2", "unterminated array");
  REJECT("{\"a\":1", "unterminated object");
  REJECT("[1,]", "trailing comma");
  REJECT("{\"a\":1,}", "trailing comma");
  REJECT("[1 2]", "expected ',' or ']'");
  REJECT("{\"a\":1 \"b\":2}", "expected ',' or '}'");
  REJECT("{1:2}", "string key");
  REJECT("{\"a\" 1}", "':'");
  REJECT("01", "leading zero");
  REJECT("-01", "leading zero");
  REJECT("1.", "digit after '.'");
  REJECT("1.e5", "digit after '.'");
  REJECT("1e", "exponent");
  REJECT("1e+", "exponent");
  REJECT("-", "digit");
  REJECT("-a", "digit");
  REJECT("+1", "unexpected character '+'");
  REJECT(".5", "unexpected character '.'");
  REJECT("NaN", "unexpected character 'N'");
  REJECT("Infinity", "unexpected character 'I'");
  REJECT("-Infinity", "digit");
  REJECT("nan", "invalid literal");
  REJECT("tru", "invalid literal");
  REJECT("nul", "invalid literal");
  REJECT("1e400", "range");
  REJECT("-1e400", "range");
  REJECT("1 2", "trailing characters");
  REJECT("{} x", "trailing characters");
  REJECT("[]]", "trailing characters");
  REJECT("\"abc", "unterminated string");
  REJECT("\"abc\\", "unterminated string");
  REJECT("\"abc\\\"", "unterminated string");
  REJECT("\"a\x01z\"", "control character 0x01");
  REJECT("\"a\tz\"", "control character 0x09");
  REJECT("\"a\nz\"", "control character 0x0a");
  REJECT("\"\\x\"", "invalid escape");
  REJECT("\"\\'\"", "invalid escape");
  REJECT("\"\\u12\"", "\\u escape");
  REJECT("\"\\u12g4\"", "\\u escape");
  REJECT("\"\\ud800\"", "lone high surrogate");
  REJECT("\"\\ud800\\u0041\"", "lone high surrogate");
  REJECT("\"\\ud800\\ud800\"", "lone high surrogate");
  REJECT("\"\\udc00\"", "lone low surrogate");
  REJECT("\"\\ude00\\ud83d\"", "lone low surrogate");
  REJECT("\"\xc0\x80\"", "overlong");
  REJECT("\"\xc1\xbf\"", "overlong");
  REJECT("\"\xe0\x80\x80\"", "overlong");
  REJECT("\"\xe0\x9f\xbf\"", "overlong");
  REJECT("\"\xf0\x80\x80\x80\"", "overlong");
  REJECT("\"\xf0\x8f\xbf\xbf\"", "overlong");
  REJECT("\"\xed\xa0\x80\"", "surrogate");
  REJECT("\"\xed\xbf\xbf\"", "surrogate");
  REJECT("\"\xf4\x90\x80\x80\"", "above U+10FFFF");
  REJECT("\"\xf5\x80\x80\x80\"", "above U+10FFFF");
  REJECT("\"\xff\"", "above U+10FFFF");
  REJECT("\"\xe2\x82\"", "truncated");
  REJECT("\"\xe2\x82", "unterminated");
  REJECT("\"\xf0\x9f\x98 \"", "truncated");
  REJECT("\"\x80\"", "continuation");
  REJECT("{\"\xc3\":1}", "invalid UTF-8");
  REJECT("{\"ok\":1, \"\xed\xa0\x80\":1}", "surrogate");
  REJECT("[\xc3\xa9]", "unexpected byte 0xc3");
  REJECT("[1,\n2,\n]", "line 3");
  REJECT("[1,\n2,\n]", "at byte 7");
  REJECT("[\"a\"\0]", "expected ',' or ']'");
}

static void test_big_object(void) {
  /* Shaped like vocab.json: one object with ~50k keys must parse in well under a second
   * (hash-based duplicate check), and a repeated key among them is still caught. */
  const size_t n = 50000;
  size_t cap = n * 32 + 64, len = 0;
  char *buf = malloc(cap);
  CHECK(buf != NULL);
  if (buf == NULL) return;
  buf[len++] = '{';
  for (size_t i = 0; i < n; i++)
    len += (size_t)snprintf(buf + len, cap - len, "%s\"tok%zu</w>\": %zu", i ? "," : "", i, i);
  buf[len++] = '}';
  sf_json_doc *doc = parse_n(buf, len);
  CHECK_MSG(doc != NULL, "%s", diag.msg);
  if (doc) {
    const sf_json *r = sf_json_root(doc);
    CHECK_EQ_INT(r->len, n);
    int64_t v = 0;
    CHECK(sf_json_as_i64(sf_json_get(r, "tok49999</w>"), &v) && v == 49999);
    CHECK(sf_json_as_i64(sf_json_get_n(r, "tok7</w>", 8), &v) && v == 7);
  }
  sf_json_free(doc);
  /* duplicate the key of entry 123 at the end */
  buf[len - 1] = '\0';
  len--;
  len += (size_t)snprintf(buf + len, cap - len, ",\"tok123</w>\": 1}");
  doc = parse_n(buf, len);
  CHECK(doc == NULL && strstr(diag.msg, "duplicate key \"tok123</w>\"") != NULL);
  sf_json_free(doc);
  free(buf);
}

static void test_files(void) {
  sf_diag_clear(&diag);
  sf_json_doc *doc = sf_json_parse_file("/nonexistent/dir/x.json", 1 << 20, &diag);
  CHECK(doc == NULL && diag.status == SF_ERR_IO && strstr(diag.msg, "/nonexistent/dir/x.json"));

  char path[] = "/tmp/sf_test_json_XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  if (fd < 0) return;
  FILE *f = fdopen(fd, "wb");
  fputs("{\"a\": [1, 2, 3], \"b\": 1.25}", f);
  fclose(f);
  sf_diag_clear(&diag);
  doc = sf_json_parse_file(path, 1 << 20, &diag);
  CHECK(doc != NULL);
  double x = 0;
  CHECK(doc && sf_json_as_double(sf_json_get(sf_json_root(doc), "b"), &x) && x == 1.25);
  sf_json_free(doc);
  sf_diag_clear(&diag);
  doc = sf_json_parse_file(path, 10, &diag);
  CHECK(doc == NULL && diag.status == SF_ERR_IO && strstr(diag.msg, "limit") != NULL);
  sf_json_free(doc);
  f = fopen(path, "wb");
  fputs("{\"a\": [1, 2, 3],\n \"a\": 1}", f);
  fclose(f);
  sf_diag_clear(&diag);
  doc = sf_json_parse_file_as(path, "conf/x.json", 1 << 20, &diag);
  CHECK(doc == NULL && diag.status == SF_ERR_BAD_MODEL);
  CHECK_MSG(strncmp(diag.msg, "conf/x.json: ", 13) == 0 && strstr(diag.msg, "line 2"), "%s",
            diag.msg);
  remove(path);

  const char *fx = sf_test_fixtures();
  if (fx == NULL) return;
  char vocab[4200];
  snprintf(vocab, sizeof vocab, "%s/public/tokenizer/vocab.json", fx);
  sf_diag_clear(&diag);
  doc = sf_json_parse_file(vocab, 64 << 20, &diag);
  CHECK_MSG(doc != NULL, "%s", diag.msg);
  if (doc) {
    const sf_json *r = sf_json_root(doc);
    CHECK(r->type == SF_JSON_OBJECT);
    CHECK_EQ_INT(r->len, 49408); /* the CLIP vocabulary size */
    int64_t v = -1;
    CHECK(sf_json_as_i64(sf_json_get(r, "<|endoftext|>"), &v) && v == 49407);
  }
  sf_json_free(doc);
  snprintf(vocab, sizeof vocab, "%s/public/manifest.json", fx);
  sf_diag_clear(&diag);
  /* The manifest was written by Python's json module and holds -Infinity. */
  doc = sf_json_parse_file_ex(vocab, NULL, 64 << 20, SF_JSON_ALLOW_NONFINITE, &diag);
  CHECK_MSG(doc != NULL, "%s", diag.msg);
  CHECK(doc && sf_json_root(doc)->type == SF_JSON_OBJECT);
  sf_json_free(doc);
}

int main(void) {
  test_structure();
  test_strings();
  test_numbers();
  test_nonfinite();
  test_depth();
  test_rejections();
  test_big_object();
  test_files();
  TEST_MAIN_END();
}
