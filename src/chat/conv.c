/*
 * conv.c: the conversation object and its rendering, mirroring FastChat's
 * Conversation class (fastchat/conversation.py, lm-sys/FastChat @ 0e6d3e4):
 * get_conv_template (a copy of a registered template), set_system_message,
 * append_message, update_last_message, get_prompt for the 23 separator
 * styles, to_openai_api_messages, and the dataclass <-> JSON shape the worker
 * protocol carries.
 *
 * The Python semantics that matter for byte-exact prompts, reproduced here:
 *   - a message renders as an open slot when it is None *or* empty
 *     (`if message:`);
 *   - the system prompt is system_template.format(system_message=...):
 *     "{{" and "}}" are literal braces, {system_message} the message, any
 *     other field an error;
 *   - LLAMA3 strips each message with str.strip(), i.e. Unicode whitespace;
 *   - YUAN2 removes trailing '<', 'n', '>' characters (rstrip("<n>"), a
 *     character set, so "...sun" loses its final 'n' too);
 *   - RWKV rewrites "\r\n" to "\n", then "\n\n" to "\n" (one left-to-right
 *     pass each, as str.replace);
 *   - concatenating a separator that is None raises in Python; here
 *     get_prompt returns NULL in the same cases.
 * Deliberately absent: images (vision tuples), the non-OpenAI exporters.
 */
#include "conv.h"
#include "conv_impl.h"

#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/fc_base.h"
#include "base/utf8.h"

struct msg {
    int role;   /* 0 or 1 */
    char *text; /* NULL = open slot */
};

struct fc_conv {
    char *name;
    char *system_template;
    char *system_message;
    char *system_message_vision;
    char *roles[3];
    int n_roles;
    struct msg *msgs;
    int n_msgs, cap_msgs;
    int offset;
    enum fc_sep_style sep_style;
    char *sep;  /* NULL = None */
    char *sep2; /* NULL = None */
    enum fc_conv_stop_kind stop_kind;
    char **stop_str;
    int n_stop_str;
    bool has_stop_token_ids;
    int32_t *stop_token_ids;
    int n_stop_token_ids;
    double max_image_size_mb; /* < 0 = None */
};

static char *dup_or_null(const char *s) { return s ? fc_xstrdup(s) : NULL; }

/* ---- registry ---- */

static const char *const style_names[] = {
    "NONE", "ADD_COLON_SINGLE", "ADD_COLON_TWO", "ADD_COLON_SPACE_SINGLE", "NO_COLON_SINGLE",
    "NO_COLON_TWO", "ADD_NEW_LINE_SINGLE", "LLAMA2", "LLAMA3", "CHATGLM", "CHATML", "CHATINTERN",
    "DOLLY", "RWKV", "PHOENIX", "ROBIN", "FALCON_CHAT", "CHATGLM3", "DEEPSEEK_CHAT", "METAMATH",
    "YUAN2", "GEMMA", "CLLM", "DEFAULT",
};

const char *fc_conv_sep_style_name(enum fc_sep_style s)
{
    if ((int)s < 0 || (size_t)s >= FC_ARRAY_LEN(style_names)) return NULL;
    return style_names[s];
}

int fc_conv_template_count(void) { return fc_conv_template_count_; }

const char *fc_conv_template_name(int i)
{
    if (i < 0 || i >= fc_conv_template_count_) return NULL;
    return fc_conv_template_table[i].name;
}

int fc_conv_template_find(const char *name)
{
    if (!name) return -1;
    for (int i = 0; i < fc_conv_template_count_; i++)
        if (!strcmp(fc_conv_template_table[i].name, name)) return i;
    return -1;
}

bool fc_conv_template_exists(const char *name) { return fc_conv_template_find(name) >= 0; }

/* ---- lifetime ---- */

static fc_conv *conv_alloc(void)
{
    fc_conv *c = fc_xcalloc(1, sizeof *c);
    c->max_image_size_mb = -1;
    return c;
}

static void set_stop_strs(fc_conv *c, enum fc_conv_stop_kind kind, const char *const *s, int n)
{
    c->stop_kind = kind;
    c->n_stop_str = kind == FC_CONV_STOP_NONE ? 0 : n;
    c->stop_str = c->n_stop_str ? fc_xmalloc(sizeof(char *) * (size_t)c->n_stop_str) : NULL;
    for (int i = 0; i < c->n_stop_str; i++) c->stop_str[i] = fc_xstrdup(s[i]);
}

