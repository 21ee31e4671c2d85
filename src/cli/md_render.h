/*
 * md_render.h: Markdown to ANSI terminal text, fed as it streams (the rich
 * style of `fastchat chat`). Text is rendered a line at a time: a line is
 * printed once it is complete (or at the end), with headings, emphasis,
 * inline code, list bullets, block quotes and fenced code blocks styled.
 */
#ifndef FC_MD_RENDER_H
#define FC_MD_RENDER_H

#include <stddef.h>
#include <stdio.h>

typedef struct fc_md fc_md;

fc_md *fc_md_new(FILE *out);
void fc_md_free(fc_md *md);
/* Adds streamed text; complete lines are rendered immediately. */
void fc_md_feed(fc_md *md, const char *text, size_t len);
/* Renders what is left (the last, unterminated line) and resets the state. */
void fc_md_finish(fc_md *md);
/* Renders one whole line (without its newline) into out: exposed for tests.
 * *in_code tracks fenced blocks across lines. */
void fc_md_render_line(FILE *out, const char *line, size_t len, int *in_code);

#endif
