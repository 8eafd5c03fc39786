/**
 * Whisper's text normalizers (openai/whisper normalizers/basic.py and english.py; Hugging Face's
 * english_normalizer.py is the same code), ported to TypeScript with Python's semantics kept:
 * Unicode-aware \b \d \s \w, unbounded integers (BigInt), exact fractions, `str(value or "")`.
 * The study normalized references and hypotheses with EnglishTextNormalizer before WER.
 */
import { join } from "node:path";
import { readJson, exists } from "../util/fs.js";
import { KitError } from "../util/errors.js";

// Python's str-pattern character classes, for JavaScript regexes with the u flag.
const W = "[\\p{L}\\p{N}_]"; // \w: str.isalnum() or "_"
const B = `(?:(?<=${W})(?!${W})|(?<!${W})(?=${W}))`; // \b
const D = "\\p{Nd}"; // \d
const S = "[\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"; // \s, str.isspace()
const re = (source: string) => new RegExp(source, "gu");
const SPACE_RUN = re(`${S}+`);

/** str.split() with no argument: split on whitespace runs, dropping empty strings. */
export function pySplit(s: string): string[] {
  return s.split(SPACE_RUN).filter((w) => w.length > 0);
}

// Non-ASCII letters that NFKD does not decompose (basic.py).
const ADDITIONAL_DIACRITICS: Record<string, string> = {
  œ: "oe",
  Œ: "OE",
  ø: "o",
  Ø: "O",
  æ: "ae",
  Æ: "AE",
  ß: "ss",
  ẞ: "SS",
  đ: "d",
  Đ: "D",
  ð: "d",
  Ð: "D",
  þ: "th",
  Þ: "th",
  ł: "l",
  Ł: "L",
};
const MARK_SYMBOL_PUNCT = /^[\p{M}\p{S}\p{P}]$/u;
const NONSPACING_MARK = /^\p{Mn}$/u;

/** Symbols, marks and punctuation become spaces; diacritics are dropped (after NFKD). */
export function removeSymbolsAndDiacritics(s: string, keep = ""): string {
  let out = "";
  for (const c of s.normalize("NFKD")) {
    if (keep.includes(c)) out += c;
    else if (c in ADDITIONAL_DIACRITICS) out += ADDITIONAL_DIACRITICS[c];
    else if (NONSPACING_MARK.test(c)) continue;
    else out += MARK_SYMBOL_PUNCT.test(c) ? " " : c;
  }
  return out;
}

/** Symbols, marks and punctuation become spaces, diacritics kept (after NFKC). */
export function removeSymbols(s: string): string {
  let out = "";
  for (const c of s.normalize("NFKC")) out += MARK_SYMBOL_PUNCT.test(c) ? " " : c;
  return out;
}

const BRACKETS = /[<[][^>\]]*[>\]]/gu;
const PARENTHESES = /\(([^)]+?)\)/gu;

export class BasicTextNormalizer {
  constructor(
    readonly removeDiacritics = false,
    readonly splitLetters = false,
  ) {}

  normalize(input: string): string {
    let s = input.toLowerCase();
    s = s.replace(BRACKETS, "").replace(PARENTHESES, "");
    s = (this.removeDiacritics ? removeSymbolsAndDiacritics(s) : removeSymbols(s)).toLowerCase();
    if (this.splitLetters) {
      const segmenter = new Intl.Segmenter(undefined, { granularity: "grapheme" });
      s = [...segmenter.segment(s)].map((g) => g.segment).join(" ");
    }
    return s.replace(SPACE_RUN, " ");
  }
}

// ---------------------------------------------------------------------------------------------
// Exact rationals, enough of Python's fractions.Fraction for the number normalizer.

interface Fraction {
  num: bigint;
  den: bigint;
}

function gcd(a: bigint, b: bigint): bigint {
  a = a < 0n ? -a : a;
  b = b < 0n ? -b : b;
  while (b) [a, b] = [b, a % b];
  return a;
}

/** The value of a Unicode decimal digit (\p{Nd} comes in aligned runs of ten). */
function digitValue(c: string): number {
  const cp = c.codePointAt(0)!;
  let start = cp;
  while (/\p{Nd}/u.test(String.fromCodePoint(start - 1))) start--;
  return (cp - start) % 10;
}

