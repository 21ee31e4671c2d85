/*
 * conv_adapter.c: which conversation template FastChat picks for a model path
 * (fastchat/model/model_adapter.py: get_model_adapter, then the adapter's
 * get_default_conv_template), lm-sys/FastChat @ 0e6d3e4.
 *
 * The procedure: normalise the path (posixpath.normpath), take its basename
 * and try every adapter in registration order, skipping the catch-all base
 * adapter; the first match wins. If none matches, try the full path (as
 * given) with the base adapter last, which always matches ("one_shot"). The
 * winning adapter then chooses a template from the full path as given, not
 * the basename.
 *
 * Case rules, as in FastChat: most tests are substring tests on Python's
 * str.lower() of the name; the API-model adapters (ChatGPT, Claude, Bard,
 * PaLM-2, Azure, Pplx, Cohere, DBRX) compare the exact name; ReaLM's test and
 * several template choices (Airoboros, Gemini, ChatGPT, Claude, Vicuna's "v0")
 * are case-sensitive. The GeminiAdapter class is defined twice in FastChat
 * (the second, which knows gemini-1.5-pro, is the one registered) and
 * GemmaAdapter is registered twice; both are kept for fidelity.
 *
 * Deliberately not mirrored: FastChat memoises get_model_adapter; loading
 * (tokenizer classes, generate functions) lives elsewhere.
 */
#include "conv.h"
#include "conv_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <utf8proc.h>

#include "base/fc_base.h"

/* ---- Python string helpers ---- */

/* str.lower(): full Unicode lowercase. utf8proc gives the simple mapping;
 * the one character whose full mapping differs is U+0130 (İ -> "i̇"). */
static char *py_lower(const char *s)
{
    fc_str b = {0};
    const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)s;
    utf8proc_ssize_t left = (utf8proc_ssize_t)strlen(s);
    while (left > 0) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n = utf8proc_iterate(p, left, &cp);
        if (n <= 0) { /* invalid byte: keep it as is */
            fc_str_putc(&b, (char)*p);
            p++, left--;
            continue;
        }
        if (cp < 0x80) fc_str_putc(&b, (char)(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp));
        else if (cp == 0x130) fc_str_puts(&b, "i\xcc\x87");
        else {
            utf8proc_uint8_t enc[4];
            utf8proc_ssize_t k = utf8proc_encode_char(utf8proc_tolower(cp), enc);
            fc_str_putn(&b, (const char *)enc, (size_t)k);
        }
        p += n, left -= n;
    }
    return fc_str_take(&b);
}

/* posixpath.normpath */
static char *py_normpath(const char *path)
{
    if (!*path) return fc_xstrdup(".");
    size_t n = strlen(path);
    int lead = path[0] == '/' ? (path[1] == '/' && path[2] != '/' ? 2 : 1) : 0;
    const char **comps = fc_xmalloc(sizeof(char *) * (n + 1));
    size_t *lens = fc_xmalloc(sizeof(size_t) * (n + 1));
    size_t k = 0;
    for (const char *p = path; *p;) {
        while (*p == '/') p++;
        if (!*p) break;
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 1 && p[0] == '.') { /* skip */ }
        else if (len == 2 && p[0] == '.' && p[1] == '.') {
            if (k > 0 && !(lens[k - 1] == 2 && !memcmp(comps[k - 1], "..", 2))) k--;
            else if (!lead) { comps[k] = p; lens[k++] = len; }
        } else { comps[k] = p; lens[k++] = len; }
        p += len;
    }
    fc_str b = {0};
    for (int i = 0; i < lead; i++) fc_str_putc(&b, '/');
    for (size_t i = 0; i < k; i++) {
        if (i) fc_str_putc(&b, '/');
        fc_str_putn(&b, comps[i], lens[i]);
    }
    free(comps);
    free(lens);
    if (b.len == 0) fc_str_puts(&b, ".");
    return fc_str_take(&b);
}

