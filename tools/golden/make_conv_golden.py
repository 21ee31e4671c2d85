#!/usr/bin/env python3
"""make_conv_golden.py: golden data for the conversation templates and the
model-path adapter matching (tests/unit/test_conv.c, tests/py/test_prompt_cli.py).

Writes tests/data/conv/golden.json:
  "templates"  one entry per registered template, in registration order:
               {"name", "json"} where "json" is the Conversation dataclass as a
               FastChat worker serves it from /worker_get_conv_template
               (fastapi's jsonable_encoder: tuples become lists, sep_style its
               number).
  "cases"      for every template and every shape below: {"template", "shape",
               "ops", "prompt", "stop_str", "stop_token_ids"} where ops replays
               the conversation (["system", text] = set_system_message,
               ["append", role_index, text|null] = append_message,
               ["update_last", text] = update_last_message) and prompt is
               get_prompt() (null where FastChat raises). Shapes with an
               "openai" key also hold to_openai_api_messages().
  "api_cases"  OpenAI-style message lists and the prompt FastChat's OpenAI API
               server renders for them (openai_api_server.get_gen_params:
               template rebuilt from its JSON, system -> set_system_message,
               user/assistant appended, then always an open assistant slot),
               plus the "stop" union it sends (sorted here; FastChat sends a
               set) and stop_token_ids.
  "adapters"   ~250 hand-picked model paths and ~400 random ones made of the
               adapters' keywords (fixed seed), with the template and adapter class FastChat's
               get_conversation_template / get_model_adapter pick (template
               null where FastChat raises).

and tests/data/conv/peft/*/adapter_config.json, the PEFT adapter folders the
adapter cases point at (paths relative to the repository root; the script
chdirs there, as the tests run from there).

FastChat: see gen_conv_templates.py (FASTCHAT_SRC, lm-sys/FastChat @ 0e6d3e4).
Importing fastchat.model.model_adapter needs torch, transformers, accelerate
and peft (the Python in /root/refvenv/venv has them; peft was added there with
`pip install --no-deps peft`). One import-time-only module is stubbed: FastChat
imports `_prepare_4d_causal_attention_mask` from
transformers.modeling_attn_mask_utils for its CLLM and monkey-patch generate
functions, a module transformers 5 removed; nothing here calls it.

    FASTCHAT_SRC=/tmp/fastchat-src /root/refvenv/venv/bin/python tools/golden/make_conv_golden.py
"""
import dataclasses
import json
import os
import sys
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_conv_templates import FASTCHAT_COMMIT, ROOT, load_fastchat  # noqa: E402

OUT_DIR = os.path.join(ROOT, "tests", "data", "conv")

# ---- conversation content: non-ASCII, newlines, CRLF, blank lines, Unicode
# whitespace at the ends (LLAMA3 strips), braces (never formatted in a message),
# a trailing 'n' (YUAN2's rstrip("<n>") eats it) ----
SYS = "You are a helpful assistant.\nAnswer briefly; keep {braces} and {{doubled}} as they are — ünïcödé ✓."
U1 = "Hello! Wie geht's? 你好，世界 🌍"
A1 = "Hi there.\nI'm fine — thanks!\n\nHow can I help?"
U2 = "Line one\r\nLine two\n\n\nafter blank lines  "
A2 = "\u3000 Ответ: 42\u00a0\n"
U3 = "Explain why the sky is blue, in one line about the sun"
REPLY = "Because of Rayleigh scattering.\n"

SHAPES = {
    # name: (ops, with_openai_export)
    "one_turn": ([["append", 0, U1], ["append", 1, None]], False),
    "empty_system": ([["system", ""], ["append", 0, U1], ["append", 1, None]], False),
    "custom_system": ([["system", SYS], ["append", 0, U1], ["append", 1, None]], True),
    "three_turns": ([["system", SYS], ["append", 0, U1], ["append", 1, A1], ["append", 0, U2],
                     ["append", 1, A2], ["append", 0, U3], ["append", 1, None]], True),
    "three_turns_default_system": ([["append", 0, U1], ["append", 1, A1], ["append", 0, U2],
                                    ["append", 1, A2], ["append", 0, U3], ["append", 1, None]], True),
    "closed": ([["append", 0, U1], ["append", 1, A1]], True),
    "empty_user": ([["append", 0, ""], ["append", 1, None]], True),
    "whitespace_user": ([["append", 0, " \n\t "], ["append", 1, None]], False),
    "update_last": ([["append", 0, U1], ["append", 1, None], ["update_last", REPLY]], True),
    "no_messages": ([], True),
    "assistant_open_first": ([["append", 1, None]], False),
}

