#!/usr/bin/env python3
"""Reference outputs of Whisper's text normalizers for test/fixtures/normalizer-cases.json (developers only).

    python3 tools/reference/make_normalizer_fixture.py ../shared/data

Runs OpenAI's EnglishTextNormalizer (openai-whisper) with the spelling map of the model's
normalizer.json (what Hugging Face's pipeline uses), and BasicTextNormalizer, on hand-written
strings, generated spelled-out numbers and real LibriSpeech transcripts. Hugging Face's copy of
the normalizer is run too, and any disagreement with OpenAI's is recorded.
"""
import json
import random
import sys
from pathlib import Path

from whisper.normalizers import BasicTextNormalizer, EnglishTextNormalizer

HAND = [
    # numbers, ordinals, decimals
    "one", "ones", "two and a half", "one and a half million", "three hundred and twenty one",
    "nineteen sixty", "nineteen sixties", "the nineteen eighties", "twenty first century", "the 21st century",
    "one oh one", "double oh seven", "triple five", "zero point five", "point five", "two point oh",
    "seven point three four", "a hundred", "a thousand and one nights", "one thousand nine hundred eighty four",
    "twelve thousand", "two million three hundred thousand", "1,000,000 people", "10,000", "3.14",
    "version 2.0.1", "192.168.0.1", "the 3rd of may", "his 42nd birthday", "twentieth", "thirtieth", "the hundredth time",
    "millions of stars", "hundreds of people", "two hundreds", "fifth", "twelfth night", "eighth", "ninth", "first and second",
    "minus five degrees", "negative two", "plus one", "positive thinking", "1960s", "the '60s", "sixes and sevens",
    "seventy sevens", "fourteen", "forty four", "sixty six", "ninety nine bottles", "eleven", "oh no", "o", "zero",
    "one two three four", "four five six", "twenty twenty two", "two thousand and twenty", "quadrillion", "two decillion",
    "three quintillions", "the billionth", "one million dollars", "a million", "point", "and", "double", "triple",
    # currencies and percents
    "$20 million", "twenty dollars", "twenty dollars and fifty cents", "$2 and 7 cents", "£5", "five pounds", "€3.50",
    "three euros", "fifty cents", "one cent", "a dollar", "10%", "ten percent", "ten per cent", "per cent", "5 percent",
    "$0.25", "0.5%", "the price is $1,299.99", "it costs ¢50", "one pound ten",
    # abbreviations and titles
    "Mr. Smith", "Mrs. Jones", "Dr. Who", "St. Louis", "Prof. X", "Capt. Hook", "Gov. Brown", "Gen. Lee", "Sen. Warren",
    "Rep. Lewis", "Pres. Lincoln", "Rev. King", "Hon. member", "Asst. manager", "Assoc. professor", "Lt. Dan", "Col. Mustard",
    "John Smith Jr.", "Sr. Garcia", "Esq.", "mr smith", "MR. SMITH", "st louis blues",
    # contractions and apostrophes
    "won't", "can't", "let's go", "ain't", "y'all", "wanna", "gotta", "gonna", "i'ma", "imma", "woulda", "coulda",
    "shoulda", "ma'am", "I'd been there", "she's been", "he'd gone", "it's gone", "we'd done it", "he's got it",
    "don't", "you're", "it's", "I'd", "we'll", "can't won't shouldn't", "I've", "I'm", "the dog 's bone", "rock 'n' roll",
    "'tis", "o'clock", "the boys' toys", "James's", "'quoted'", "don ' t",
    # hyphens, brackets, parentheses, fillers
    "well-known", "twenty-one", "forty-two", "co-operate", "e-mail", "state-of-the-art", "[laughs] hello", "<unk> word",
    "hello (inaudible) world", "(applause)", "um hello", "uh, well, hmm", "mm hmm", "mhm", "mmm good", "umbrella",
    # spelling (British -> American)
    "colour", "favourite colours", "organise", "organisation", "centre", "theatre", "travelling", "defence", "aluminium",
    "grey", "programme", "catalogue", "analyse", "behaviour", "neighbour", "honour", "humour", "labour", "licence",
    # accents, symbols, unicode
    "café", "naïve", "résumé", "Zürich", "São Paulo", "Ångström", "œuvre", "straße", "Łódź", "Þór", "fiancée",
    "ﬁne ligature", "½ cup", "x²", "①", "— dash", "“quotes”", "‘single’", "hello…", "tab\there", "new\nline",
    "  leading and trailing  ", "", "!!!", "a.b.c", "U.S.A.", "e.g. this", "i.e.", "etc.", "3 p.m.", "5 a.m.",
    "ALL CAPS SENTENCE", "Mixed Case", "hello, world!", "what?!", "semi;colon", "colon: here", "slash/or", "back\\slash",
    "#hashtag", "@mention", "under_score", "100km", "5kg", "the 1st and 2nd", "3d", "mp3", "4x4", "a1 b2 c3",
]

ONES = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
        "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
EXTRA = ["hundred", "thousand", "million", "and", "point", "oh", "dollars", "cents", "percent", "first", "second",
         "twentieth", "hundredth", "thousands", "double", "minus", "a", "the", "half", "pounds"]


def generated(n: int, seed: int = 1) -> list:
    rng = random.Random(seed)
    vocab = ONES + TENS + EXTRA
    return [" ".join(rng.choice(vocab) for _ in range(rng.randint(1, 7))) for _ in range(n)]


def librispeech(shared: Path, n: int) -> list:
    lines = []
    for split in ["test-clean", "train-clean-5"]:
        for f in sorted((shared / "librispeech" / "LibriSpeech" / split).rglob("*.trans.txt")):
            for line in f.read_text().splitlines():
                lines.append(line.split(" ", 1)[1])
    return lines[:n]


def main(shared: str = "../shared/data", out: str = "test/fixtures/normalizer-cases.json") -> None:
    shared_path = Path(shared)
    mapping = json.loads((shared_path / "whisper-assets" / "whisper-tiny.en" / "normalizer.json").read_text())
    english = EnglishTextNormalizer()
    english.standardize_spellings.mapping = mapping  # the model's map, as Hugging Face's pipeline uses
    basic = BasicTextNormalizer()
    basic_diacritics = BasicTextNormalizer(remove_diacritics=True)
    try:
        from transformers.models.whisper.english_normalizer import EnglishTextNormalizer as HfNormalizer

        hf = HfNormalizer(mapping)
    except Exception:
        hf = None

    inputs = HAND + generated(120) + librispeech(shared_path, 120)
    cases, hf_disagreements = [], 0
    for s in inputs:
        e = english(s)
        if hf is not None and hf(s) != e:
            hf_disagreements += 1
        cases.append({"input": s, "english": e, "basic": basic(s), "basic_remove_diacritics": basic_diacritics(s)})
    meta = {
        "reference": "openai-whisper normalizers (EnglishTextNormalizer with the model's normalizer.json; BasicTextNormalizer)",
        "cases": len(cases),
        "huggingface_disagreements": hf_disagreements if hf is not None else "transformers not installed",
    }
    Path(out).write_text(json.dumps({"meta": meta, "cases": cases}, ensure_ascii=False, indent=0) + "\n")
    print(json.dumps(meta))


if __name__ == "__main__":
    main(*sys.argv[1:])
