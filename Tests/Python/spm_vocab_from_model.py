"""GGUF-style tokenizer metadata (tokenizer.ggml.model = "llama") from a sentencepiece .model,
as llama.cpp's convert_hf_to_gguf does for SentencePiece vocabularies; and sentencepiece's own ids.

Usage: spm_vocab_from_model.py vocab  TOKENIZER.model OUT.json
       spm_vocab_from_model.py encode TOKENIZER.model TEXTS.json   -> prints a JSON list of id lists
Needs `pip install sentencepiece`.
"""
import json
import sys

import sentencepiece as spm

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


def main():
    mode, model = sys.argv[1], sys.argv[2]
    sp = spm.SentencePieceProcessor(model_file=model)
    if mode == "encode":
        texts = json.load(open(sys.argv[3]))
        print(json.dumps([sp.encode(t) for t in texts]))
        return
    tokens, scores, types = [], [], []
    for i in range(sp.vocab_size()):
        tokens.append(sp.id_to_piece(i))
        scores.append(sp.get_score(i))
        t = NORMAL
        if sp.is_unknown(i):
            t = UNKNOWN
        elif sp.is_control(i):
            t = CONTROL
        elif sp.is_unused(i):
            t = UNUSED
        elif sp.is_byte(i):
            t = BYTE
        types.append(t)
    values = {
        "tokenizer.ggml.model": {"type": "string", "value": "llama"},
        "tokenizer.ggml.tokens": {"type": "array", "elem": "string", "value": tokens},
        "tokenizer.ggml.scores": {"type": "array", "elem": "float32", "value": scores},
        "tokenizer.ggml.token_type": {"type": "array", "elem": "int32", "value": types},
        "tokenizer.ggml.bos_token_id": {"type": "uint32", "value": sp.bos_id()},
        "tokenizer.ggml.eos_token_id": {"type": "uint32", "value": sp.eos_id()},
        "tokenizer.ggml.unknown_token_id": {"type": "uint32", "value": sp.unk_id()},
    }
    with open(sys.argv[3], "w") as fh:
        json.dump({"keys": list(values), "values": values}, fh)


if __name__ == "__main__":
    main()