API_MESSAGES = {
    "user": [{"role": "user", "content": U1}],
    "system_user": [{"role": "system", "content": SYS}, {"role": "user", "content": U1}],
    "multi": [{"role": "system", "content": SYS}, {"role": "user", "content": U1},
              {"role": "assistant", "content": A1}, {"role": "user", "content": U2}],
    "assistant_last": [{"role": "user", "content": U2}, {"role": "assistant", "content": A2}],
    "empty_system": [{"role": "system", "content": ""}, {"role": "user", "content": U3}],
}

# ---- model paths: real Hugging Face repo ids, local paths, odd casing,
# API model names, and the edge cases of each adapter's rule ----
ADAPTER_PATHS = [
    # Vicuna family, LongChat, T5, Koala, Alpaca
    "lmsys/vicuna-7b-v1.5", "lmsys/vicuna-13b-v1.5-16k", "lmsys/vicuna-33b-v1.3",
    "lmsys/vicuna-7b-delta-v0", "/models/vicuna-7b-v0/", "/models/v0-weights/vicuna-7b",
    "/data/VICUNA-13B", "TheBloke/stable-vicuna-13B-HF", "CarperAI/stable-vicuna-13b-delta",
    "lmsys/longchat-7b-16k", "lmsys/longchat-13b-16k", "lmsys/fastchat-t5-3b-v1.0",
    "google/flan-t5-xl", "Salesforce/codet5p-6b", "young-geng/koala", "chavinlo/alpaca-native",
    "tatsu-lab/alpaca-7b-wdiff",
    # Airoboros / Spicyboros / Bagel
    "jondurbin/airoboros-7b", "jondurbin/airoboros-l2-13b-2.2", "jondurbin/airoboros-l2-70b-2.1",
    "jondurbin/airoboros-l2-13b-3.1", "jondurbin/airoboros-34b-3.2", "jondurbin/airoboros-m-7b-3p0",
    "jondurbin/spicyboros-7b-2.2", "jondurbin/Airoboros-L2-13B-2.9", "jondurbin/airoboros-mpt-30b-gpt4-1p4-five-epochs",
    "jondurbin/bagel-dpo-34b-v0.2",
    # ChatGLM, CodeGeeX, Dolly, OpenAssistant, OpenChat, Starling, Tenyx, StableLM
    "THUDM/chatglm-6b", "THUDM/chatglm2-6b", "THUDM/chatglm3-6b", "THUDM/codegeex2-6b",
    "THUDM/codegeex4-all-9b", "databricks/dolly-v2-12b",
    "OpenAssistant/oasst-sft-4-pythia-12b-epoch-3.5", "OpenAssistant/oasst-sft-7-llama-30b",
    "OpenAssistant/openassistant-sft-7-llama-30b-hf", "openchat/openchat_3.5", "openchat/openchat-3.5-0106",
    "openchat/openchat_v3.2", "berkeley-nest/Starling-LM-7B-alpha", "tenyx/TenyxChat-7B-v1",
    "stabilityai/stablelm-tuned-alpha-7b", "stabilityai/stablelm-2-zephyr-1_6b",
    # Baize, RWKV, OpenBuddy, Phoenix, API names
    "project-baize/baize-v2-7b", "BlinkDL/rwkv-4-raven", "RWKV/rwkv-5-world-3b",
    "OpenBuddy/openbuddy-7b-v1.1-bf16-enc", "FreedomIntelligence/phoenix-inst-chat-7b",
    "bard", "palm-2", "gemini-pro", "gemini-1.5-pro-001", "Gemini-1.5-Pro", "bard-jan-24-gemini-pro",
    "google/gemma-7b-it", "google/gemma-2-9b-it", "google/codegemma-7b-it",
    "gpt-3.5-turbo", "gpt-4", "gpt-4-turbo", "gpt-4-turbo-browsing", "gpt-4-turbo-2024-04-09",
    "gpt2-chatbot", "im-a-good-gpt2-chatbot", "gpt-4o-2024-05-13", "gpt-4o-2024-08-06",
    "gpt-4o-mini-2024-07-18", "chatgpt-4o-latest", "chatgpt-4o-latest-20240903", "o1-preview",
    "o1-mini", "GPT-4", "/api/gpt-4", "gpt-4o", "azure-gpt-35-turbo", "azure-gpt-4",
    "claude-1", "claude-2.1", "claude-instant-1.2", "claude-3-haiku-20240307",
    "claude-3-sonnet-20240229-vertex", "claude-3-5-sonnet-20240620", "claude-3-opus-20240229",
    "claude-3-5-sonnet-20241022", "Claude-2",
    # MPT, BiLLa, RedPajama, h2oGPT, Robin, Snoozy, WizardLM, Manticore, Guanaco, Camel
    "mosaicml/mpt-7b-chat", "mosaicml/mpt-30b-chat", "mosaicml/mpt-30b-instruct", "mosaicml/mpt-7b",
    "Neutralzz/BiLLa-7B-SFT", "togethercomputer/RedPajama-INCITE-7B-Chat",
    "h2oai/h2ogpt-gm-oasst1-en-2048-falcon-7b-v3", "h2oai/h2ogpt-4096-llama2-7b-chat",
    "OptimalScale/robin-7b-v2-delta", "nomic-ai/gpt4all-13b-snoozy", "WizardLM/WizardLM-13B-V1.2",
    "WizardLM/WizardLM-7B-V1.0", "WizardLM/WizardLM-70B-V1.0", "openaccess-ai-collective/manticore-13b-chat-pyg",
    "timdettmers/guanaco-33b-merged", "camel-ai/CAMEL-13B-Combined-Data",
    # ChangGPT, Tulu, Falcon, TigerBot, Baichuan, XGen, Pythia, InternLM, StarChat
    "EleutherAI/polyglot-ko-12.8b-chang", "allenai/tulu-30b", "allenai/tulu-2-dpo-70b",
    "tiiuae/falcon-7b", "tiiuae/falcon-40b-instruct", "tiiuae/falcon-180B-chat",
    "TigerResearch/tigerbot-7b-sft", "baichuan-inc/Baichuan-13B-Chat", "baichuan-inc/Baichuan2-13B-Chat",
    "baichuan-inc/Baichuan-7B", "Salesforce/xgen-7b-8k-inst", "EleutherAI/pythia-1.4b",
    "internlm/internlm-chat-7b", "internlm/internlm2-chat-20b", "HuggingFaceH4/starchat-beta",
    # Llama 2 / 3 / 3.1 and relatives
    "meta-llama/Llama-2-7b-chat-hf", "meta-llama/Llama-2-70b-hf", "/mnt/models/llama-2-13b-chat/",
    "meta-llama/Meta-Llama-3-8B-Instruct", "meta-llama/Meta-Llama-3-70B", "meta-llama/Llama-3.1-8B-Instruct",
    "meta-llama/Meta-Llama-3.1-70B-Instruct", "llama-3.1-8b-instruct", "Llama-3.1-70B-Instruct",
    "the-real-chatbot-v2", "meta-llama/Llama-3.2-1B-Instruct", "meta-llama/Llama-3.3-70B-Instruct",
    "meta-llama/Llama-2-7b-chat-hf/../Meta-Llama-3-8B", "XueFuzhao/CuteGPT", "Open-Orca/Mistral-7B-OpenOrca",
    "Open-Orca/OpenOrca-Platypus2-13B", "ehartford/dolphin-2.2.1-mistral-7b", "cognitivecomputations/dolphin-2.9-llama3-8b",
    "teknium/OpenHermes-2.5-Mistral-7B", "teknium/OpenHermes-2-Mistral-7B",
    "NousResearch/Nous-Hermes-2-Mixtral-8x7B-DPO", "NousResearch/Nous-Hermes-2-Mixtral-8x7B-SFT",
    "NousResearch/Nous-Hermes-13b", "NousResearch/Nous-Hermes-Llama2-13b",
    "mistralai/Mistral-7B-Instruct-v0.2", "mistralai/Mixtral-8x7B-Instruct-v0.1",
    "mistralai/Mistral-Nemo-Instruct-2407", "WizardLM/WizardCoder-15B-V1.0", "WizardLMTeam/WizardCoder-Python-34B-V1.0",
    # Qwen, Aquila, BGE, E5, Chinese Llama, Vigogne, OpenLLaMA, ReaLM, Phind, CodeLlama
    "Qwen/Qwen-7B-Chat", "Qwen/Qwen2-7B-Instruct", "Qwen/Qwen2.5-0.5B-Instruct", "Qwen/QwQ-32B",
    "BAAI/AquilaChat-7B", "BAAI/AquilaChat2-7B", "BAAI/AquilaChat2-34B", "BAAI/AquilaChat2-7B-16K",
    "BAAI/AquilaChat2-34B-16K", "BAAI/bge-large-en-v1.5", "intfloat/e5-large-v2", "intfloat/multilingual-e5-base",
    "FlagAlpha/Llama2-Chinese-13b-Chat", "ziqingyang/chinese-alpaca-2-7b", "bofenghuang/vigogne-2-7b-instruct",
    "bofenghuang/vigogne-2-7b-chat", "bofenghuang/vigostral-7b-chat", "Vigogne/VIGOGNE-7B",
    "VMware/open-llama-7b-open-instruct", "ReaLM/ReaLM-7b-v1", "realm-7b", "Phind/Phind-CodeLlama-34B-v2",
    "codellama/CodeLlama-7b-Instruct-hf", "beomi/llama2-ko-chang",
    # Zephyr and friends, Xwin, Lemur, Pygmalion, Orca 2, xDAN, Yi, pplx, DeepSeek
    "HuggingFaceH4/zephyr-7b-beta", "argilla/notus-7b-v1", "rishiraj/CatPPT-base",
    "TinyLlama/TinyLlama-1.1B-Chat-v1.0", "Xwin-LM/Xwin-LM-13B-V0.2", "OpenLemur/lemur-70b-chat-v1",
    "PygmalionAI/pygmalion-2-7b", "Gryphe/MythoMax-L2-13b", "PygmalionAI/mythalion-13b", "PygmalionAI/metharme-1.3b",
    "microsoft/Orca-2-13b", "xDAN-AI/xDAN-L1-Chat-RL-v1", "01-ai/Yi-34B-Chat", "01-ai/Yi-6B",
    "pplx-7b-online", "pplx-70b-online", "deepseek-ai/deepseek-coder-33b-instruct",
    "deepseek-ai/deepseek-llm-67b-chat", "deepseek-ai/deepseek-llm-7b-base",
    # Yuan, MetaMath, Solar, SteerLM, LLaVA, OLMo, Cohere, DBRX, Yandex, CLLM, Reka, Smaug, Grok
    "IEITYuan/Yuan2-2B-hf", "IEITYuan/Yuan2.0-2B", "meta-math/MetaMath-7B-V1.0",
    "upstage/SOLAR-10.7B-Instruct-v1.0", "upstage/solar-pro-preview-instruct", "nvidia/Llama2-70B-SteerLM-Chat",
    "nvidia/steerlm-chat", "liuhaotian/llava-v1.5-7b", "liuhaotian/llava-v1.6-34b", "allenai/OLMo-7B-Instruct",
    "command-r", "Command-R", "CohereForAI/c4ai-command-r-v01", "dbrx-instruct", "databricks/dbrx-instruct",
    "yandexgpt", "cllm/consistency-llm-7b-sharegpt48k", "reka-flash", "abacusai/Smaug-72B-v0.1",
    "grok-2", "grok-2-mini", "xai-org/grok-1", "athene-70b", "Athene-70B", "p2l", "Nexusflow/Athene-70B",
    # the models this project runs, and paths nothing matches
    "HuggingFaceTB/SmolLM2-135M-Instruct", "HuggingFaceTB/SmolLM2-1.7B-Instruct",
    "/root/.cache/fastchat/models/SmolLM2-135M-Instruct.Q4_1.gguf", "microsoft/Phi-3-mini-4k-instruct",
    "microsoft/phi-2", "gpt2", "facebook/opt-125m", "bigscience/bloom-560m", "my-model", "",
    "/", ".", "..", "./models/", "models//llama-2-7b//", "//srv/weights", "///x/y",
    "/opt/models/../qwen-dir/weights", "/srv/llama-2/final", "/srv/LLAMA-2/checkpoint-100/",
    "/srv/Mistral/ckpt", "/srv/My-Vicuna-Finetune/ckpt", "checkpoints/run1/ckpt-500",
    # case and Unicode: the Kelvin sign lowercases to ASCII 'k' in str.lower()
    "young-geng/\u212aoala", "/models/\u0130nternlm", "models/Qwen\u00e9/Zephyr-\u00c9",
    # PEFT adapter folders (tests/data/conv/peft) and names
    "tests/data/conv/peft/my-adapter", "tests/data/conv/peft/llama-3-peft-lora",
    "tests/data/conv/peft/stacked-adapter", "tests/data/conv/peft/bad-base",
    "tests/data/conv/peft/my-adapter/",
]

