"""An independent Python re-implementation of llama2.c run.c `encode()` (bos=0, eos=0).

Usage: llama2c_encode.py TOKENIZER.bin VOCAB_SIZE TEXTS.json  -> prints a JSON list of id lists.
"""
import json
import struct
import sys


def load(path, n):
    data = open(path, "rb").read()
    (max_len,) = struct.unpack_from("<i", data, 0)
    off, vocab, scores = 4, [], []
    for _ in range(n):
        score, ln = struct.unpack_from("<fi", data, off)
        off += 8
        vocab.append(data[off:off + ln])
        off += ln
        scores.append(score)
    return vocab, scores


def encode(text, vocab, scores, lookup):
    raw = text.encode("utf-8")
    tokens = []
    if raw:
        tokens.append(lookup[b" "])
    i = 0
    while i < len(raw):
        j = i + 1
        while j < len(raw) and (raw[j] & 0xC0) == 0x80 and j - i < 4:
            j += 1
        piece = raw[i:j]
        if piece in lookup:
            tokens.append(lookup[piece])
        else:
            tokens.extend(b + 3 for b in piece)
        i = j
    while True:
        best, best_id, best_idx = -1e10, -1, -1
        for k in range(len(tokens) - 1):
            cat = vocab[tokens[k]] + vocab[tokens[k + 1]]
            tid = lookup.get(cat)
            if tid is not None and scores[tid] > best:
                best, best_id, best_idx = scores[tid], tid, k
        if best_idx == -1:
            break
        tokens[best_idx:best_idx + 2] = [best_id]
    return tokens


def main():
    vocab, scores = load(sys.argv[1], int(sys.argv[2]))
    lookup = {}
    for i, v in enumerate(vocab):
        lookup.setdefault(v, i)
    texts = json.load(open(sys.argv[3]))
    print(json.dumps([encode(t, vocab, scores, lookup) for t in texts]))


if __name__ == "__main__":
    main()