static void set_stop_ids(fc_conv *c, bool has, const int32_t *ids, int n)
{
    c->has_stop_token_ids = has;
    c->n_stop_token_ids = has ? n : 0;
    c->stop_token_ids = c->n_stop_token_ids ? fc_xmalloc(sizeof(int32_t) * (size_t)n) : NULL;
    if (c->n_stop_token_ids) memcpy(c->stop_token_ids, ids, sizeof(int32_t) * (size_t)n);
}

fc_conv *fc_conv_new(const char *template_name)
{
    int k = fc_conv_template_find(template_name);
    if (k < 0) {
        FC_LOG_ERROR("%s: unknown conversation template '%s'", __func__, template_name ? template_name : "(null)");
        return NULL;
    }
    const struct fc_conv_template *t = &fc_conv_template_table[k];
    fc_conv *c = conv_alloc();
    c->name = fc_xstrdup(t->name);
    c->system_template = fc_xstrdup(t->system_template);
    c->system_message = fc_xstrdup(t->system_message);
    c->system_message_vision = fc_xstrdup(t->system_message_vision ? t->system_message_vision : "");
    c->n_roles = t->n_roles;
    for (int i = 0; i < t->n_roles; i++) c->roles[i] = fc_xstrdup(t->roles[i]);
    for (int i = 0; i < t->n_turns; i++) fc_conv_append_message(c, t->turns[i].role, t->turns[i].text);
    c->offset = t->offset;
    c->sep_style = t->sep_style;
    c->sep = dup_or_null(t->sep);
    c->sep2 = dup_or_null(t->sep2);
    set_stop_strs(c, t->stop_kind, t->stop_str, t->n_stop_str);
    set_stop_ids(c, t->has_stop_token_ids, t->stop_token_ids, t->n_stop_token_ids);
    c->max_image_size_mb = t->max_image_size_mb;
    return c;
}

fc_conv *fc_conv_copy(const fc_conv *src)
{
    if (!src) return NULL;
    fc_conv *c = conv_alloc();
    c->name = fc_xstrdup(src->name);
    c->system_template = fc_xstrdup(src->system_template);
    c->system_message = fc_xstrdup(src->system_message);
    c->system_message_vision = fc_xstrdup(src->system_message_vision);
    c->n_roles = src->n_roles;
    for (int i = 0; i < src->n_roles; i++) c->roles[i] = fc_xstrdup(src->roles[i]);
    for (int i = 0; i < src->n_msgs; i++) fc_conv_append_message(c, src->msgs[i].role, src->msgs[i].text);
    c->offset = src->offset;
    c->sep_style = src->sep_style;
    c->sep = dup_or_null(src->sep);
    c->sep2 = dup_or_null(src->sep2);
    set_stop_strs(c, src->stop_kind, (const char *const *)src->stop_str, src->n_stop_str);
    set_stop_ids(c, src->has_stop_token_ids, src->stop_token_ids, src->n_stop_token_ids);
    c->max_image_size_mb = src->max_image_size_mb;
    return c;
}

void fc_conv_free(fc_conv *c)
{
    if (!c) return;
    free(c->name);
    free(c->system_template);
    free(c->system_message);
    free(c->system_message_vision);
    for (int i = 0; i < c->n_roles; i++) free(c->roles[i]);
    for (int i = 0; i < c->n_msgs; i++) free(c->msgs[i].text);
    free(c->msgs);
    free(c->sep);
    free(c->sep2);
    for (int i = 0; i < c->n_stop_str; i++) free(c->stop_str[i]);
    free(c->stop_str);
    free(c->stop_token_ids);
    free(c);
}

/* ---- editing ---- */

void fc_conv_set_system_message(fc_conv *c, const char *msg)
{
    free(c->system_message);
    c->system_message = fc_xstrdup(msg ? msg : "");
}

int fc_conv_append_message(fc_conv *c, int role, const char *text)
{
    if (role != 0 && role != 1) {
        FC_LOG_ERROR("%s: role %d is not 0 (user) or 1 (assistant)", __func__, role);
        return FC_ERR_ARG;
    }
    if (c->n_msgs == c->cap_msgs) {
        c->cap_msgs = c->cap_msgs ? 2 * c->cap_msgs : 8;
        c->msgs = fc_xrealloc(c->msgs, sizeof(struct msg) * (size_t)c->cap_msgs);
    }
    c->msgs[c->n_msgs].role = role;
    c->msgs[c->n_msgs].text = dup_or_null(text);
    c->n_msgs++;
    return FC_OK;
}

