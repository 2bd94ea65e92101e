/* A1111's prompt attention syntax (stable-diffusion-webui, modules/prompt_parser.py,
 * parse_prompt_attention), rule for rule:
 *   (text)        weight x 1.1         ((text))  x 1.21, and so on
 *   [text]        weight / 1.1
 *   (text:1.3)    weight x 1.3         (a decimal [+-]?[.0-9]+, spaces around it allowed)
 *   \( \) \[ \] \\   the literal character; a lone '\' is dropped
 *   BREAK         (upper case, a whole word) ends the current 75-token chunk
 * Unbalanced brackets: a ')' or ']' with no open bracket is text; brackets still open at the
 * end apply their factor from where they opened (all '(' first, then all '['). Weights
 * multiply as Python floats (doubles) in A1111's order; adjacent pieces of equal weight are
 * merged. Also A1111's quirk is kept: a BREAK inside brackets has its marker weight (-1)
 * multiplied and is then the word "BREAK" with that weight.
 * Differences: '\s' and '\d' are ASCII here (Python's are Unicode); a weight A1111's
 * float() would reject (e.g. "1.2.3") is an error here (A1111 raises too). */
#ifndef SF_TEXT_PROMPT_SYNTAX_H
#define SF_TEXT_PROMPT_SYNTAX_H

#include <stddef.h>

#include "core/diag.h"

typedef struct sf_prompt_piece {
  char *text;    /* NUL-terminated, points into the pieces' storage */
  double weight; /* -1 with text "BREAK": a chunk break */
} sf_prompt_piece;

typedef struct sf_prompt_pieces {
  sf_prompt_piece *v;
  size_t n;
  char *storage;
} sf_prompt_pieces;

/* Parses text; at least one piece (["", 1] for an empty prompt). */
sf_status sf_prompt_parse_a1111(const char *text, sf_prompt_pieces *out, sf_diag *d);
void sf_prompt_pieces_free(sf_prompt_pieces *p);
/* The marker A1111 tests for: text "BREAK" and weight exactly -1. */
int sf_prompt_piece_is_break(const sf_prompt_piece *p);

#endif