function digitsToBigInt(digits: string): bigint {
  let v = 0n;
  for (const c of digits) if (c !== "_") v = v * 10n + BigInt(digitValue(c));
  return v;
}

const FRACTION = re(
  `^${S}*([-+]?)(?=${D}|\\.${D})(${D}*|${D}+(?:_${D}+)*)(?:(?:/(${D}+(?:_${D}+)*))?|(?:\\.(${D}*|${D}+(?:_${D}+)*))?(?:[eE]([-+]?${D}+(?:_${D}+)*))?)${S}*$`,
);

/** Fraction(s), or null where Python raises ValueError. */
export function toFraction(s: string): Fraction | null {
  FRACTION.lastIndex = 0;
  const m = FRACTION.exec(s);
  if (!m) return null;
  const [, sign, whole, denom, decimal, exp] = m;
  let num = digitsToBigInt(whole ?? "");
  let den = 1n;
  if (denom !== undefined) {
    den = digitsToBigInt(denom);
    if (den === 0n) return null;
  } else {
    if (decimal !== undefined) {
      const scale = 10n ** BigInt(decimal.replaceAll("_", "").length);
      num = num * scale + digitsToBigInt(decimal);
      den *= scale;
    }
    if (exp !== undefined) {
      const e = Number(exp.replace(/^[-+]/, "").replaceAll("_", "")) * (exp.startsWith("-") ? -1 : 1);
      if (e >= 0) num *= 10n ** BigInt(e);
      else den *= 10n ** BigInt(-e);
    }
  }
  if (sign === "-") num = -num;
  const g = gcd(num, den) || 1n;
  return { num: num / g, den: den / g };
}

// ---------------------------------------------------------------------------------------------
// EnglishNumberNormalizer

const ONES_NAMES = [
  "one",
  "two",
  "three",
  "four",
  "five",
  "six",
  "seven",
  "eight",
  "nine",
  "ten",
  "eleven",
  "twelve",
  "thirteen",
  "fourteen",
  "fifteen",
  "sixteen",
  "seventeen",
  "eighteen",
  "nineteen",
];
const ZEROS = new Set(["o", "oh", "zero"]);
const ONES = new Map(ONES_NAMES.map((name, i) => [name, i + 1]));
const ONES_PLURAL = new Map(ONES_NAMES.map((name, i) => [name === "six" ? "sixes" : `${name}s`, [i + 1, "s"] as const]));
const ONES_ORDINAL = new Map<string, readonly [number, string]>([
  ["zeroth", [0, "th"]],
  ["first", [1, "st"]],
  ["second", [2, "nd"]],
  ["third", [3, "rd"]],
  ["fifth", [5, "th"]],
  ["twelfth", [12, "th"]],
  ...ONES_NAMES.map((name, i) => [name, i + 1] as const)
    .filter(([, v]) => v > 3 && v !== 5 && v !== 12)
    .map(([name, v]) => [name + (name.endsWith("t") ? "h" : "th"), [v, "th"] as const] as const),
]);
const ONES_SUFFIXED = new Map([...ONES_PLURAL, ...ONES_ORDINAL]);
const TENS = new Map([
  ["twenty", 20],
  ["thirty", 30],
  ["forty", 40],
  ["fifty", 50],
  ["sixty", 60],
  ["seventy", 70],
  ["eighty", 80],
  ["ninety", 90],
]);
const TENS_SUFFIXED = new Map<string, readonly [number, string]>([
  ...[...TENS].map(([name, v]) => [name.replaceAll("y", "ies"), [v, "s"] as const] as const),
  ...[...TENS].map(([name, v]) => [name.replaceAll("y", "ieth"), [v, "th"] as const] as const),
]);
const MULTIPLIER_NAMES = [
  "hundred",
  "thousand",
  "million",
  "billion",
  "trillion",
  "quadrillion",
  "quintillion",
  "sextillion",
  "septillion",
  "octillion",
  "nonillion",
  "decillion",
];
const MULTIPLIERS = new Map(MULTIPLIER_NAMES.map((name, i) => [name, i === 0 ? 100n : 10n ** BigInt(3 * i)]));
const MULTIPLIERS_SUFFIXED = new Map<string, readonly [bigint, string]>([
  ...[...MULTIPLIERS].map(([name, v]) => [`${name}s`, [v, "s"] as const] as const),
  ...[...MULTIPLIERS].map(([name, v]) => [`${name}th`, [v, "th"] as const] as const),
]);
const DECIMALS = new Set([...ONES.keys(), ...TENS.keys(), ...ZEROS]);
const PRECEDING_PREFIXERS = new Map([
  ["minus", "-"],
  ["negative", "-"],
  ["plus", "+"],
  ["positive", "+"],
]);
const FOLLOWING_PREFIXERS = new Map([
  ["pound", "£"],
  ["pounds", "£"],
  ["euro", "€"],
  ["euros", "€"],
  ["dollar", "$"],
  ["dollars", "$"],
  ["cent", "¢"],
  ["cents", "¢"],
]);
const PREFIXES = new Set([...PRECEDING_PREFIXERS.values(), ...FOLLOWING_PREFIXERS.values()]);
const SUFFIXERS = new Map<string, string | Map<string, string>>([
  ["per", new Map([["cent", "%"]])],
  ["percent", "%"],
]);
const SPECIALS = new Set(["and", "double", "triple", "point"]);
const WORDS = new Set<string>([
  ...ZEROS,
  ...ONES.keys(),
  ...ONES_SUFFIXED.keys(),
  ...TENS.keys(),
  ...TENS_SUFFIXED.keys(),
  ...MULTIPLIERS.keys(),
  ...MULTIPLIERS_SUFFIXED.keys(),
  ...PRECEDING_PREFIXERS.keys(),
  ...FOLLOWING_PREFIXERS.keys(),
  ...SUFFIXERS.keys(),
  ...SPECIALS,
]);
const NUMERIC = re(`^${D}+(?:\\.${D}+)?$`);
const isNumeric = (s: string | null) => {
  if (s === null) return false;
  NUMERIC.lastIndex = 0;
  return NUMERIC.test(s);
};

