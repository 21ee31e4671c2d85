/*
 * utf8.h: the UTF-8 helpers every text layer needs, defined once.
 *
 * "Valid" is the Unicode definition (Table 3-7 of the standard, which
 * utf8proc_iterate and Rust's str::from_utf8 also apply): no overlong forms,
 * no surrogates (U+D800..U+DFFF), nothing above U+10FFFF.
 * Invalid input is measured in "maximal subparts" (Unicode 3.9, U+FFFD
 * substitution), the unit that Python's errors="replace", Rust's
 * from_utf8_lossy and the WHATWG decoder each turn into one U+FFFD.
 * The Unicode character classes (categories, normalisation) stay with
 * utf8proc; these are only the encoding.
 */
#ifndef FC_UTF8_H
#define FC_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fc_str;

/* Length (1..4) of the complete valid sequence at s[0..n), or 0 when the
 * bytes there do not start one (n == 0 included). */
int fc_utf8_len(const uint8_t *s, size_t n);

/* Decodes the valid sequence of `len` bytes at s (len from fc_utf8_len). */
uint32_t fc_utf8_decode(const uint8_t *s, int len);

/* Decodes one code point at s[0..n): returns its length and sets *cp, or 0
 * (and *cp = U+FFFD) when s does not start a valid sequence. */
int fc_utf8_next(const char *s, size_t n, uint32_t *cp);

/* Writes cp (<= U+10FFFF) as 1..4 bytes to out; returns the length. */
int fc_utf8_encode(uint32_t cp, char out[4]);

/* Length (>= 1) of the maximal ill-formed subpart at s[0..n), n >= 1. When
 * could_complete is not NULL it is set to whether more bytes could still
 * make it valid (the subpart is a valid prefix that reaches n). */
size_t fc_utf8_bad_len(const uint8_t *s, size_t n, bool *could_complete);

bool fc_utf8_valid(const char *s, size_t n);

/* Code points in valid UTF-8 text (Python's len() of the decoded str);
 * counts the bytes that are not continuation bytes. */
size_t fc_utf8_count(const char *s, size_t n);

/* For streaming: the length of the longest prefix of s[0..n) that does not
 * end inside an incomplete sequence, i.e. n minus the trailing bytes that
 * more input could still complete. Invalid bytes elsewhere are not held back. */
size_t fc_utf8_complete_len(const char *s, size_t n);

/* Appends s[0..n) to out with every maximal ill-formed subpart replaced by
 * U+FFFD (Rust's String::from_utf8_lossy, Python's errors="replace"). */
void fc_utf8_put_lossy(struct fc_str *out, const char *s, size_t n);

#endif
