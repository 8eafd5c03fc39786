#!/usr/bin/env python3
"""Reference token ids and decoded texts for test/fixtures/tokenizer.json (developers only).

    python3 tools/reference/make_tokenizer_fixture.py ../shared/data/whisper-assets/whisper-tiny.en

Encodes varied sentences with Hugging Face's WhisperTokenizer, then records decode() with
special tokens skipped, both raw and with clean_up_tokenization_spaces (transformers 4.x applied
it to Whisper, as tokenizer_config.json asks; transformers 5 refuses it for BPE).
"""
import json
import sys

from transformers import WhisperTokenizer

SENTENCES = [
    " Hello world, it's a test. Don't stop!",
    " He hoped there would be stew for dinner, turnips and carrots and bruised potatoes.",
    " café naïve résumé — 10$ and 5 € ok?",
    " Mr. Smith's 3rd-quarter results: +12.5% (vs. 1,000,000).",
    " 東京 and Zürich; emoji 🙂 split across byte tokens",
    " I'm, you're, we've, they'll, isn't",
    "  double  spaces and\ttabs\nnewline",
    " wait , what ? yes . I do n't know !",
]


def main(assets: str, out: str = "test/fixtures/tokenizer.json") -> None:
    tok = WhisperTokenizer.from_pretrained(assets)
    sot = tok.convert_tokens_to_ids("<|startoftranscript|>")
    nots = tok.convert_tokens_to_ids("<|notimestamps|>")
    eot = tok.convert_tokens_to_ids("<|endoftext|>")
    cases = []
    for s in SENTENCES:
        ids = [sot, nots] + tok.encode(s, add_special_tokens=False) + [eot]
        cases.append({
            "ids": ids,
            "text": tok.decode(ids, skip_special_tokens=True),
            "text_with_special": tok.decode(ids, skip_special_tokens=False),
            "text_cleaned": tok.clean_up_tokenization(tok.decode(ids, skip_special_tokens=True)),
        })
    # timestamp tokens (ids above <|notimestamps|>) are stripped by skip_special_tokens
    cases.append({"ids": [sot, nots, nots + 1, 1374, nots + 2, eot], "text": " How", "text_cleaned": " How"})
    with open(out, "w") as f:
        json.dump({"source": assets.rstrip("/").split("/")[-1], "cases": cases}, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {len(cases)} cases to {out}")


if __name__ == "__main__":
    main(*sys.argv[1:])
