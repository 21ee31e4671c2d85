/*
 * html_md.h: HTML to Markdown as FastChat's clean_sharegpt.py gets it from
 * markdownify 0.11.6 over BeautifulSoup 4 (html.parser of Python 3.11).
 *
 * Three stages, each a port of the Python code's rules:
 *   1. tokenizing as Python's html.parser does (convert_charrefs off, feed()
 *      then close()): start tags found with its tolerant regexes (attribute
 *      syntax, "<a<b", "x<3", unterminated tags become text), end tags,
 *      comments, <!doctype>, <?pi>, bogus comments, script/style raw text,
 *      &name; / &#N; / &#xN; references resolved as bs4 does (its entity
 *      table, names without ';' too, unknown names kept as "&name", the
 *      Windows-1252 fix-up of &#128;..&#159;);
 *   2. building bs4's tree: no implicit closing; an end tag pops to the
 *      nearest open tag of its name (ignored when none is open); void tags
 *      (br, img, hr, ...) close at once and swallow one later </br>;
 *      whitespace-only text outside pre/textarea becomes " " or "\n";
 *   3. markdownify's conversion with its default options (escape * and _,
 *      "  \n" line breaks, underlined h1/h2, "*+-" bullets, ``` fences, the
 *      simple table form, links/autolinks, images), including its quirks
 *      (the whitespace-text removal in list/table nodes that skips the node
 *      after each removal, numbering from the ol's child index).
 * Shapes handled: everything ShareGPT's exported HTML uses (div/span
 * wrappers, p, ol/ul/li nesting, pre>code blocks with the "Copy code"
 * button, inline code, b/strong/em/i, a, h1-h6, br, hr, blockquote, tables,
 * img) and plain text with stray '<' and '&'. Not handled (differ from bs4):
 * <![CDATA[...]]> and other marked sections (read as a bogus comment);
 * entities inside attribute values resolve only the &name; and &#N; forms.
 */
#ifndef FC_DATA_HTML_MD_H
#define FC_DATA_HTML_MD_H

#include <stddef.h>

#include "data/pyjson.h"

/* markdownify.markdownify(html) into out (appended). Scratch memory comes
 * from the arena. Thread-safe. */
void fc_html_to_markdown(fc_pj_arena *a, const char *html, size_t n, fc_pj_out *out);

#endif