void fc_conv_update_last_message(fc_conv *c, const char *text)
{
    if (c->n_msgs == 0) return;
    struct msg *m = &c->msgs[c->n_msgs - 1];
    char *t = dup_or_null(text); /* text may point into m->text */
    free(m->text);
    m->text = t;
}

/* ---- getters ---- */

const char *fc_conv_name(const fc_conv *c) { return c->name; }
const char *fc_conv_system_message(const fc_conv *c) { return c->system_message; }
int fc_conv_n_roles(const fc_conv *c) { return c->n_roles; }
const char *fc_conv_role(const fc_conv *c, int i) { return i >= 0 && i < c->n_roles ? c->roles[i] : NULL; }
enum fc_sep_style fc_conv_sep_style(const fc_conv *c) { return c->sep_style; }
const char *fc_conv_sep(const fc_conv *c) { return c->sep; }
const char *fc_conv_sep2(const fc_conv *c) { return c->sep2; }
int fc_conv_offset(const fc_conv *c) { return c->offset; }
int fc_conv_n_messages(const fc_conv *c) { return c->n_msgs; }

const char *fc_conv_message(const fc_conv *c, int i, int *role)
{
    if (i < 0 || i >= c->n_msgs) {
        if (role) *role = -1;
        return NULL;
    }
    if (role) *role = c->msgs[i].role;
    return c->msgs[i].text;
}

int fc_conv_n_stop_str(const fc_conv *c) { return c->n_stop_str; }
const char *fc_conv_stop_str(const fc_conv *c, int i) { return i >= 0 && i < c->n_stop_str ? c->stop_str[i] : NULL; }

const int32_t *fc_conv_stop_token_ids(const fc_conv *c, int *n)
{
    *n = c->n_stop_token_ids;
    return c->n_stop_token_ids ? c->stop_token_ids : NULL;
}

/* ---- rendering helpers ---- */

/* The render state: the output and whether Python would have raised. */
struct out {
    fc_str b;
    const char *err; /* first error, NULL when none */
};

static void put(struct out *o, const char *s) { fc_str_puts(&o->b, s); }

/* Appends a separator that may be None; concatenating None raises TypeError
 * in Python, so that becomes an error here. */
static void put_sep(struct out *o, const char *sep)
{
    if (!sep) {
        if (!o->err) o->err = "a separator this style uses is None";
        return;
    }
    fc_str_puts(&o->b, sep);
}

/* Python `if message:` */
static bool filled(const char *text) { return text && *text; }

/* system_template.format(system_message=msg), malloc'd; NULL on a field other
 * than {system_message} or an unmatched brace (Python raises). */
static char *format_system(const char *tmpl, const char *msg)
{
    fc_str b = {0};
    static const char field[] = "system_message";
    for (const char *p = tmpl; *p;) {
        if (p[0] == '{' && p[1] == '{') { fc_str_putc(&b, '{'); p += 2; continue; }
        if (p[0] == '}' && p[1] == '}') { fc_str_putc(&b, '}'); p += 2; continue; }
        if (p[0] == '{') {
            const char *end = strchr(p, '}');
            size_t n = end ? (size_t)(end - p - 1) : 0;
            if (!end || n != sizeof field - 1 || memcmp(p + 1, field, n)) {
                FC_LOG_ERROR("fc_conv_get_prompt: system_template field '%.*s' is not {system_message}",
                             end ? (int)(end - p + 1) : (int)strlen(p), p);
                fc_str_free(&b);
                return NULL;
            }
            fc_str_puts(&b, msg);
            p = end + 1;
            continue;
        }
        if (p[0] == '}') {
            FC_LOG_ERROR("fc_conv_get_prompt: single '}' in system_template");
            fc_str_free(&b);
            return NULL;
        }
        fc_str_putc(&b, *p++);
    }
    return fc_str_take(&b);
}