/** Python int or str, as the normalizer's running `value` is. */
type Value = bigint | string | null;
const pyStr = (v: bigint | string) => String(v);
const falsy = (v: Value) => v === null || v === "" || v === 0n;
const floorDiv = (a: bigint, b: bigint) => (a >= 0n ? a / b : -((-a + b - 1n) / b));
const pyMod = (a: bigint, b: bigint) => ((a % b) + b) % b;

export class EnglishNumberNormalizer {
  *processWords(words: string[]): Generator<string> {
    let prefix: string | null = null;
    let value: Value = null;
    let skip = false;
    const output = (result: bigint | string): string => {
      let text = pyStr(result);
      if (prefix !== null) text = prefix + text;
      value = null;
      prefix = null;
      return text;
    };
    if (words.length === 0) return;
    const padded: Array<string | null> = [null, ...words, null];
    for (let i = 1; i < padded.length - 1; i++) {
      const prev = padded[i - 1]!;
      const current = padded[i]!;
      const next = padded[i + 1]!;
      if (skip) {
        skip = false;
        continue;
      }
      const nextIsNumeric = isNumeric(next);
      const first = [...current][0]!;
      const hasPrefix = PREFIXES.has(first);
      const currentWithoutPrefix = hasPrefix ? current.slice(first.length) : current;
      if (isNumeric(currentWithoutPrefix)) {
        // arabic numbers (potentially with signs and fractions)
        const f = toFraction(currentWithoutPrefix)!;
        if (value !== null) {
          if (typeof value === "string" && value.endsWith(".")) {
            value = value + current; // concatenate decimals / ip address components
            continue;
          }
          yield output(value);
        }
        prefix = hasPrefix ? first : prefix;
        value = f.den === 1n ? f.num : currentWithoutPrefix;
      } else if (!WORDS.has(current)) {
        if (value !== null) yield output(value);
        yield output(current);
      } else if (ZEROS.has(current)) {
        value = `${falsy(value) ? "" : pyStr(value!)}0`;
      } else if (ONES.has(current)) {
        const ones = ONES.get(current)!;
        if (value === null) value = BigInt(ones);
        else if (typeof value === "string" || ONES.has(prev)) {
          if (TENS.has(prev) && ones < 10) {
            const v = pyStr(value);
            if (!v.endsWith("0")) throw new Error("normalizer: expected a trailing zero");
            value = v.slice(0, -1) + String(ones);
          } else value = pyStr(value) + String(ones);
        } else if (ones < 10) {
          value = pyMod(value, 10n) === 0n ? value + BigInt(ones) : pyStr(value) + String(ones);
        } else {
          value = pyMod(value, 100n) === 0n ? value + BigInt(ones) : pyStr(value) + String(ones);
        }
      } else if (ONES_SUFFIXED.has(current)) {
        const [ones, suffix] = ONES_SUFFIXED.get(current)!;
        if (value === null) yield output(String(ones) + suffix);
        else if (typeof value === "string" || ONES.has(prev)) {
          if (TENS.has(prev) && ones < 10) {
            const v = pyStr(value);
            if (!v.endsWith("0")) throw new Error("normalizer: expected a trailing zero");
            yield output(v.slice(0, -1) + String(ones) + suffix);
          } else yield output(pyStr(value) + String(ones) + suffix);
        } else if (ones < 10) {
          yield output(pyMod(value, 10n) === 0n ? pyStr(value + BigInt(ones)) + suffix : pyStr(value) + String(ones) + suffix);
        } else {
          yield output(pyMod(value, 100n) === 0n ? pyStr(value + BigInt(ones)) + suffix : pyStr(value) + String(ones) + suffix);
        }
        value = null;
      } else if (TENS.has(current)) {
        const tens = TENS.get(current)!;
        if (value === null) value = BigInt(tens);
        else if (typeof value === "string") value = value + String(tens);
        else value = pyMod(value, 100n) === 0n ? value + BigInt(tens) : pyStr(value) + String(tens);
      } else if (TENS_SUFFIXED.has(current)) {
        const [tens, suffix] = TENS_SUFFIXED.get(current)!;
        if (value === null) yield output(String(tens) + suffix);
        else if (typeof value === "string") yield output(value + String(tens) + suffix);
        else yield output(pyMod(value, 100n) === 0n ? pyStr(value + BigInt(tens)) + suffix : pyStr(value) + String(tens) + suffix);
      } else if (MULTIPLIERS.has(current)) {
        const multiplier = MULTIPLIERS.get(current)!;
        if (value === null) value = multiplier;
        else if (typeof value === "string" || value === 0n) {
          const f = toFraction(pyStr(value));
          if (f !== null && (f.num * multiplier) % f.den === 0n) value = (f.num * multiplier) / f.den;
          else {
            yield output(value);
            value = multiplier;
          }
        } else {
          const before: bigint = floorDiv(value, 1000n) * 1000n;
          const residual: bigint = pyMod(value, 1000n);
          value = before + residual * multiplier;
        }
      } else if (MULTIPLIERS_SUFFIXED.has(current)) {
        const [multiplier, suffix] = MULTIPLIERS_SUFFIXED.get(current)!;
        if (value === null) yield output(pyStr(multiplier) + suffix);
        else if (typeof value === "string") {
          const f = toFraction(value);
          if (f !== null && (f.num * multiplier) % f.den === 0n) yield output(pyStr((f.num * multiplier) / f.den) + suffix);
          else {
            yield output(value);
            yield output(pyStr(multiplier) + suffix);
          }
        } else {
          const before: bigint = floorDiv(value, 1000n) * 1000n;
          const residual: bigint = pyMod(value, 1000n);
          value = before + residual * multiplier;
          yield output(pyStr(value) + suffix);
        }
        value = null;
      } else if (PRECEDING_PREFIXERS.has(current)) {
        // apply prefix (positive, minus, etc.) if it precedes a number
        if (value !== null) yield output(value);
        if ((next !== null && WORDS.has(next)) || nextIsNumeric) prefix = PRECEDING_PREFIXERS.get(current)!;
        else yield output(current);
      } else if (FOLLOWING_PREFIXERS.has(current)) {
        // apply prefix (dollars, cents, etc.) only after a number
        if (value !== null) {
          prefix = FOLLOWING_PREFIXERS.get(current)!;
          yield output(value);
        } else yield output(current);
      } else if (SUFFIXERS.has(current)) {
        // apply suffix symbols (percent -> '%')
        if (value !== null) {
          const suffix = SUFFIXERS.get(current)!;
          if (typeof suffix !== "string") {
            if (next !== null && suffix.has(next)) {
              yield output(pyStr(value) + suffix.get(next)!);
              skip = true;
            } else {
              yield output(value);
              yield output(current);
            }
          } else yield output(pyStr(value) + suffix);
        } else yield output(current);
      } else if (SPECIALS.has(current)) {
        if (!(next !== null && WORDS.has(next)) && !nextIsNumeric) {
          // apply special handling only if the next word can be numeric
          if (value !== null) yield output(value);
          yield output(current);
        } else if (current === "and") {
          // ignore "and" after hundreds, thousands, etc.
          if (!(prev !== null && MULTIPLIERS.has(prev))) {
            if (value !== null) yield output(value);
            yield output(current);
          }
        } else if (current === "double" || current === "triple") {
          if (next !== null && (ONES.has(next) || ZEROS.has(next))) {
            const repeats = current === "double" ? 2 : 3;
            const ones = ONES.get(next) ?? 0;
            value = (falsy(value) ? "" : pyStr(value!)) + String(ones).repeat(repeats);
            skip = true;
          } else {
            if (value !== null) yield output(value);
            yield output(current);
          }
        } else if (current === "point") {
          if ((next !== null && DECIMALS.has(next)) || nextIsNumeric) value = `${falsy(value) ? "" : pyStr(value!)}.`;
        }
      } else {
        throw new Error(`normalizer: unexpected token ${current}`);
      }
    }
    if (value !== null) yield output(value);
  }