/* os.path.exists(os.path.join(dir, "adapter_config.json")) */
static bool has_adapter_config(const char *dir)
{
    char buf[4096];
    size_t n = strlen(dir);
    int w = n == 0 || dir[n - 1] == '/' ? snprintf(buf, sizeof buf, "%sadapter_config.json", dir)
                                        : snprintf(buf, sizeof buf, "%s/adapter_config.json", dir);
    struct stat st;
    return w > 0 && (size_t)w < sizeof buf && stat(buf, &st) == 0;
}

/* ---- the adapters ---- */

/* Each adapter has a match test, given the name being tried (a basename or
 * the full path) and its lowercase, and a template choice, given the full
 * path as passed in and its lowercase. */
struct adapter {
    const char *name;
    bool (*match)(const char *s, const char *lo);
    const char *(*pick)(const char *path, const char *lo);
};

#define HAS(str, sub) (strstr((str), (sub)) != NULL)
#define MATCH(id, expr) \
    static bool m_##id(const char *s, const char *lo) { (void)s; (void)lo; return (expr); }
#define PICK(id, expr) \
    static const char *p_##id(const char *path, const char *lo) { (void)path; (void)lo; return (expr); }

static bool in_list(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(s, list[i])) return true;
    return false;
}

/* fastchat/model/model_adapter.py OPENAI_MODEL_LIST and ANTHROPIC_MODEL_LIST */
static const char *const openai_models[] = {
    "gpt-3.5-turbo", "gpt-3.5-turbo-0301", "gpt-3.5-turbo-0613", "gpt-3.5-turbo-1106",
    "gpt-3.5-turbo-0125", "gpt-4", "gpt-4-0314", "gpt-4-0613", "gpt-4-turbo", "gpt-4-1106-preview",
    "gpt-4-0125-preview", "gpt-4-turbo-browsing", "gpt-4-turbo-2024-04-09", "gpt2-chatbot",
    "im-also-a-good-gpt2-chatbot", "im-a-good-gpt2-chatbot", "gpt-4o-mini-2024-07-18",
    "gpt-4o-2024-05-13", "gpt-4o-2024-08-06", "chatgpt-4o-latest-20240903", "chatgpt-4o-latest",
    "o1-preview", "o1-mini",
};
static const char *const anthropic_models[] = {
    "claude-1", "claude-2", "claude-2.0", "claude-2.1", "claude-3-haiku-20240307",
    "claude-3-haiku-20240307-vertex", "claude-3-sonnet-20240229", "claude-3-sonnet-20240229-vertex",
    "claude-3-5-sonnet-20240620", "claude-3-opus-20240229", "claude-instant-1", "claude-instant-1.2",
};

/* PeftModelAdapter: the template of the base model named in adapter_config.json
 * (handled in resolve(), which can recurse). */
MATCH(peft, has_adapter_config(s) || HAS(lo, "peft"))

MATCH(stable_vicuna, HAS(lo, "stable-vicuna"))
PICK(stable_vicuna, "stable-vicuna")

/* Vicuna v0 weights used the one_shot format; the test is on the last path
 * component, case-sensitive. */
MATCH(vicuna, HAS(lo, "vicuna"))
static const char *p_vicuna(const char *path, const char *lo)
{
    (void)lo;
    size_t n = strlen(path);
    if (n && path[n - 1] == '/') n--;
    size_t i = n;
    while (i > 0 && path[i - 1] != '/') i--;
    for (size_t j = i; j + 1 < n; j++)
        if (path[j] == 'v' && path[j + 1] == '0') return "one_shot";
    return "vicuna_v1.1";
}

MATCH(airoboros, HAS(lo, "airoboros") || HAS(lo, "spicyboros"))
static const char *p_airoboros(const char *path, const char *lo)
{
    (void)lo;
    if (HAS(path, "-3.") || HAS(path, "-3p")) return "airoboros_v3";
    if (HAS(path, "spicyboros")) return "airoboros_v2";
    for (const char *p = strstr(path, "-2."); p; p = strstr(p + 1, "-2.")) /* re -(2\.[2-9]+) */
        if (p[3] >= '2' && p[3] <= '9') return "airoboros_v2";
    return "airoboros_v1";
}