/* Python's str.isspace() (Py_UNICODE_ISSPACE), which str.strip() uses. */
static bool py_isspace(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Appends s with leading and trailing Unicode whitespace removed (str.strip()). */
static void put_stripped(struct out *o, const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s), start = 0, end = 0, i = 0;
    bool seen = false;
    while (i < n) {
        uint32_t cp;
        int len = fc_utf8_next(s + i, n - i, &cp);
        if (!len) cp = u[i], len = 1; /* an invalid byte stands for itself */
        if (!py_isspace(cp)) {
            if (!seen) { start = i; seen = true; }
            end = i + (size_t)len;
        }
        i += (size_t)len;
    }
    if (seen) fc_str_putn(&o->b, s + start, end - start);
}

/* RWKV: s.replace("\r\n", "\n").replace("\n\n", "\n"). */
static void put_rwkv(struct out *o, const char *s)
{
    fc_str tmp = {0};
    for (const char *p = s; *p;) {
        if (p[0] == '\r' && p[1] == '\n') { fc_str_putc(&tmp, '\n'); p += 2; }
        else fc_str_putc(&tmp, *p++);
    }
    for (size_t i = 0; i < tmp.len;) {
        if (tmp.p[i] == '\n' && i + 1 < tmp.len && tmp.p[i + 1] == '\n') { fc_str_putc(&o->b, '\n'); i += 2; }
        else fc_str_putc(&o->b, tmp.p[i++]);
    }
    fc_str_free(&tmp);
}

/* ---- get_prompt ---- */