# Words the adapters test for; random paths made of them (fixed seed) probe the
# registration order and the case rules beyond the hand-picked list.
KEYWORDS = [
    "peft", "stable-vicuna", "vicuna", "v0", "airoboros", "spicyboros", "-3.", "-3p", "-2.2", "-2.1",
    "longchat", "flan-", "fastchat-t5", "codet5p", "koala", "alpaca", "chatglm", "chatglm2", "chatglm3",
    "codegeex", "dolly-v2", "oasst", "pythia", "openassistant-sft-7-llama-30b-hf", "openchat", "3.5",
    "starling-lm", "tenyxchat", "stablelm", "baize", "rwkv-4", "openbuddy", "phoenix", "bard", "palm-2",
    "gemini", "gemini-1.5-pro", "gemma", "gpt-4", "mpt", "mpt-7b-chat", "mpt-30b-chat", "mpt-30b-instruct",
    "billa", "redpajama-incite", "h2ogpt", "robin", "gpt4all", "snoozy", "wizardlm", "13b", "30b", "70b",
    "manticore", "guanaco", "camel", "polyglot", "chang", "tulu", "falcon", "chat", "tigerbot", "baichuan",
    "baichuan2", "xgen", "internlm", "starchat", "llama-2", "cutegpt", "mistral-7b-openorca", "openorca",
    "dolphin", "mistral", "openhermes-2.5-mistral-7b", "nous-hermes-2-mixtral-8x7b-dpo", "nous-hermes",
    "mixtral", "wizardcoder", "qwen", "aquila", "aquilachat2", "16k", "34b", "bge", "e5-", "llama2-chinese",
    "chinese-alpaca", "vigogne", "vigostral", "open-llama", "open-instruct", "ReaLM", "realm",
    "phind-codellama-", "codellama", "llama2-ko-chang", "zephyr", "notus", "catppt", "tinyllama", "xwin-lm",
    "lemur-70b-chat", "pygmalion", "mythalion", "metharme", "orca-2", "xdan", "v1", "yi-", "deepseek-coder",
    "deepseek-llm", "yuan2", "metamath", "bagel", "solar-", "instruct", "steerlm-chat", "llava", "yuan",
    "olmo", "yandexgpt", "consistency-llm", "reka", "smaug", "llama-3-", "llama-3.1", "grok", "mini",
    "browsing", "o1", "claude-3-haiku", "model", "hf", "7B", "x",
]


