/*
 * jinja.h: a Jinja2 subset interpreter for Hugging Face chat templates
 * (tokenizer_config.json "chat_template", GGUF "tokenizer.chat_template").
 * chat_template.h builds on it to do what apply_chat_template does.
 *
 * It renders the way transformers' apply_chat_template environment does
 * (transformers/utils/chat_template_utils.py, _compile_jinja_template):
 * Jinja2's ImmutableSandboxedEnvironment with trim_blocks and lstrip_blocks
 * on, the single trailing newline of the template dropped, default (lenient)
 * Undefined, the loopcontrols extension ({% break %}, {% continue %}), the
 * {% generation %} block (rendered as its body), and transformers' globals
 * and filters: raise_exception(msg), strftime_now(fmt), namespace(...),
 * dict(...), and a tojson that does not HTML-escape (json.dumps with
 * ensure_ascii, indent, separators, sort_keys).
 *
 * Supported language: {{ }}, {% %}, {# #} with -/+ whitespace control; raw;
 * if/elif/else, for (tuple targets, "if" filter, else, loop.index/index0/
 * revindex/revindex0/first/last/length/previtem/nextitem/depth/cycle), set
 * (names, tuples, namespace attributes, block set with filters), macro
 * (positional, keyword and default arguments, varargs, kwargs), with, filter
 * blocks, break/continue; expressions with Python semantics: literals (str,
 * int, float, bool, none, list, tuple, dict), attribute and item access
 * (Jinja's getattr/getitem fallbacks), slices, calls, filters, tests,
 * and/or/not, chained comparisons, in / not in, + - * / // % **, ~,
 * conditional expressions, str % args. Values print as Python prints them
 * (None, True, 1.0, ['a'], {'k': 1}). Strings index and measure in code
 * points. Filters: abs attr capitalize center count d default dictsort e escape
 * first float format indent int items join last length list lower map max min
 * reject rejectattr replace reverse round safe select selectattr sort string
 * sum title tojson trim unique upper wordcount. Tests: boolean callable
 * defined divisibleby eq equalto escaped even false float ge gt in integer
 * iterable le lower lt mapping ne none number odd sameas sequence string true
 * undefined upper (and ==, !=, <, <=, >, >=). str, dict and list methods:
 * see the method table in jinja.c (strip, split, startswith, replace, title,
 * format, get, items, keys, values, index, count, ...). Globals: range, dict,
 * namespace, raise_exception, strftime_now.
 *
 * Not supported (a compile or render error, never a crash): template
 * inheritance and includes (extends, block, include, import), call blocks,
 * recursive loops, star arguments in calls (f(*a), f(**k)), autoescaping, i18n,
 * async. Known differences from Python: integers are 64-bit (overflow is an
 * error); range() and dict.items() return lists (they print as lists);
 * functions print as "<built-in function>"; case mapping is Unicode's simple
 * mapping plus the expansions of 'ß', 'İ' and the Latin ligatures (other
 * full mappings such as 'ŉ' differ); str.format takes a format-spec subset
 * ([[fill]align][sign][#][0][width][.precision][type], no grouping). JSON
 * numbers in the context that are whole (1.0 included) become ints.
 *
 * Hostile templates: rendering is bounded by a step budget, a live-memory
 * budget, an output size limit and a nesting limit (fc_jinja_opts); passing
 * one is an error, never a crash or a hang.
 *
 * Errors: compile and render return NULL and, when err is not NULL, set *err
 * to a malloc'd message the caller frees. raise_exception's message comes
 * verbatim (as transformers raises it); every other message reads
 * "line N: what went wrong" (N counts template lines from 1). Nothing is
 * logged.
 *
 * Thread-safety: a compiled fc_jinja is immutable; any number of threads may
 * render it at once.
 */
#ifndef FC_JINJA_H
#define FC_JINJA_H

#include <stdbool.h>
#include <stddef.h>

struct cJSON;

typedef struct fc_jinja fc_jinja;

/* Render limits and the clock. Zero fields take the defaults shown. */
typedef struct fc_jinja_opts {
    long long now;         /* strftime_now's clock, Unix seconds, shown in local time; 0 = time(NULL) */
    size_t max_output;     /* bytes of output, also the longest string or list built; 0 = 16 MiB */
    size_t max_memory;     /* bytes of live values at once; 0 = 256 MiB */
    long long max_steps;   /* evaluation steps (nodes, items, 64-byte chunks copied); 0 = 50,000,000 */
} fc_jinja_opts;

/* Parses a template. Returns NULL on a syntax error (see *err). Free with
 * fc_jinja_free. src need not outlive the result. */
fc_jinja *fc_jinja_compile(const char *src, char **err);
/* NULL is a no-op. */
void fc_jinja_free(fc_jinja *t);

/* Renders with the variables of `context` (a JSON object whose members
 * become top-level variables; NULL = none). opts NULL = the defaults.
 * Returns a malloc'd NUL-terminated string the caller frees with free(), or
 * NULL on an error (see *err). */
char *fc_jinja_render(const fc_jinja *t, const struct cJSON *context, const fc_jinja_opts *opts, char **err);

#endif