char *fc_conv_get_prompt(const fc_conv *c)
{
    if (c->sep_style == FC_SEP_NONE || !fc_conv_sep_style_name(c->sep_style)) {
        FC_LOG_ERROR("%s: template '%s' has no separator style (it cannot be rendered as text)", __func__, c->name);
        return NULL;
    }
    char *sys = format_system(c->system_template, c->system_message);
    if (!sys) return NULL;
    struct out o = {{0}, NULL};
    const char *seps[2] = {c->sep, c->sep2};
    const char *role0 = c->n_roles > 0 ? c->roles[0] : "", *role1 = c->n_roles > 1 ? c->roles[1] : "";
    const int n = c->n_msgs;
    const struct msg *m = c->msgs;
#define ROLE(k) (m[k].role ? role1 : role0)

    switch (c->sep_style) {
    case FC_SEP_ADD_COLON_SINGLE:
        put(&o, sys); put_sep(&o, c->sep);
        for (int i = 0; i < n; i++) {
            put(&o, ROLE(i));
            if (filled(m[i].text)) { put(&o, ": "); put(&o, m[i].text); put_sep(&o, c->sep); }
            else put(&o, ":");
        }
        break;
    case FC_SEP_ADD_COLON_TWO:
        put(&o, sys); put_sep(&o, seps[0]);
        for (int i = 0; i < n; i++) {
            put(&o, ROLE(i));
            if (filled(m[i].text)) { put(&o, ": "); put(&o, m[i].text); put_sep(&o, seps[i % 2]); }
            else put(&o, ":");
        }
        break;
    case FC_SEP_ADD_COLON_SPACE_SINGLE:
        put(&o, sys); put_sep(&o, c->sep);
        for (int i = 0; i < n; i++) {
            put(&o, ROLE(i));
            put(&o, ": "); /* an open slot ends with the space too */
            if (filled(m[i].text)) { put(&o, m[i].text); put_sep(&o, c->sep); }
        }
        break;
    case FC_SEP_ADD_NEW_LINE_SINGLE:
        if (*sys) { put(&o, sys); put_sep(&o, c->sep); }
        for (int i = 0; i < n; i++) {
            put(&o, ROLE(i)); put(&o, "\n");
            if (filled(m[i].text)) { put(&o, m[i].text); put_sep(&o, c->sep); }
        }
        break;
    case FC_SEP_NO_COLON_SINGLE:
        put(&o, sys);
        for (int i = 0; i < n; i++) {
            put(&o, ROLE(i));
            if (filled(m[i].text)) { put(&o, m[i].text); put_sep(&o, c->sep); }
        }
        break;
    case FC_SEP_NO_COLON_TWO:
        put(&o, sys);
        for (int i = 0; i < n; i++) {
            put(&o, ROLE(i));
            if (filled(m[i].text)) { put(&o, m[i].text); put_sep(&o, seps[i % 2]); }
        }
        break;
    case FC_SEP_RWKV:
        put(&o, sys);
        for (int i = 0; i < n; i++) {
            put(&o, ROLE(i));
            if (filled(m[i].text)) { put(&o, ": "); put_rwkv(&o, m[i].text); put(&o, "\n\n"); }
            else put(&o, ":");
        }
        break;
    case FC_SEP_LLAMA2:
        /* The first message goes in bare (it follows "[INST] " or the system
         * block); later ones are tagged with roles[i % 2] by position. */
        put(&o, *c->system_message ? sys : "[INST] ");
        for (int i = 0; i < n; i++) {
            const char *tag = i % 2 ? role1 : role0;
            if (filled(m[i].text)) {
                if (i == 0) { put(&o, m[i].text); put(&o, " "); }
                else { put(&o, tag); put(&o, " "); put(&o, m[i].text); put_sep(&o, seps[i % 2]); }
            } else put(&o, tag);
        }
        break;
    case FC_SEP_LLAMA3:
        put(&o, "<|begin_of_text|>");
        if (*c->system_message) put(&o, sys);
        for (int i = 0; i < n; i++) {
            put(&o, "<|start_header_id|>"); put(&o, ROLE(i)); put(&o, "<|end_header_id|>\n\n");
            if (filled(m[i].text)) { put_stripped(&o, m[i].text); put(&o, "<|eot_id|>"); }
        }
        break;
    case FC_SEP_CHATGLM: {
        /* Rounds count from 1 for chatglm2, from 0 otherwise (THUDM's
         * modeling_chatglm.py of each model). */
        int round_add = !strcmp(c->name, "chatglm2");
        if (*sys) { put(&o, sys); put_sep(&o, c->sep); }
        for (int i = 0; i < n; i++) {
            /* These parts are f-strings in FastChat: a None sep prints "None". */
            const char *fsep = c->sep ? c->sep : "None";
            if (i % 2 == 0) { fc_str_printf(&o.b, "[Round %d]", i / 2 + round_add); put(&o, fsep); }
            put(&o, ROLE(i)); put(&o, "\xef\xbc\x9a"); /* U+FF1A FULLWIDTH COLON */
            if (filled(m[i].text)) { put(&o, m[i].text); put(&o, fsep); }
        }
        break;
    }
    case FC_SEP_CHATML:
        if (*sys) { put(&o, sys); put_sep(&o, c->sep); put(&o, "\n"); }
        for (int i = 0; i < n; i++) {
            put(&o, ROLE(i)); put(&o, "\n");
            if (filled(m[i].text)) { put(&o, m[i].text); put_sep(&o, c->sep); put(&o, "\n"); }
        }
        break;
    case FC_SEP_CHATGLM3:
        if (*c->system_message) put(&o, sys);
        for (int i = 0; i < n; i++) {
            put(&o, ROLE(i));
            if (filled(m[i].text)) { put(&o, "\n"); put(&o, m[i].text); }
        }
        break;
    case FC_SEP_CHATINTERN:
        put(&o, sys);
        for (int i = 0; i < n; i++) {
            if (i % 2 == 0) put(&o, "<s>");
            put(&o, ROLE(i)); put(&o, ":");
            if (filled(m[i].text)) { put(&o, m[i].text); put_sep(&o, seps[i % 2]); put(&o, "\n"); }
        }
        break;
    case FC_SEP_DOLLY:
        put(&o, sys);
        for (int i = 0; i < n; i++) {
            put(&o, ROLE(i)); put(&o, ":\n");
            if (filled(m[i].text)) {
                put(&o, m[i].text); put_sep(&o, seps[i % 2]);
                if (i % 2 == 1) put(&o, "\n\n");
            }
        }
        break;
    case FC_SEP_PHOENIX:
        put(&o, sys);
        for (int i = 0; i < n; i++) {
            put(&o, ROLE(i)); put(&o, ": <s>");
            if (filled(m[i].text)) { put(&o, m[i].text); put(&o, "</s>"); }
        }
        break;
    case FC_SEP_ROBIN:
        put(&o, sys); put_sep(&o, c->sep);
        for (int i = 0; i < n; i++) {
            put(&o, ROLE(i)); put(&o, ":\n");
            if (filled(m[i].text)) { put(&o, m[i].text); put_sep(&o, c->sep); }
        }
        break;
    case FC_SEP_FALCON_CHAT:
        if (*c->system_message) { put(&o, sys); put_sep(&o, c->sep); }
        for (int i = 0; i < n; i++) {
            put(&o, ROLE(i));
            if (filled(m[i].text)) { put(&o, ": "); put(&o, m[i].text); put_sep(&o, c->sep); }
            else put(&o, ":");
        }
        break;
    case FC_SEP_METAMATH:
        /* User turns: role ":\n" msg sep. Assistant turns: role ": " sep2 msg,
         * sep2 ("Let's think step by step.") prefixing the answer. */
        if (*sys) { put(&o, sys); put_sep(&o, c->sep); }
        for (int i = 0; i < n; i++) {
            put(&o, ROLE(i));
            if (i % 2 == 0) put(&o, ":\n");
            else { put(&o, ": "); put_sep(&o, c->sep2); }
            if (filled(m[i].text)) {
                put(&o, m[i].text);
                if (i % 2 == 0) put_sep(&o, c->sep);
            }
        }
        break;
    case FC_SEP_DEEPSEEK_CHAT:
        put(&o, sys);
        for (int i = 0; i < n; i++) {
            put(&o, ROLE(i));
            if (filled(m[i].text)) { put(&o, ": "); put(&o, m[i].text); put_sep(&o, seps[i % 2]); }
            else put(&o, ":");
        }
        break;
    case FC_SEP_YUAN2:
        /* Role names are not printed; messages are joined with "<n>", then
         * every trailing '<', 'n', '>' goes (Python rstrip("<n>")) before sep. */
        if (*c->system_message) { put(&o, sys); put_sep(&o, c->sep2); }
        for (int i = 0; i < n; i++)
            if (filled(m[i].text)) { put(&o, m[i].text); put(&o, "<n>"); }
        while (o.b.len && strchr("<n>", o.b.p[o.b.len - 1])) o.b.p[--o.b.len] = '\0';
        put_sep(&o, c->sep);
        break;
    case FC_SEP_GEMMA:
        /* The system message is not rendered at all. */
        put(&o, "<bos>");
        for (int i = 0; i < n; i++) {
            put(&o, "<start_of_turn>"); put(&o, ROLE(i)); put(&o, "\n");
            if (filled(m[i].text)) { put(&o, m[i].text); put_sep(&o, c->sep); }
        }
        break;
    case FC_SEP_CLLM:
        /* Only the last two messages (no history), parity counted from there. */
        put(&o, sys); put_sep(&o, seps[0]);
        for (int i = n >= 2 ? n - 2 : 0, j = 0; i < n; i++, j++) {
            put(&o, ROLE(i));
            if (filled(m[i].text)) { put(&o, ": "); put(&o, m[i].text); put_sep(&o, seps[j % 2]); }
            else put(&o, ":");
        }
        break;
    case FC_SEP_DEFAULT:
        put(&o, sys); put(&o, "\n");
        for (int i = 0; i < n; i++) {
            put(&o, ROLE(i));
            if (filled(m[i].text)) { put(&o, ": "); put(&o, m[i].text); put(&o, "\n"); }
            else put(&o, ":");
        }
        break;
    case FC_SEP_NONE:
        break;
    }
#undef ROLE
    free(sys);
    if (o.err) {
        FC_LOG_ERROR("%s: template '%s' (%s): %s", __func__, c->name, fc_conv_sep_style_name(c->sep_style), o.err);
        fc_str_free(&o.b);
        return NULL;
    }
    return fc_str_take(&o.b);
}