  private static readonly AND_A_HALF = re(`${B}and${S}+a${S}+half${B}`);

  preprocess(input: string): string {
    // "<number> and a half" -> "<number> point five"
    const segments = input.split(EnglishNumberNormalizer.AND_A_HALF);
    const results: string[] = [];
    segments.forEach((segment, i) => {
      if (pySplit(segment).length === 0) return; // Python: len(segment.strip()) == 0
      results.push(segment);
      if (i === segments.length - 1) return;
      const words = pySplit(segment);
      const last = words[words.length - 1]!;
      results.push(DECIMALS.has(last) || MULTIPLIERS.has(last) ? "point five" : "and a half");
    });
    let s = results.join(" ");
    s = s.replace(/([a-z])([0-9])/g, "$1 $2");
    s = s.replace(/([0-9])([a-z])/g, "$1 $2");
    s = s.replace(re(`([0-9])${S}+(st|nd|rd|th|s)${B}`), "$1$2"); // but keep suffixes attached
    return s;
  }

  postprocess(input: string): string {
    // currency: "$2 and ¢7" -> "$2.07"
    let s = input.replace(
      re(`([€£$])([0-9]+) (?:and )?¢([0-9]{1,2})${B}`),
      (_m, currency: string, integer: string, cents: string) => `${currency}${integer}.${String(Number(cents)).padStart(2, "0")}`,
    );
    s = s.replace(re(`[€£$]0.([0-9]{1,2})${B}`), (_m, cents: string) => `¢${Number(cents)}`);
    return s.replace(re(`${B}1(s?)${B}`), "one$1"); // "one(s)" rather than "1(s)", for readability
  }

