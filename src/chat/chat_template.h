/*
 * chat_template.h: a model's own chat template (tokenizer.chat_template in a
 * GGUF file, "chat_template" in tokenizer_config.json or chat_template.jinja;
 * see fc_tokenizer_chat_template) rendered as transformers'
 * apply_chat_template(messages, tokenize=False, add_generation_prompt=...)
 * renders it:
 *
 *   - an empty conversation is refused (transformers raises ValueError);
 *   - each message must be an object; members whose value is null are
 *     dropped (_normalize_chat_messages: OpenAI clients send content=None);
 *   - a message's reasoning, given as "reasoning_content", "thinking" or
 *     "reasoning", is also offered as "reasoning_content" and "thinking"
 *     (_alias_reasoning_fields);
 *   - the template sees messages, tools and documents (None unless given),
 *     add_generation_prompt, bos_token and eos_token (when not NULL), and any
 *     extra variables, which override the special tokens.
 *
 * The template language is jinja.h's. Not done here: continue_final_message,
 * assistant token masks, tools given as Python functions (JSON schemas only),
 * tokenization (encode the result with the tokenizer, adding no specials:
 * the template writes BOS itself).
 */
#ifndef FC_CHAT_TEMPLATE_H
#define FC_CHAT_TEMPLATE_H

#include <stdbool.h>

#include "jinja.h"

struct cJSON;

/* The variables apply_chat_template hands the template, as a new JSON object
 * (free with cJSON_Delete). messages: a JSON array of message objects
 * (borrowed, copied). extra: a JSON object or NULL; its "tools" and
 * "documents" members are those parameters (lists of objects), every other
 * member an extra variable ("messages" and "add_generation_prompt" are
 * refused, as Python refuses a duplicate keyword). NULL with *err (malloc'd,
 * caller frees) when the input is not what transformers accepts. */
struct cJSON *fc_chat_template_context(const struct cJSON *messages, const char *bos_token, const char *eos_token,
                                       bool add_generation_prompt, const struct cJSON *extra, char **err);

/* Compiles `tmpl`, renders it over fc_chat_template_context(...) and returns
 * the prompt as a malloc'd string (caller frees), or NULL with *err set to a
 * malloc'd message: a syntax error ("line N: ..."), a render error, or the
 * template's raise_exception message verbatim. opts NULL = the defaults
 * (the real clock for strftime_now). Thread-safe. */
char *fc_chat_template_render(const char *tmpl, const struct cJSON *messages, const char *bos_token,
                              const char *eos_token, bool add_generation_prompt, const struct cJSON *extra,
                              const fc_jinja_opts *opts, char **err);

#endif