MATCH(longchat, HAS(lo, "longchat"))
PICK(vicuna_v11, "vicuna_v1.1")
MATCH(t5, HAS(lo, "flan-") || HAS(lo, "fastchat-t5") || HAS(lo, "codet5p"))
PICK(one_shot, "one_shot")
MATCH(koala, HAS(lo, "koala"))
PICK(koala, "koala_v1")
MATCH(alpaca, HAS(lo, "alpaca"))
PICK(alpaca, "alpaca")
MATCH(chatglm, HAS(lo, "chatglm"))
PICK(chatglm, HAS(lo, "chatglm2") ? "chatglm2" : HAS(lo, "chatglm3") ? "chatglm3" : "chatglm")
MATCH(codegeex, HAS(lo, "codegeex"))
PICK(codegeex, "codegeex")
MATCH(dolly, HAS(lo, "dolly-v2"))
PICK(dolly, "dolly_v2")
MATCH(oasst_pythia, HAS(lo, "oasst") && HAS(lo, "pythia"))
PICK(oasst_pythia, "oasst_pythia")
MATCH(oasst_llama, HAS(lo, "openassistant-sft-7-llama-30b-hf") || (HAS(lo, "oasst") && !HAS(lo, "pythia")))
PICK(oasst_llama, "oasst_llama")
MATCH(openchat35, (HAS(lo, "openchat") && HAS(lo, "3.5")) || HAS(lo, "starling-lm"))
PICK(openchat35, "openchat_3.5")
MATCH(tenyx, HAS(lo, "tenyxchat"))
PICK(tenyx, "tenyxchat")
MATCH(stablelm, HAS(lo, "stablelm"))
PICK(stablelm, "stablelm")
MATCH(baize, HAS(lo, "baize"))
PICK(baize, "baize")
MATCH(rwkv, HAS(lo, "rwkv-4"))
PICK(rwkv, "rwkv")
MATCH(openbuddy, HAS(lo, "openbuddy"))
PICK(openbuddy, "openbuddy")
MATCH(phoenix, HAS(lo, "phoenix"))
PICK(phoenix, "phoenix")
MATCH(bard, !strcmp(s, "bard"))
PICK(bard, "bard")
MATCH(palm2, !strcmp(s, "palm-2"))
MATCH(gemini, HAS(lo, "gemini") || HAS(lo, "bard"))
PICK(gemini, HAS(path, "gemini-1.5-pro") ? "gemini-1.5-pro" : "gemini")
MATCH(gemma, HAS(lo, "gemma"))
PICK(gemma, "gemma")

MATCH(chatgpt, in_list(s, openai_models, FC_ARRAY_LEN(openai_models)))
static const char *p_chatgpt(const char *path, const char *lo)
{
    (void)lo;
    if (HAS(path, "browsing")) return "api_based_default";
    if (HAS(path, "gpt-4-turbo-2024-04-09") || HAS(path, "gpt2-chatbot") || HAS(path, "gpt-4o-2024-05-13"))
        return "gpt-4-turbo-2024-04-09";
    if (HAS(path, "gpt-4o-2024-08-06")) return "gpt-mini";
    if (HAS(path, "anonymous-chatbot") || HAS(path, "chatgpt-4o-latest")) return "gpt-4-turbo-2024-04-09";
    if (HAS(path, "gpt-mini") || HAS(path, "gpt-4o-mini-2024-07-18")) return "gpt-mini";
    if (HAS(path, "o1")) return "api_based_default";
    return "chatgpt";
}

MATCH(azure, !strcmp(s, "azure-gpt-35-turbo") || !strcmp(s, "azure-gpt-4"))
PICK(chatgpt_plain, "chatgpt")

