/*
 * conv.h: FastChat conversation templates (fastchat/conversation.py) and the
 * model-path adapter matching that picks one (fastchat/model/model_adapter.py
 * get_model_adapter / get_conversation_template).
 *
 * An fc_conv is one conversation: a template's fixed parts (system_template,
 * roles, separators, stop strings, stop token ids) plus its mutable parts (the
 * system message and the messages). fc_conv_get_prompt renders it exactly as
 * FastChat's Conversation.get_prompt() does, byte for byte, for all 23
 * separator styles (tests/unit/test_conv.c checks every registered template
 * against golden output written by fschat itself).
 *
 * Not implemented: images in messages (FastChat's vision tuples; the
 * "$$<image>$$" placeholders), the Gradio/Anthropic/Gemini/Vertex/Reka/
 * Metagen exporters, save_new_images. Text-only conversations render
 * identically to FastChat's.
 *
 * Ownership: every fc_conv is owned by its caller and freed with fc_conv_free.
 * Strings returned by getters are borrowed from the fc_conv (or from the
 * static template table) and stay valid until the conversation is modified or
 * freed. Not thread-safe per object; distinct objects are independent. The
 * template table and the adapter matching are read-only and thread-safe.
 */
#ifndef FC_CONV_H
#define FC_CONV_H

#include <stdbool.h>
#include <stdint.h>

struct cJSON;

typedef struct fc_conv fc_conv;

/* The separator styles, numbered as FastChat's SeparatorStyle IntEnum (auto()
 * from 1), so the numbers travel unchanged in the worker protocol's
 * /worker_get_conv_template JSON. FC_SEP_NONE is the yandexgpt template, which
 * has no style and cannot be rendered as text. */
enum fc_sep_style {
    FC_SEP_NONE = 0,
    FC_SEP_ADD_COLON_SINGLE = 1,
    FC_SEP_ADD_COLON_TWO,
    FC_SEP_ADD_COLON_SPACE_SINGLE,
    FC_SEP_NO_COLON_SINGLE,
    FC_SEP_NO_COLON_TWO,
    FC_SEP_ADD_NEW_LINE_SINGLE,
    FC_SEP_LLAMA2,
    FC_SEP_LLAMA3,
    FC_SEP_CHATGLM,
    FC_SEP_CHATML,
    FC_SEP_CHATINTERN,
    FC_SEP_DOLLY,
    FC_SEP_RWKV,
    FC_SEP_PHOENIX,
    FC_SEP_ROBIN,
    FC_SEP_FALCON_CHAT,
    FC_SEP_CHATGLM3,
    FC_SEP_DEEPSEEK_CHAT,
    FC_SEP_METAMATH,
    FC_SEP_YUAN2,
    FC_SEP_GEMMA,
    FC_SEP_CLLM,
    FC_SEP_DEFAULT, /* 23 */
};

/* "ADD_COLON_SINGLE", ... ; "NONE" for FC_SEP_NONE; NULL when out of range. */
const char *fc_conv_sep_style_name(enum fc_sep_style s);

/* ---- the registry ---- */

/* Number of registered templates (102) and the name of the i-th, in FastChat's
 * registration order. NULL when i is out of range. Static strings. */
int fc_conv_template_count(void);
const char *fc_conv_template_name(int i);
/* Whether a template of that exact (case-sensitive) name exists. */
bool fc_conv_template_exists(const char *name);

/* ---- lifetime ---- */

/* A fresh conversation from the registered template `name` (FastChat's
 * get_conv_template: a copy holding the template's built-in few-shot
 * messages, if any). NULL if no template has that name (logged). Free with
 * fc_conv_free. */
fc_conv *fc_conv_new(const char *template_name);
/* A deep copy; NULL only when c is NULL. */
fc_conv *fc_conv_copy(const fc_conv *c);
/* NULL is a no-op. */
void fc_conv_free(fc_conv *c);

/* ---- editing ---- */

/* Replaces the system message (copied). NULL means "". */
void fc_conv_set_system_message(fc_conv *c, const char *msg);
/* Appends a message from roles[role] (role 0 = user side, 1 = assistant side).
 * text is copied; NULL appends an open slot, which get_prompt renders as the
 * role's generation prefix. As in FastChat, an empty string renders like an
 * open slot too (get_prompt tests `if message:`). Returns FC_ERR_ARG (0 on
 * success) for a role other than 0 or 1. */