/* ---- exporters ---- */

static cJSON *str_or_null(const char *s) { return s ? cJSON_CreateString(s) : cJSON_CreateNull(); }

static cJSON *role_msg(const char *role, const char *content)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddItemToObject(o, "role", cJSON_CreateString(role));
    cJSON_AddItemToObject(o, "content", str_or_null(content));
    return o;
}

cJSON *fc_conv_to_openai_messages(const fc_conv *c)
{
    cJSON *arr = cJSON_CreateArray();
    if (!arr) return NULL;
    if (*c->system_message) cJSON_AddItemToArray(arr, role_msg("system", c->system_message));
    for (int i = c->offset, k = 0; i < c->n_msgs; i++, k++) {
        const char *t = c->msgs[i].text;
        if (k % 2 == 0) cJSON_AddItemToArray(arr, role_msg("user", t));
        else if (t) cJSON_AddItemToArray(arr, role_msg("assistant", t));
    }
    return arr;
}

cJSON *fc_conv_to_json(const fc_conv *c)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "name", c->name);
    cJSON_AddStringToObject(o, "system_template", c->system_template);
    cJSON_AddStringToObject(o, "system_message", c->system_message);
    cJSON_AddStringToObject(o, "system_message_vision", c->system_message_vision);
    cJSON *roles = cJSON_AddArrayToObject(o, "roles");
    for (int i = 0; i < c->n_roles; i++) cJSON_AddItemToArray(roles, cJSON_CreateString(c->roles[i]));
    cJSON *msgs = cJSON_AddArrayToObject(o, "messages");
    for (int i = 0; i < c->n_msgs; i++) {
        cJSON *pair = cJSON_CreateArray();
        cJSON_AddItemToArray(pair, cJSON_CreateString(c->msgs[i].role ? c->roles[1] : c->roles[0]));
        cJSON_AddItemToArray(pair, str_or_null(c->msgs[i].text));
        cJSON_AddItemToArray(msgs, pair);
    }
    cJSON_AddNumberToObject(o, "offset", c->offset);
    if (c->sep_style == FC_SEP_NONE) cJSON_AddNullToObject(o, "sep_style");
    else cJSON_AddNumberToObject(o, "sep_style", c->sep_style);
    cJSON_AddItemToObject(o, "sep", str_or_null(c->sep));
    cJSON_AddItemToObject(o, "sep2", str_or_null(c->sep2));
    if (c->stop_kind == FC_CONV_STOP_NONE) cJSON_AddNullToObject(o, "stop_str");
    else if (c->stop_kind == FC_CONV_STOP_STR) cJSON_AddStringToObject(o, "stop_str", c->stop_str[0]);
    else {
        cJSON *s = cJSON_AddArrayToObject(o, "stop_str");
        for (int i = 0; i < c->n_stop_str; i++) cJSON_AddItemToArray(s, cJSON_CreateString(c->stop_str[i]));
    }
    if (!c->has_stop_token_ids) cJSON_AddNullToObject(o, "stop_token_ids");
    else {
        cJSON *s = cJSON_AddArrayToObject(o, "stop_token_ids");
        for (int i = 0; i < c->n_stop_token_ids; i++) cJSON_AddItemToArray(s, cJSON_CreateNumber(c->stop_token_ids[i]));
    }
    if (c->max_image_size_mb < 0) cJSON_AddNullToObject(o, "max_image_size_mb");
    else cJSON_AddNumberToObject(o, "max_image_size_mb", c->max_image_size_mb);
    return o;
}

