/*
 * str.h: fc_str, the one growable string builder of the project.
 *
 * Modelled on curl's dynbuf and SQLite's sqlite3_str: appends never fail
 * loudly; instead the builder carries a sticky error flag. Once an append
 * would pass the size cap (or memory runs out) the builder is "failed": the
 * text stays as it was before that append, every later append is ignored,
 * fc_str_failed() says so and fc_str_take() returns NULL. The caller checks
 * once, at the end, instead of after every put.
 *
 *     fc_str s;
 *     fc_str_init(&s, 1 << 20);          // at most 1 MiB of text; 0 = no cap
 *     fc_str_puts(&s, "{\"n\": ");
 *     fc_str_printf(&s, "%d}", n);
 *     char *text = fc_str_take(&s);      // NULL if the cap was hit
 *
 * The text is always NUL-terminated (the NUL is not counted in the cap or in
 * the length). Capacity doubles, so building n bytes costs O(n).
 * Not thread-safe: one builder, one thread at a time.
 */
#ifndef FC_STR_H
#define FC_STR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct fc_str {
    char *p;      /* the text, NUL-terminated; NULL before the first append */
    size_t len;   /* bytes of text, without the NUL */
    size_t cap;   /* bytes allocated at p */
    size_t max;   /* cap on len; SIZE_MAX when unbounded */
    bool failed;  /* sticky: an append hit the cap or ran out of memory */
} fc_str;

/* A builder that is already initialised with no cap: `fc_str s = FC_STR_INIT;` */
#define FC_STR_INIT {NULL, 0, 0, (size_t)-1, false}

/* Empties *s and sets its cap (max bytes of text; 0 = unbounded). Allocates
 * nothing. */
void fc_str_init(fc_str *s, size_t max);

/* Appends n bytes (may contain NULs) / a C string (NULL appends nothing) /
 * one byte / printf-formatted text. No-ops once the builder has failed. */
void fc_str_putn(fc_str *s, const void *data, size_t n);
void fc_str_puts(fc_str *s, const char *str);
void fc_str_putc(fc_str *s, char c);
void fc_str_printf(fc_str *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void fc_str_vprintf(fc_str *s, const char *fmt, va_list ap);

/* Makes room for `extra` more bytes and returns where they go (the caller
 * writes at most `extra` bytes there, then calls fc_str_commit with how many
 * it wrote); NULL when that would pass the cap (the builder is then failed). */
char *fc_str_reserve(fc_str *s, size_t extra);
void fc_str_commit(fc_str *s, size_t n);

/* Cuts the text back to its first n bytes (n > len is ignored). */
void fc_str_truncate(fc_str *s, size_t n);

bool fc_str_failed(const fc_str *s);
size_t fc_str_len(const fc_str *s);
/* The text, borrowed until the next append/reset/free; "" (never NULL) when
 * empty. After a failure: the text as it was before the failed append. */
const char *fc_str_cstr(const fc_str *s);

/* Hands over the text (malloc'd, NUL-terminated; the caller frees it with
 * free()) and leaves *s empty, cap kept. Returns NULL when the builder has
 * failed (the text is freed then), and an empty malloc'd string when nothing
 * was appended. The length is fc_str_len() read just before. */
char *fc_str_take(fc_str *s);

/* Empties the text and clears the error flag; keeps the memory and the cap. */
void fc_str_reset(fc_str *s);
/* Frees the memory; *s is left empty with its cap, ready for reuse.
 * NULL is a no-op. */
void fc_str_free(fc_str *s);

#endif