MATCH(claude, in_list(s, anthropic_models, FC_ARRAY_LEN(anthropic_models)))
static const char *p_claude(const char *path, const char *lo)
{
    (void)lo;
    if (HAS(path, "claude-3-haiku")) return "claude-3-haiku-20240307";
    if (HAS(path, "claude-3-sonnet")) return "claude-3-sonnet-20240229";
    if (HAS(path, "claude-3-5-sonnet")) return "claude-3-5-sonnet-20240620-v2";
    if (HAS(path, "claude-3-opus")) return "claude-3-opus-20240229";
    return "claude";
}

MATCH(mpt, HAS(lo, "mpt") && !HAS(lo, "airoboros"))
PICK(mpt, HAS(lo, "mpt-7b-chat") ? "mpt-7b-chat" : HAS(lo, "mpt-30b-chat") ? "mpt-30b-chat"
          : HAS(lo, "mpt-30b-instruct") ? "mpt-30b-instruct" : "zero_shot")
MATCH(billa, HAS(lo, "billa"))
PICK(billa, "billa")
MATCH(redpajama, HAS(lo, "redpajama-incite"))
PICK(redpajama, "redpajama-incite")
MATCH(h2ogpt, HAS(lo, "h2ogpt"))
PICK(h2ogpt, "h2ogpt")
MATCH(robin, HAS(lo, "robin"))
PICK(robin, "Robin")
MATCH(snoozy, HAS(lo, "gpt4all") && HAS(lo, "snoozy"))
PICK(snoozy, "snoozy")
MATCH(wizardlm, HAS(lo, "wizardlm"))
PICK(wizardlm, HAS(lo, "13b") || HAS(lo, "30b") || HAS(lo, "70b") ? "vicuna_v1.1" : "one_shot")
MATCH(manticore, HAS(lo, "manticore"))
PICK(manticore, "manticore")
MATCH(guanaco, HAS(lo, "guanaco"))
PICK(zero_shot, "zero_shot")
MATCH(camel, HAS(lo, "camel"))
MATCH(changgpt, HAS(lo, "polyglot") && HAS(lo, "chang"))
PICK(changgpt, "polyglot_changgpt")
MATCH(tulu, HAS(lo, "tulu"))
PICK(tulu, "tulu")
MATCH(falcon_chat, HAS(lo, "falcon") && HAS(lo, "chat"))
PICK(falcon_chat, "falcon-chat")
MATCH(falcon, HAS(lo, "falcon") && !HAS(lo, "chat"))
PICK(falcon, "falcon")
MATCH(tigerbot, HAS(lo, "tigerbot"))
PICK(tigerbot, "tigerbot")
MATCH(baichuan, HAS(lo, "baichuan"))
PICK(baichuan, HAS(lo, "chat") ? (HAS(lo, "baichuan2") ? "baichuan2-chat" : "baichuan-chat") : "zero_shot")
MATCH(xgen, HAS(lo, "xgen"))
PICK(xgen, "xgen")
MATCH(pythia, HAS(lo, "pythia"))
MATCH(internlm, HAS(lo, "internlm"))
PICK(internlm, "internlm-chat")
MATCH(starchat, HAS(lo, "starchat"))
PICK(starchat, "starchat")
MATCH(llama2, HAS(lo, "llama-2"))
PICK(llama2, "llama-2")
MATCH(cutegpt, HAS(lo, "cutegpt"))
PICK(cutegpt, "cutegpt")
MATCH(openorca, HAS(lo, "mistral-7b-openorca") || HAS(lo, "openorca"))
PICK(openorca, HAS(lo, "mistral-7b-openorca") ? "mistral-7b-openorca" : "open-orca")
MATCH(dolphin, HAS(lo, "dolphin") && HAS(lo, "mistral"))
PICK(dolphin, "dolphin-2.2.1-mistral-7b")
MATCH(hermes2, HAS(lo, "openhermes-2.5-mistral-7b") || HAS(lo, "openhermes-2-mistral-7b"))
PICK(hermes2, "OpenHermes-2.5-Mistral-7B")
MATCH(nous_mixtral, HAS(lo, "nous-hermes-2-mixtral-8x7b-dpo") || HAS(lo, "nous-hermes-2-mixtral-8x7b-sft"))
PICK(nous_mixtral, "Nous-Hermes-2-Mixtral-8x7B-DPO")
MATCH(nous_hermes, HAS(lo, "nous-hermes"))
MATCH(mistral, HAS(lo, "mistral") || HAS(lo, "mixtral"))
PICK(mistral, "mistral")
MATCH(wizardcoder, HAS(lo, "wizardcoder"))
MATCH(qwen, HAS(lo, "qwen"))
PICK(qwen, "qwen-7b-chat")
/* BAAI/AquilaChat2-34B predict.py picks the format by size and context. */
MATCH(aquila, HAS(lo, "aquila"))
PICK(aquila, HAS(lo, "aquilachat2") ? (HAS(lo, "16k") ? "aquila" : HAS(lo, "34b") ? "aquila-legacy" : "aquila-v1")
             : "aquila-chat")
