/* Text clean-up in front of CLIP's BPE, reproducing what SD pipelines run in Python:
 * ftfy.fix_text (ftfy 6.2 defaults) followed by CLIP's whitespace_clean and str.lower().
 * Text is handled as arrays of Unicode code points. */
#ifndef SF_TEXT_TEXT_CLEAN_H
#define SF_TEXT_TEXT_CLEAN_H

#include <stddef.h>
#include <stdint.h>

#include "snapfusion.h"

typedef struct sf_cpbuf {
  uint32_t *v;
  size_t n, cap;
} sf_cpbuf;

void sf_cpbuf_free(sf_cpbuf *b);
/* Ensures room for `extra` more code points (SF_ERR_OUT_OF_MEMORY otherwise). */
sf_status sf_cpbuf_reserve(sf_cpbuf *b, size_t extra);

/* Appends the code points of UTF-8 text. Invalid input never fails: every maximal
 * invalid subsequence becomes one U+FFFD, as Python's bytes.decode("utf-8",
 * errors="replace") does (also for surrogates, overlongs and values > U+10FFFF). */
sf_status sf_text_decode_utf8(const char *s, size_t len, sf_cpbuf *out);

/* ftfy.fix_text(text) with the default configuration (see text_clean.c for which
 * fixes are implemented and where it is partial). Replaces out's content. */
sf_status sf_text_ftfy(const uint32_t *text, size_t n, sf_cpbuf *out);

/* CLIP's whitespace_clean(text).lower(): runs of White_Space -> one space, str.strip(),
 * then str.lower() including U+0130 and the final-sigma rule. Replaces out's content. */
sf_status sf_text_clip_clean_lower(const uint32_t *text, size_t n, sf_cpbuf *out);

/* Canonical composition (unicodedata.normalize("NFC", text)). Replaces out's content. */
sf_status sf_text_nfc(const uint32_t *text, size_t n, sf_cpbuf *out);

#endif
