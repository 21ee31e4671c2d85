"""A stand-in for the `transformers` module, used only by tests/py/test_data_tools.py
to run FastChat's data scripts (split_long_conversation, get_stats,
convert_alpaca import transformers at the top) without installing transformers
and torch.

AutoTokenizer.from_pretrained(path) accepts the default model's GGUF file and
returns the Hugging Face *fast* tokenizer of SmolLM2 built with the
`tokenizers` package from the GGUF's vocabulary and merges (the same
construction as tools/golden/make_tokenizer_golden.py): tokenizer(text)
.input_ids and tokenizer.tokenize(text) behave as transformers' do for that
tokenizer. The scripts' own code runs unchanged around it.
"""
from types import SimpleNamespace

SMOLLM2_SPECIALS = 17


def _smollm2(gguf_path):
    from gguf import GGUFReader
    from tokenizers import Tokenizer, AddedToken, decoders, models, pre_tokenizers, processors

    r = GGUFReader(gguf_path)

    def arr(key):
        f = r.fields[key]
        return [bytes(f.parts[i]).decode("utf-8") for i in f.data]

    tokens = arr("tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ")) for m in arr("tokenizer.ggml.merges")]
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel(add_prefix_space=True, trim_offsets=True, use_regex=True)
    tok.post_processor = processors.ByteLevel(add_prefix_space=True, trim_offsets=False,
                                              use_regex=True)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t in tokens[:SMOLLM2_SPECIALS]])
    return tok


class _Tok:
    def __init__(self, tok):
        self.tok = tok

    def __call__(self, text):
        return SimpleNamespace(input_ids=self.tok.encode(text, add_special_tokens=True).ids)

    def tokenize(self, text):
        return self.tok.encode(text, add_special_tokens=False).tokens


class AutoTokenizer:
    @staticmethod
    def from_pretrained(path, **kwargs):
        return _Tok(_smollm2(str(path)))


class AutoModelForCausalLM:  # imported by convert_alpaca / get_stats, never used
    pass