MATCH(bge, HAS(lo, "bge"))
MATCH(e5, HAS(lo, "e5-"))
MATCH(llama2_chinese, HAS(lo, "llama2-chinese"))
PICK(llama2_chinese, "llama2-chinese")
MATCH(chinese_alpaca, HAS(lo, "chinese-alpaca"))
PICK(chinese_alpaca, "chinese-alpaca2")
MATCH(vigogne, HAS(lo, "vigogne") || HAS(lo, "vigostral"))
PICK(vigogne, HAS(lo, "chat") ? (HAS(lo, "vigostral") ? "vigogne_chat_v3" : "vigogne_chat_v2") : "vigogne_instruct")
MATCH(open_llama_instruct, HAS(lo, "open-llama") && HAS(lo, "open-instruct"))
MATCH(realm, HAS(s, "ReaLM"))
PICK(realm, "ReaLM-7b-v1")
MATCH(phind, HAS(lo, "phind-codellama-"))
PICK(phind, "phind")
MATCH(codellama, HAS(lo, "codellama"))
MATCH(llama2_chang, HAS(lo, "llama2-ko-chang"))
MATCH(zephyr, HAS(lo, "zephyr"))
PICK(zephyr, "zephyr")
MATCH(notus, HAS(lo, "notus"))
MATCH(catppt, HAS(lo, "catppt"))
PICK(catppt, "catppt")
MATCH(tinyllama, HAS(lo, "tinyllama"))
PICK(tinyllama, "TinyLlama")
MATCH(xwin, HAS(lo, "xwin-lm"))
MATCH(lemur, HAS(lo, "lemur-70b-chat"))
PICK(lemur, "lemur-70b-chat")
MATCH(pygmalion, HAS(lo, "pygmalion") || HAS(lo, "mythalion") || HAS(lo, "metharme"))
PICK(metharme, "metharme")
MATCH(ms_orca, HAS(lo, "orca-2"))
PICK(ms_orca, "orca-2")
MATCH(xdan, HAS(lo, "xdan") && HAS(lo, "v1"))
PICK(xdan, "xdan-v1")
MATCH(yi, HAS(lo, "yi-") && HAS(lo, "chat"))
PICK(yi, "Yi-34b-chat")
MATCH(pplx, !strcmp(s, "pplx-7b-online") || !strcmp(s, "pplx-70b-online"))
PICK(pplx, "pplxai")
MATCH(deepseek_coder, HAS(lo, "deepseek-coder"))
PICK(deepseek_coder, "deepseek-coder")
MATCH(deepseek_chat, HAS(lo, "deepseek-llm") && HAS(lo, "chat"))
PICK(deepseek_chat, "deepseek-chat")
MATCH(yuan2, HAS(lo, "yuan2"))
PICK(yuan2, "yuan2")
MATCH(metamath, HAS(lo, "metamath"))
PICK(metamath, "metamath")
MATCH(bagel, HAS(lo, "bagel"))
PICK(airoboros_v3, "airoboros_v3")
MATCH(solar, HAS(lo, "solar-") && HAS(lo, "instruct"))
PICK(solar, "solar")
MATCH(steerlm, HAS(lo, "steerlm-chat"))
PICK(steerlm, "steerlm")
MATCH(llava, HAS(lo, "llava"))
PICK(llava, HAS(lo, "34b") ? "llava-chatml" : "vicuna_v1.1")
MATCH(yuan, HAS(lo, "yuan"))
PICK(yuan, "yuan")
MATCH(olmo, HAS(lo, "olmo"))
PICK(api_default, "api_based_default")
MATCH(cohere, !strcmp(s, "command-r"))
MATCH(dbrx, !strcmp(s, "dbrx-instruct"))
MATCH(yandexgpt, HAS(lo, "yandexgpt"))
PICK(yandexgpt, "yandexgpt")
MATCH(cllm, HAS(lo, "consistency-llm"))
PICK(cllm, "cllm")
MATCH(reka, HAS(lo, "reka"))
MATCH(smaug, HAS(lo, "smaug"))
MATCH(llama3, HAS(lo, "llama-3-"))
PICK(llama3, "llama-3")
MATCH(llama31, HAS(lo, "llama-3.1"))
PICK(llama31, !strcmp(lo, "llama-3.1-8b-instruct") || !strcmp(lo, "llama-3.1-70b-instruct") ||
              !strcmp(lo, "the-real-chatbot-v2") ? "meta-llama-3.1-sp" : "meta-llama-3.1")