  normalize(s: string): string {
    const pre = this.preprocess(s);
    return this.postprocess([...this.processWords(pySplit(pre))].join(" "));
  }
}

// ---------------------------------------------------------------------------------------------

/** British-to-American spellings from the model's normalizer.json. */
export class EnglishSpellingNormalizer {
  constructor(readonly mapping: Record<string, string>) {}
  normalize(s: string): string {
    return pySplit(s)
      .map((w) => (Object.hasOwn(this.mapping, w) ? this.mapping[w]! : w))
      .join(" ");
  }
}

const REPLACERS: Array<[RegExp, string]> = (
  [
    // common contractions
    [`${B}won't${B}`, "will not"],
    [`${B}can't${B}`, "can not"],
    [`${B}let's${B}`, "let us"],
    [`${B}ain't${B}`, "aint"],
    [`${B}y'all${B}`, "you all"],
    [`${B}wanna${B}`, "want to"],
    [`${B}gotta${B}`, "got to"],
    [`${B}gonna${B}`, "going to"],
    [`${B}i'ma${B}`, "i am going to"],
    [`${B}imma${B}`, "i am going to"],
    [`${B}woulda${B}`, "would have"],
    [`${B}coulda${B}`, "could have"],
    [`${B}shoulda${B}`, "should have"],
    [`${B}ma'am${B}`, "madam"],
    // contractions in titles/prefixes
    [`${B}mr${B}`, "mister "],
    [`${B}mrs${B}`, "missus "],
    [`${B}st${B}`, "saint "],
    [`${B}dr${B}`, "doctor "],
    [`${B}prof${B}`, "professor "],
    [`${B}capt${B}`, "captain "],
    [`${B}gov${B}`, "governor "],
    [`${B}ald${B}`, "alderman "],
    [`${B}gen${B}`, "general "],
    [`${B}sen${B}`, "senator "],
    [`${B}rep${B}`, "representative "],
    [`${B}pres${B}`, "president "],
    [`${B}rev${B}`, "reverend "],
    [`${B}hon${B}`, "honorable "],
    [`${B}asst${B}`, "assistant "],
    [`${B}assoc${B}`, "associate "],
    [`${B}lt${B}`, "lieutenant "],
    [`${B}col${B}`, "colonel "],
    [`${B}jr${B}`, "junior "],
    [`${B}sr${B}`, "senior "],
    [`${B}esq${B}`, "esquire "],
    // perfect tenses
    [`'d been${B}`, " had been"],
    [`'s been${B}`, " has been"],
    [`'d gone${B}`, " had gone"],
    [`'s gone${B}`, " has gone"],
    [`'d done${B}`, " had done"],
    [`'s got${B}`, " has got"],
    // general contractions
    [`n't${B}`, " not"],
    [`'re${B}`, " are"],
    [`'s${B}`, " is"],
    [`'d${B}`, " would"],
    [`'ll${B}`, " will"],
    [`'t${B}`, " not"],
    [`'ve${B}`, " have"],
    [`'m${B}`, " am"],
  ] as Array<[string, string]>
).map(([pattern, replacement]) => [re(pattern), replacement]);

