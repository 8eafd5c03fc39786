import { join } from "node:path";
import { KitError } from "../util/errors.js";
import { exists, readJson } from "../util/fs.js";

/**
 * GPT-2's reversible map from bytes to printable characters, which byte-level BPE vocabularies
 * are written in: printable Latin-1 bytes map to themselves, the rest to U+0100 onwards.
 */
function byteDecoder(): Map<string, number> {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const map = new Map<string, number>();
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const code = printable.includes(b) ? b : 256 + extra++;
    map.set(String.fromCodePoint(code), b);
  }
  return map;
}

const BYTE_DECODER = byteDecoder();

interface TokenizerJson {
  model?: { type?: string; vocab?: Record<string, number> };
  added_tokens?: Array<{ id: number; content: string; special: boolean }>;
}

/** Whisper's tokenizer, decode side: ids to text, and special-token lookups for prompts. */
export class WhisperTokenizer {
  private readonly idToToken: Map<number, string>;
  private readonly tokenToId: Map<string, number>;
  private readonly special: Set<number>;

  constructor(
    json: TokenizerJson,
    readonly file: string,
    /** transformers 4.x applied clean_up_tokenization to Whisper when tokenizer_config asked. */
    readonly cleanUpSpaces = true,
  ) {
    const vocab = json.model?.vocab;
    if (json.model?.type !== "BPE" || !vocab) {
      throw new KitError("tokenizer.json has no BPE vocabulary", {
        file,
        field: "model.vocab",
        fix: "use the tokenizer.json of an original Whisper checkpoint",
      });
    }
    this.tokenToId = new Map(Object.entries(vocab));
    this.special = new Set();
    for (const added of json.added_tokens ?? []) {
      this.tokenToId.set(added.content, added.id);
      if (added.special) this.special.add(added.id);
    }
    this.idToToken = new Map([...this.tokenToId].map(([t, id]) => [id, t]));
  }

  static async load(modelDir: string): Promise<WhisperTokenizer> {
    const file = join(modelDir, "tokenizer.json");
    if (!(await exists(file))) {
      throw new KitError(`${modelDir} has no tokenizer.json`, { file, fix: "fetch the model again, or copy tokenizer.json from the original checkpoint" });
    }
    const configFile = join(modelDir, "tokenizer_config.json");
    const config = (await exists(configFile)) ? await readJson<{ clean_up_tokenization_spaces?: boolean }>(configFile) : {};
    return new WhisperTokenizer(await readJson<TokenizerJson>(file), file, config.clean_up_tokenization_spaces ?? true);
  }

  /** The id of a token such as "<|en|>"; throws with the token's name if the vocabulary lacks it. */
  id(token: string): number {
    const id = this.tokenToId.get(token);
    if (id === undefined)
      throw new KitError(`the tokenizer has no token ${token}`, { file: this.file, field: token, fix: "use a tokenizer that matches the model" });
    return id;
  }

  maybeId(token: string): number | undefined {
    return this.tokenToId.get(token);
  }

  /** Timestamp tokens (<|0.00|> ...) follow <|notimestamps|>; they count as special. */
  private isSpecial(id: number): boolean {
    if (this.special.has(id)) return true;
    const noTimestamps = this.tokenToId.get("<|notimestamps|>");
    return (noTimestamps !== undefined && id > noTimestamps) || !this.idToToken.has(id);
  }

  /** Text of a token sequence, special tokens dropped unless asked for. */
  decode(ids: Iterable<number>, options: { skipSpecial?: boolean; cleanUpSpaces?: boolean } = {}): string {
    const skip = options.skipSpecial ?? true;
    const pieces: string[] = [];
    let bytes: number[] = [];
    const flush = () => {
      if (bytes.length) pieces.push(new TextDecoder("utf-8").decode(Uint8Array.from(bytes))); // invalid sequences become U+FFFD, as errors="replace"
      bytes = [];
    };
    for (const id of ids) {
      if (this.isSpecial(id)) {
        if (skip) continue;
        flush();
        pieces.push(this.idToToken.get(id) ?? "");
        continue;
      }
      for (const ch of this.idToToken.get(id)!) {
        const b = BYTE_DECODER.get(ch);
        if (b !== undefined) bytes.push(b);
      }
    }
    flush();
    const text = pieces.join("");
    return (options.cleanUpSpaces ?? this.cleanUpSpaces) ? cleanUpTokenization(text) : text;
  }
}

/** transformers' PreTrainedTokenizerBase.clean_up_tokenization: spaces before punctuation and contractions. */
export function cleanUpTokenization(text: string): string {
  return text
    .replaceAll(" .", ".")
    .replaceAll(" ?", "?")
    .replaceAll(" !", "!")
    .replaceAll(" ,", ",")
    .replaceAll(" ' ", "'")
    .replaceAll(" n't", "n't")
    .replaceAll(" 'm", "'m")
    .replaceAll(" 's", "'s")
    .replaceAll(" 've", "'ve")
    .replaceAll(" 're", "'re");
}