MATCH(grok, HAS(lo, "grok"))
PICK(grok, HAS(lo, "mini") ? "grok-2-mini" : "grok-2")
MATCH(nosystem, !strcmp(lo, "athene-70b") || !strcmp(lo, "p2l"))
MATCH(base, true)

/* Registration order (the end of model_adapter.py); earlier wins. */
static const struct adapter adapters[] = {
    {"PeftModelAdapter", m_peft, NULL},
    {"StableVicunaAdapter", m_stable_vicuna, p_stable_vicuna},
    {"VicunaAdapter", m_vicuna, p_vicuna},
    {"AiroborosAdapter", m_airoboros, p_airoboros},
    {"LongChatAdapter", m_longchat, p_vicuna_v11},
    {"GoogleT5Adapter", m_t5, p_one_shot},
    {"KoalaAdapter", m_koala, p_koala},
    {"AlpacaAdapter", m_alpaca, p_alpaca},
    {"ChatGLMAdapter", m_chatglm, p_chatglm},
    {"CodeGeexAdapter", m_codegeex, p_codegeex},
    {"DollyV2Adapter", m_dolly, p_dolly},
    {"OasstPythiaAdapter", m_oasst_pythia, p_oasst_pythia},
    {"OasstLLaMAAdapter", m_oasst_llama, p_oasst_llama},
    {"OpenChat35Adapter", m_openchat35, p_openchat35},
    {"TenyxChatAdapter", m_tenyx, p_tenyx},
    {"StableLMAdapter", m_stablelm, p_stablelm},
    {"BaizeAdapter", m_baize, p_baize},
    {"RwkvAdapter", m_rwkv, p_rwkv},
    {"OpenBuddyAdapter", m_openbuddy, p_openbuddy},
    {"PhoenixAdapter", m_phoenix, p_phoenix},
    {"BardAdapter", m_bard, p_bard},
    {"PaLM2Adapter", m_palm2, p_bard},
    {"GeminiAdapter", m_gemini, p_gemini},
    {"GemmaAdapter", m_gemma, p_gemma},
    {"ChatGPTAdapter", m_chatgpt, p_chatgpt},
    {"AzureOpenAIAdapter", m_azure, p_chatgpt_plain},
    {"ClaudeAdapter", m_claude, p_claude},
    {"MPTAdapter", m_mpt, p_mpt},
    {"BiLLaAdapter", m_billa, p_billa},
    {"RedPajamaINCITEAdapter", m_redpajama, p_redpajama},
    {"H2OGPTAdapter", m_h2ogpt, p_h2ogpt},
    {"RobinAdapter", m_robin, p_robin},
    {"SnoozyAdapter", m_snoozy, p_snoozy},
    {"WizardLMAdapter", m_wizardlm, p_wizardlm},
    {"ManticoreAdapter", m_manticore, p_manticore},
    {"GuanacoAdapter", m_guanaco, p_zero_shot},
    {"CamelAdapter", m_camel, p_vicuna_v11},
    {"ChangGPTAdapter", m_changgpt, p_changgpt},
    {"TuluAdapter", m_tulu, p_tulu},
    {"FalconChatAdapter", m_falcon_chat, p_falcon_chat},
    {"FalconAdapter", m_falcon, p_falcon},
    {"TigerBotAdapter", m_tigerbot, p_tigerbot},
    {"BaichuanAdapter", m_baichuan, p_baichuan},
    {"XGenAdapter", m_xgen, p_xgen},
    {"PythiaAdapter", m_pythia, p_one_shot},
    {"InternLMChatAdapter", m_internlm, p_internlm},
    {"StarChatAdapter", m_starchat, p_starchat},
    {"Llama2Adapter", m_llama2, p_llama2},
    {"CuteGPTAdapter", m_cutegpt, p_cutegpt},
    {"OpenOrcaAdapter", m_openorca, p_openorca},
    {"DolphinAdapter", m_dolphin, p_dolphin},
    {"Hermes2Adapter", m_hermes2, p_hermes2},
    {"NousHermes2MixtralAdapter", m_nous_mixtral, p_nous_mixtral},
    {"NousHermesAdapter", m_nous_hermes, p_alpaca},
    {"MistralAdapter", m_mistral, p_mistral},
    {"WizardCoderAdapter", m_wizardcoder, p_alpaca},
    {"QwenChatAdapter", m_qwen, p_qwen},
    {"AquilaChatAdapter", m_aquila, p_aquila},
    {"BGEAdapter", m_bge, p_one_shot},
    {"E5Adapter", m_e5, p_one_shot},
    {"Lamma2ChineseAdapter", m_llama2_chinese, p_llama2_chinese},
    {"Lamma2ChineseAlpacaAdapter", m_chinese_alpaca, p_chinese_alpaca},
    {"VigogneAdapter", m_vigogne, p_vigogne},
    {"OpenLLaMaOpenInstructAdapter", m_open_llama_instruct, p_alpaca},
    {"ReaLMAdapter", m_realm, p_realm},
    {"PhindCodeLlamaAdapter", m_phind, p_phind},
    {"CodeLlamaAdapter", m_codellama, p_llama2},
    {"Llama2ChangAdapter", m_llama2_chang, p_changgpt},
    {"ZephyrAdapter", m_zephyr, p_zephyr},
    {"NotusAdapter", m_notus, p_zephyr},
    {"CatPPTAdapter", m_catppt, p_catppt},
    {"TinyLlamaAdapter", m_tinyllama, p_tinyllama},
    {"XwinLMAdapter", m_xwin, p_vicuna_v11},
    {"LemurAdapter", m_lemur, p_lemur},
    {"PygmalionAdapter", m_pygmalion, p_metharme},
    {"MicrosoftOrcaAdapter", m_ms_orca, p_ms_orca},
    {"XdanAdapter", m_xdan, p_xdan},
    {"YiAdapter", m_yi, p_yi},
    {"PplxAIAdapter", m_pplx, p_pplx},
    {"DeepseekCoderAdapter", m_deepseek_coder, p_deepseek_coder},
    {"DeepseekChatAdapter", m_deepseek_chat, p_deepseek_chat},
    {"Yuan2Adapter", m_yuan2, p_yuan2},
    {"MetaMathAdapter", m_metamath, p_metamath},
    {"BagelAdapter", m_bagel, p_airoboros_v3},
    {"SolarAdapter", m_solar, p_solar},
    {"SteerLMAdapter", m_steerlm, p_steerlm},
    {"LlavaAdapter", m_llava, p_llava},
    {"YuanAdapter", m_yuan, p_yuan},
    {"OlmoAdapter", m_olmo, p_api_default},
    {"CohereAdapter", m_cohere, p_api_default},
    {"DBRXAdapter", m_dbrx, p_api_default},
    {"GemmaAdapter", m_gemma, p_gemma},
    {"YandexGPTAdapter", m_yandexgpt, p_yandexgpt},
    {"CllmAdapter", m_cllm, p_cllm},
    {"RekaAdapter", m_reka, p_api_default},
    {"SmaugChatAdapter", m_smaug, p_qwen},
    {"Llama3Adapter", m_llama3, p_llama3},
    {"Llama31Adapter", m_llama31, p_llama31},
    {"GrokAdapter", m_grok, p_grok},
    {"NoSystemAdapter", m_nosystem, p_api_default},
    {"BaseModelAdapter", m_base, p_one_shot}, /* always last */
};