const IGNORE = re(`${B}(hmm|mm|mhm|mmm|uh|um)${B}`);
const SPACE_APOSTROPHE = re(`${S}+'`);
const DIGIT_COMMA = re(`(${D}),(${D})`);
const PERIOD_NOT_NUMBER = /\.([^0-9]|$)/gu;
const SYMBOL_NOT_NUMBER = /[.$¢€£]([^0-9])/gu;
const PERCENT_NOT_NUMBER = /([^0-9])%/gu;

export class EnglishTextNormalizer {
  private readonly numbers = new EnglishNumberNormalizer();
  private readonly spellings: EnglishSpellingNormalizer;

  constructor(spellingMapping: Record<string, string>) {
    this.spellings = new EnglishSpellingNormalizer(spellingMapping);
  }

  /** The model's normalizer.json (Hugging Face ships it with every Whisper checkpoint). */
  static async load(modelDir: string): Promise<EnglishTextNormalizer> {
    const file = join(modelDir, "normalizer.json");
    if (!(await exists(file))) {
      throw new KitError(`${modelDir} has no normalizer.json (Whisper's English spelling map)`, {
        file,
        fix: "copy normalizer.json from any Whisper checkpoint (the kit has whisper-tiny.en's in test/fixtures/whisper-assets/whisper-tiny.en/)",
      });
    }
    return new EnglishTextNormalizer(await readJson<Record<string, string>>(file));
  }

  normalize(input: string): string {
    let s = input.toLowerCase();
    s = s.replace(BRACKETS, "").replace(PARENTHESES, "");
    s = s.replace(IGNORE, "");
    s = s.replace(SPACE_APOSTROPHE, "'");
    for (const [pattern, replacement] of REPLACERS) s = s.replace(pattern, replacement);
    s = s.replace(DIGIT_COMMA, "$1$2");
    s = s.replace(PERIOD_NOT_NUMBER, " $1");
    s = removeSymbolsAndDiacritics(s, ".%$¢€£");
    s = this.numbers.normalize(s);
    s = this.spellings.normalize(s);
    s = s.replace(SYMBOL_NOT_NUMBER, " $1");
    s = s.replace(PERCENT_NOT_NUMBER, "$1 ");
    return s.replace(SPACE_RUN, " ");
  }
}
