"""Reference ids for a GGUF gpt2/smollm vocabulary from Hugging Face `tokenizers`.

Usage: hf_tokenizer_from_gguf.py MODEL.gguf TEXTS.json  -> prints a JSON list of id lists.
Builds a BPE model from the GGUF's tokens and merges (byte-level, no unk), with the pre-tokenizer
llama.cpp uses for `tokenizer.ggml.pre = smollm`: each \\p{N} isolated, then the GPT-2 regex
(ByteLevel use_regex, no prefix space). No added tokens, so special-token text stays text
(llama_tokenize's parse_special = false). ignore_merges = False, as llama.cpp for smollm.
"""
import json
import sys

from gguf import GGUFReader
from tokenizers import Regex, Tokenizer, models, pre_tokenizers


def strings(r, key):
    f = r.fields[key]
    return [bytes(f.parts[i]).decode("utf-8") for i in f.data]


def main():
    r = GGUFReader(sys.argv[1])
    pre = bytes(r.fields["tokenizer.ggml.pre"].parts[-1]).decode()
    assert pre == "smollm", f"this reference implements the smollm pre-tokenizer only, not {pre!r}"
    tokens = strings(r, "tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ", 1)) for m in strings(r, "tokenizer.ggml.merges")]
    vocab = {t: i for i, t in enumerate(tokens)}
    bpe = models.BPE(vocab=vocab, merges=merges, ignore_merges=False, fuse_unk=False)
    tok = Tokenizer(bpe)
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\p{N}"), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    texts = json.load(open(sys.argv[2]))
    enc = tok.encode_batch(texts, add_special_tokens=False)
    print(json.dumps([e.ids for e in enc]))


if __name__ == "__main__":
    main()