#define N_ADAPTERS ((int)FC_ARRAY_LEN(adapters))

/* get_model_adapter: the index of the adapter FastChat picks for path. */
static int find_adapter(const char *path)
{
    char *norm = py_normpath(path);
    const char *slash = strrchr(norm, '/');
    const char *base = slash ? slash + 1 : norm;
    char *lo = py_lower(base);
    int found = -1;
    for (int i = 0; i < N_ADAPTERS - 1 && found < 0; i++)
        if (adapters[i].match(base, lo)) found = i;
    free(lo);
    free(norm);
    if (found >= 0) return found;
    lo = py_lower(path);
    for (int i = 0; i < N_ADAPTERS && found < 0; i++)
        if (adapters[i].match(path, lo)) found = i;
    free(lo);
    return found;
}

/* PEFT: adapter_config.json's base_model_name_or_path, malloc'd; NULL (logged)
 * when unreadable, absent, or itself naming a "peft" model (FastChat raises). */
static char *peft_base_model(const char *dir)
{
    char file[4096];
    size_t n = strlen(dir);
    int w = snprintf(file, sizeof file, n && dir[n - 1] == '/' ? "%sadapter_config.json" : "%s/adapter_config.json", dir);
    if (w <= 0 || (size_t)w >= sizeof file) return NULL;
    fc_mmap *m = fc_mmap_open(file);
    if (!m) return NULL;
    cJSON *j = cJSON_ParseWithLength((const char *)m->data, m->size);
    fc_mmap_free(m);
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "base_model_name_or_path");
    char *ret = NULL;
    if (!cJSON_IsString(b)) FC_LOG_ERROR("%s: no base_model_name_or_path string", file);
    else if (strstr(b->valuestring, "peft"))
        FC_LOG_ERROR("%s: PEFT base model '%s' has 'peft' in its name (FastChat refuses it)", file, b->valuestring);
    else ret = fc_xstrdup(b->valuestring);
    cJSON_Delete(j);
    return ret;
}

static const char *resolve(const char *path, const char **adapter_name, int depth)
{
    int k = find_adapter(path);
    FC_ASSERT(k >= 0); /* the base adapter always matches */
    if (adapter_name) *adapter_name = adapters[k].name;
    if (adapters[k].pick) {
        char *lo = py_lower(path);
        const char *t = adapters[k].pick(path, lo);
        free(lo);
        return t;
    }
    /* PeftModelAdapter */
    if (depth >= 8) {
        FC_LOG_ERROR("%s: PEFT adapters nest too deeply", path);
        return NULL;
    }
    char *base = peft_base_model(path);
    if (!base) return NULL;
    const char *t = resolve(base, NULL, depth + 1);
    free(base);
    return t;
}

const char *fc_conv_template_for_model_path(const char *model_path, const char **adapter_name)
{
    if (adapter_name) *adapter_name = NULL;
    if (!model_path) return NULL;
    return resolve(model_path, adapter_name, 0);
}