def random_paths(n, seed=1234):
    import random
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = rng.sample(KEYWORDS, rng.randint(1, 3))
        name = rng.choice(["-", "_", "", "/"]).join(words)
        name = "".join(c.upper() if rng.random() < 0.2 else c for c in name)
        prefix = rng.choice(["", "", "org/", "/models/", "/models/" + rng.choice(KEYWORDS) + "/", "./"])
        suffix = rng.choice(["", "", "", "/", "-gguf"])
        out.append(prefix + name + suffix)
    return out


PEFT_FIXTURES = {
    # folder: base_model_name_or_path
    "my-adapter": "lmsys/vicuna-7b-v1.5",
    "llama-3-peft-lora": "meta-llama/Meta-Llama-3-8B-Instruct",
    "stacked-adapter": "tests/data/conv/peft/my-adapter",
    "bad-base": "someone/peft-base-model",
}


def jsonable(conv):
    """The Conversation as fastapi's jsonable_encoder sends it."""
    d = dataclasses.asdict(conv)
    d["sep_style"] = None if conv.sep_style is None else int(conv.sep_style)

    def fix(x):
        if isinstance(x, (list, tuple)):
            return [fix(v) for v in x]
        return x

    return {k: fix(v) for k, v in d.items()}


def stop_list(conv):
    s = conv.stop_str
    return [] if s is None else [s] if isinstance(s, str) else list(s)