int fc_conv_append_message(fc_conv *c, int role, const char *text);
/* Replaces the text of the last message (typically the open slot, with the
 * model's reply); text NULL reopens it. No-op without messages. */
void fc_conv_update_last_message(fc_conv *c, const char *text);

/* ---- rendering ---- */

/* The prompt, exactly FastChat's Conversation.get_prompt(). Returns a malloc'd
 * NUL-terminated string the caller frees with free(); NULL (logged) when the
 * template has no separator style (yandexgpt) or the system template is
 * malformed. */
char *fc_conv_get_prompt(const fc_conv *c);

/* ---- getters (borrowed strings) ---- */
const char *fc_conv_name(const fc_conv *c);
const char *fc_conv_system_message(const fc_conv *c);
/* roles[i] for i in [0, fc_conv_n_roles) (2, or 3 for llama2-chinese, whose
 * third role FastChat never uses); NULL out of range. */
int fc_conv_n_roles(const fc_conv *c);
const char *fc_conv_role(const fc_conv *c, int i);
enum fc_sep_style fc_conv_sep_style(const fc_conv *c);
const char *fc_conv_sep(const fc_conv *c);  /* NULL when FastChat has None */
const char *fc_conv_sep2(const fc_conv *c); /* NULL when FastChat has None */
/* Number of built-in few-shot messages that UIs and exporters hide. */
int fc_conv_offset(const fc_conv *c);
int fc_conv_n_messages(const fc_conv *c);
/* The i-th message: its text (NULL for an open slot) and, in *role, its role
 * index. NULL with *role = -1 when i is out of range. */
const char *fc_conv_message(const fc_conv *c, int i, int *role);

/* Stop strings: FastChat's stop_str is None, one string or a list; here it is
 * always a list of fc_conv_n_stop_str entries (0 for None). */
int fc_conv_n_stop_str(const fc_conv *c);
const char *fc_conv_stop_str(const fc_conv *c, int i);
/* Stop token ids; *n = 0 (and NULL) when the template has none. */
const int32_t *fc_conv_stop_token_ids(const fc_conv *c, int *n);

/* ---- exporters ---- */

/* FastChat's to_openai_api_messages(): [{"role": "system", "content": ...}
 * (only when the system message is non-empty), then messages after `offset`
 * alternating "user"/"assistant" by position, skipping assistant open slots
 * (a user open slot is exported with content null)]. Caller frees with
 * cJSON_Delete. NULL on allocation failure. */
struct cJSON *fc_conv_to_openai_messages(const fc_conv *c);

/* The JSON a FastChat worker returns for /worker_get_conv_template under
 * "conv": every Conversation dataclass field (name, system_template,
 * system_message, system_message_vision, roles, messages as [role, text|null]
 * pairs, offset, sep_style as its number, sep, sep2, stop_str as null, string
 * or list as FastChat has it, stop_token_ids, max_image_size_mb). Caller frees
 * with cJSON_Delete. */
struct cJSON *fc_conv_to_json(const fc_conv *c);
/* The inverse, as the OpenAI API server rebuilds a worker's template: reads
 * name, system_template, system_message, roles, messages, offset, sep_style,
 * sep, sep2, stop_str, stop_token_ids (missing fields take FastChat's dataclass
 * defaults). NULL (logged) on a malformed object, an unknown sep_style number
 * or a message role that is not one of the roles. Free with fc_conv_free. */
fc_conv *fc_conv_from_json(const struct cJSON *obj);

/* ---- model-path adapter matching ---- */

/* The template FastChat's get_conversation_template(model_path) picks:
 * the adapters are tried in FastChat's registration order on the basename of
 * the normalised path (excluding the catch-all base adapter), then on the full
 * path with the base adapter last ("one_shot"). Each adapter's rule (mostly a
 * case-insensitive substring test, some exact names, some case-sensitive) and
 * its template choice follow fastchat/model/model_adapter.py; see
 * conv_adapter.c. A PEFT adapter folder (one holding adapter_config.json, or a
 * name containing "peft") resolves through its base_model_name_or_path.
 * Returns a static template name; NULL (logged) only for a PEFT path whose
 * adapter_config.json cannot be read or names a "peft" base (FastChat raises
 * there too). If adapter_name is not NULL it receives the adapter's class
 * name ("VicunaAdapter", ...; static). */
const char *fc_conv_template_for_model_path(const char *model_path, const char **adapter_name);

#endif
