"""Reference pre-tokenizer splits (llama.cpp's regex lists per `tokenizer.ggml.pre` family) with
Hugging Face `tokenizers` Split pre-tokenizers (Oniguruma regexes, matches and gaps both kept).

Usage: pretokenize_reference.py FAMILY TEXTS.json -> prints, per text, a JSON list of [start, end)
code-point offsets. FAMILY: gpt2, smollm, llama3, qwen2, default.
"""
import json
import sys

from tokenizers import Regex, pre_tokenizers

GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
LLAMA3 = (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
          r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2 = LLAMA3.replace(r"\p{N}{1,3}", r"\p{N}")
FAMILIES = {
    "gpt2": [GPT2],
    "smollm": [r"\p{N}", GPT2],
    "llama3": [LLAMA3],
    "qwen2": [QWEN2],
    "default": [r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"],
}


def main():
    regexes = FAMILIES[sys.argv[1]]
    pre = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(r), behavior="isolated") for r in regexes])
    texts = json.load(open(sys.argv[2]))
    out = []
    for t in texts:
        # HF offsets are in bytes of the normalized string for some versions; convert via the pieces.
        pieces = pre.pre_tokenize_str(t)
        spans, pos = [], 0
        for piece, _ in pieces:
            n = len(piece)
            spans.append([pos, pos + n])
            pos += n
        assert pos == len(t), (t[:50], pos, len(t))
        out.append(spans)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