def replay(convmod, name, ops):
    conv = convmod.get_conv_template(name)
    for op in ops:
        if op[0] == "system":
            conv.set_system_message(op[1])
        elif op[0] == "append":
            conv.append_message(conv.roles[op[1]], op[2])
        elif op[0] == "update_last":
            conv.update_last_message(op[1])
    return conv


def api_prompt(convmod, name, messages):
    """openai_api_server.get_gen_params, without the HTTP round trips."""
    c = json.loads(json.dumps(jsonable(convmod.get_conv_template(name))))
    conv = convmod.Conversation(
        name=c["name"], system_template=c["system_template"], system_message=c["system_message"],
        roles=c["roles"], messages=list(c["messages"]), offset=c["offset"],
        sep_style=convmod.SeparatorStyle(c["sep_style"]), sep=c["sep"], sep2=c["sep2"],
        stop_str=c["stop_str"], stop_token_ids=c["stop_token_ids"],
    )
    for m in messages:
        if m["role"] == "system":
            conv.set_system_message(m["content"])
        elif m["role"] == "user":
            conv.append_message(conv.roles[0], m["content"])
        elif m["role"] == "assistant":
            conv.append_message(conv.roles[1], m["content"])
    conv.append_message(conv.roles[1], None)
    stops = set()
    for s in ([conv.stop_str] if isinstance(conv.stop_str, str) else conv.stop_str or []):
        stops.add(s)
    return conv.get_prompt(), sorted(stops), conv.stop_token_ids


