/* Unicode and HTML data for the CLIP tokenizer's text clean-up, generated from CPython's
 * unicodedata / str.lower / html modules by gen_unicode_tables.py (see unicode_tables.c). */
#ifndef SF_TEXT_UNICODE_TABLES_H
#define SF_TEXT_UNICODE_TABLES_H

#include <stddef.h>
#include <stdint.h>

int sf_uc_is_letter(uint32_t cp);      /* general category L* */
int sf_uc_is_number(uint32_t cp);      /* general category N* */
int sf_uc_is_regex_space(uint32_t cp); /* White_Space: the `regex` module's \s */
int sf_uc_is_py_space(uint32_t cp);    /* str.isspace(): what str.strip() removes */
int sf_uc_is_cased(uint32_t cp);
int sf_uc_is_case_ignorable(uint32_t cp);
/* Simple lower-case mapping as str.lower() applies it; U+0130 (lowers to two code
 * points) and the final-sigma context are left to the caller. */
uint32_t sf_uc_lower(uint32_t cp);
int sf_uc_ccc(uint32_t cp); /* canonical combining class */
/* One level of canonical decomposition (not Hangul): returns 0, 1 or 2 code points. */
int sf_uc_decompose(uint32_t cp, uint32_t out[2]);
/* Primary composite of a starter and a following character, 0 if none (not Hangul). */
uint32_t sf_uc_compose(uint32_t a, uint32_t b);
/* sloppy-windows-1252: byte -> code point, and code point -> byte (-1 if unencodable). */
uint32_t sf_uc_cp1252(uint8_t byte);
int sf_uc_cp1252_byte(uint32_t cp);
/* ftfy's badness categories of a code point: a bit set in the order of
 * SF_MOJI_* below (0 for ASCII and every character outside them). */
enum {
  SF_MOJI_COMMON = 1 << 0, SF_MOJI_C1 = 1 << 1, SF_MOJI_BAD = 1 << 2, SF_MOJI_LAW = 1 << 3,
  SF_MOJI_CURRENCY = 1 << 4, SF_MOJI_START = 1 << 5, SF_MOJI_END = 1 << 6,
  SF_MOJI_NUMERIC = 1 << 7, SF_MOJI_KAOMOJI = 1 << 8, SF_MOJI_UPPER_ACC = 1 << 9,
  SF_MOJI_LOWER_ACC = 1 << 10, SF_MOJI_UPPER_COMMON = 1 << 11, SF_MOJI_LOWER_COMMON = 1 << 12,
  SF_MOJI_BOX = 1 << 13
};
unsigned sf_uc_mojibake_class(uint32_t cp);
/* ftfy.fix_character_width of one code point: 0 if unchanged, else the 1 or 2 code
 * points of its standard-width form. */
int sf_uc_width_fix(uint32_t cp, uint32_t out[2]);
/* HTML5 entity (name without '&', with the ';') as ftfy decodes it: UTF-8 or NULL. */
const char *sf_html_entity(const char *name, size_t len);
/* html.unescape's numeric character reference rule: the code point, or -1 when the
 * reference decodes to nothing. */
int64_t sf_html_charref(uint64_t num);

#endif