/* A string field of the JSON object: *out = its value (borrowed), or def when
 * absent; null gives NULL when nullable. Returns false on a wrong type. */
static bool json_str(const cJSON *obj, const char *key, const char *def, bool nullable, const char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) { *out = def; return true; }
    if (cJSON_IsNull(v) && nullable) { *out = NULL; return true; }
    if (!cJSON_IsString(v)) return false;
    *out = v->valuestring;
    return true;
}

fc_conv *fc_conv_from_json(const cJSON *obj)
{
    const char *bad = NULL, *name, *stmpl, *smsg, *smsgv, *sep, *sep2;
    fc_conv *c = NULL;
    if (!cJSON_IsObject(obj)) { bad = "not an object"; goto fail; }
    if (!json_str(obj, "name", NULL, false, &name) || !name) { bad = "name"; goto fail; }
    if (!json_str(obj, "system_template", "{system_message}", false, &stmpl)) { bad = "system_template"; goto fail; }
    if (!json_str(obj, "system_message", "", false, &smsg)) { bad = "system_message"; goto fail; }
    if (!json_str(obj, "system_message_vision", "", false, &smsgv)) { bad = "system_message_vision"; goto fail; }
    if (!json_str(obj, "sep", "\n", true, &sep)) { bad = "sep"; goto fail; }
    if (!json_str(obj, "sep2", NULL, true, &sep2)) { bad = "sep2"; goto fail; }

    c = conv_alloc();
    c->name = fc_xstrdup(name);
    c->system_template = fc_xstrdup(stmpl);
    c->system_message = fc_xstrdup(smsg);
    c->system_message_vision = fc_xstrdup(smsgv);
    c->sep = dup_or_null(sep);
    c->sep2 = dup_or_null(sep2);

    const cJSON *roles = cJSON_GetObjectItemCaseSensitive(obj, "roles");
    if (!roles) {
        c->roles[0] = fc_xstrdup("USER");
        c->roles[1] = fc_xstrdup("ASSISTANT");
        c->n_roles = 2;
    } else {
        int nr = cJSON_GetArraySize(roles);
        if (!cJSON_IsArray(roles) || nr < 2 || nr > 3) { bad = "roles (want 2 or 3 strings)"; goto fail; }
        for (int i = 0; i < nr; i++) {
            const cJSON *r = cJSON_GetArrayItem(roles, i);
            if (!cJSON_IsString(r)) { bad = "roles (want 2 or 3 strings)"; goto fail; }
            c->roles[c->n_roles++] = fc_xstrdup(r->valuestring);
        }
    }

    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(obj, "messages");
    if (msgs && !cJSON_IsArray(msgs)) { bad = "messages"; goto fail; }
    const cJSON *mm;
    cJSON_ArrayForEach(mm, msgs) {
        const cJSON *r = cJSON_GetArrayItem(mm, 0), *t = cJSON_GetArrayItem(mm, 1);
        if (!cJSON_IsArray(mm) || cJSON_GetArraySize(mm) != 2 || !cJSON_IsString(r) ||
            !(cJSON_IsString(t) || cJSON_IsNull(t))) { bad = "messages (want [role, text|null] pairs; images are not supported)"; goto fail; }
        int role = !strcmp(r->valuestring, c->roles[0]) ? 0 : !strcmp(r->valuestring, c->roles[1]) ? 1 : -1;
        if (role < 0) { bad = "messages (a role that is not roles[0] or roles[1])"; goto fail; }
        fc_conv_append_message(c, role, cJSON_IsString(t) ? t->valuestring : NULL);
    }

    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "offset");
    if (v && !cJSON_IsNumber(v)) { bad = "offset"; goto fail; }
    c->offset = v ? v->valueint : 0;

    v = cJSON_GetObjectItemCaseSensitive(obj, "sep_style");
    if (!v) c->sep_style = FC_SEP_ADD_COLON_SINGLE;
    else if (cJSON_IsNull(v)) c->sep_style = FC_SEP_NONE;
    else if (cJSON_IsNumber(v) && v->valuedouble >= 1 && v->valuedouble <= FC_SEP_DEFAULT &&
             v->valuedouble == (double)v->valueint) c->sep_style = (enum fc_sep_style)v->valueint;
    else { bad = "sep_style (want 1..23)"; goto fail; }

    v = cJSON_GetObjectItemCaseSensitive(obj, "stop_str");
    if (!v || cJSON_IsNull(v)) set_stop_strs(c, FC_CONV_STOP_NONE, NULL, 0);
    else if (cJSON_IsString(v)) set_stop_strs(c, FC_CONV_STOP_STR, (const char *const *)&v->valuestring, 1);
    else if (cJSON_IsArray(v)) {
        int k = cJSON_GetArraySize(v);
        const char **tmp = fc_xmalloc(sizeof(char *) * (size_t)(k ? k : 1));
        for (int i = 0; i < k; i++) {
            const cJSON *s = cJSON_GetArrayItem(v, i);
            if (!cJSON_IsString(s)) { free(tmp); bad = "stop_str"; goto fail; }
            tmp[i] = s->valuestring;
        }
        set_stop_strs(c, FC_CONV_STOP_LIST, tmp, k);
        free(tmp);
    } else { bad = "stop_str"; goto fail; }

    v = cJSON_GetObjectItemCaseSensitive(obj, "stop_token_ids");
    if (!v || cJSON_IsNull(v)) set_stop_ids(c, false, NULL, 0);
    else if (cJSON_IsArray(v)) {
        int k = cJSON_GetArraySize(v);
        int32_t *tmp = fc_xmalloc(sizeof(int32_t) * (size_t)(k ? k : 1));
        for (int i = 0; i < k; i++) {
            const cJSON *s = cJSON_GetArrayItem(v, i);
            if (!cJSON_IsNumber(s) || s->valuedouble < 0 || s->valuedouble > INT32_MAX) { free(tmp); bad = "stop_token_ids"; goto fail; }
            tmp[i] = (int32_t)s->valuedouble;
        }
        set_stop_ids(c, true, tmp, k);
        free(tmp);
    } else { bad = "stop_token_ids"; goto fail; }

    v = cJSON_GetObjectItemCaseSensitive(obj, "max_image_size_mb");
    c->max_image_size_mb = cJSON_IsNumber(v) ? v->valuedouble : -1;
    return c;

fail:
    FC_LOG_ERROR("%s: bad conversation field: %s", __func__, bad);
    fc_conv_free(c);
    return NULL;
}