def main():
    convmod = load_fastchat()
    os.chdir(ROOT)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a PEFT name without a folder must fail fast

    # transformers 5 dropped this module; FastChat imports it at import time only.
    stub = types.ModuleType("transformers.modeling_attn_mask_utils")
    stub._prepare_4d_causal_attention_mask = None
    sys.modules.setdefault("transformers.modeling_attn_mask_utils", stub)
    import warnings
    warnings.filterwarnings("ignore")
    from fastchat.model import model_adapter

    for folder, base in PEFT_FIXTURES.items():
        d = os.path.join(OUT_DIR, "peft", folder)
        os.makedirs(d, exist_ok=True)
        cfg = {"base_model_name_or_path": base, "peft_type": "LORA", "task_type": "CAUSAL_LM",
               "r": 8, "lora_alpha": 16, "lora_dropout": 0.05, "target_modules": ["q_proj", "v_proj"]}
        with open(os.path.join(d, "adapter_config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
            f.write("\n")

    templates = [{"name": n, "json": jsonable(c)} for n, c in convmod.conv_templates.items()]

    cases = []
    n_raise = 0
    for name in convmod.conv_templates:
        for shape, (ops, with_openai) in SHAPES.items():
            conv = replay(convmod, name, ops)
            try:
                prompt = conv.get_prompt()
            except Exception:
                prompt = None
                n_raise += 1
            case = {"template": name, "shape": shape, "ops": ops, "prompt": prompt,
                    "stop_str": stop_list(conv), "stop_token_ids": conv.stop_token_ids or []}
            if with_openai:
                case["openai"] = conv.to_openai_api_messages()
            cases.append(case)

    api_cases = []
    for name in convmod.conv_templates:
        if convmod.conv_templates[name].sep_style is None:
            continue
        for key, msgs in API_MESSAGES.items():
            prompt, stops, ids = api_prompt(convmod, name, msgs)
            api_cases.append({"template": name, "name": key, "messages": msgs, "prompt": prompt,
                              "stop": stops, "stop_token_ids": ids})

    adapters = []
    seen = set()
    for path in ADAPTER_PATHS + random_paths(400):
        if path in seen:
            continue
        seen.add(path)
        try:
            adapter = type(model_adapter.get_model_adapter(path)).__name__
        except Exception:
            adapter = None
        try:
            tmpl = model_adapter.get_conversation_template(path).name
        except Exception:
            tmpl = None
        adapters.append({"path": path, "template": tmpl, "adapter": adapter})

    out = {
        "generator": "tools/golden/make_conv_golden.py",
        "fastchat": f"fschat 0.2.36, lm-sys/FastChat @ {FASTCHAT_COMMIT}",
        "templates": templates,
        "cases": cases,
        "api_cases": api_cases,
        "adapters": adapters,
    }
    path = os.path.join(OUT_DIR, "golden.json")
    with open(path, "w", encoding="utf-8") as f:  # one list entry per line: small, diffable
        f.write("{\n")
        for i, (k, v) in enumerate(out.items()):
            f.write(f"{json.dumps(k)}: ")
            if isinstance(v, list):
                f.write("[\n" + ",\n".join(json.dumps(x, ensure_ascii=False, separators=(",", ":")) for x in v) + "\n]")
            else:
                f.write(json.dumps(v, ensure_ascii=False))
            f.write(",\n" if i + 1 < len(out) else "\n")
        f.write("}\n")
    print(f"wrote {path}: {len(templates)} templates, {len(cases)} cases ({n_raise} where FastChat raises), "
          f"{len(api_cases)} api cases, {len(adapters)} adapter paths")


if __name__ == "__main__":
    main()
