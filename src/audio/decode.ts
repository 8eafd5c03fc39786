import { readFile } from "node:fs/promises";
import { FLACDecoder } from "@wasm-audio-decoders/flac";
import { KitError } from "../util/errors.js";
import { audioMd5, checkFrames, readFlacLayout } from "./flac-integrity.js";
import { resample } from "./resample.js";

export const SAMPLE_RATE = 16000;

export interface DecodedAudio {
  channels: Float32Array[]; // one array per channel, samples in [-1, 1)
  sampleRate: number; // Hz
}

/** Read a FLAC or WAV file and return mono 16 kHz samples, as Whisper's load_audio does. */
export async function loadAudio(file: string): Promise<Float32Array> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw new KitError(`cannot read audio file ${file}`, { file, fix: "check the path" }, err);
  }
  return toWhisperInput(await decodeAudio(bytes, file));
}

/** Downmix by averaging channels (ffmpeg's -ac 1) and resample to 16 kHz. */
export function toWhisperInput(audio: DecodedAudio): Float32Array {
  const mono = downmix(audio.channels);
  return audio.sampleRate === SAMPLE_RATE ? mono : resample(mono, audio.sampleRate, SAMPLE_RATE);
}

export function downmix(channels: Float32Array[]): Float32Array {
  if (channels.length === 1) return channels[0]!;
  const out = new Float32Array(channels[0]!.length);
  for (const ch of channels) for (let i = 0; i < out.length; i++) out[i]! += ch[i]!;
  for (let i = 0; i < out.length; i++) out[i]! /= channels.length;
  return out;
}

/** Decode by content, not by extension: "fLaC" or "RIFF....WAVE". */
export async function decodeAudio(bytes: Uint8Array, file: string): Promise<DecodedAudio> {
  if (bytes.length === 0) throw new KitError(`${file} is empty`, { file, fix: "the file holds no audio; re-download or re-record it" });
  const magic = new TextDecoder("latin1").decode(bytes.subarray(0, 4));
  if (magic === "fLaC") return decodeFlac(bytes, file);
  if (magic === "RIFF" && new TextDecoder("latin1").decode(bytes.subarray(8, 12)) === "WAVE") return decodeWav(bytes, file);
  throw new KitError(`${file} is not a FLAC or WAV file (it starts with ${JSON.stringify(magic)})`, {
    file,
    fix: "convert it to FLAC or WAV first (e.g. ffmpeg -i in.mp3 out.flac)",
  });
}

export async function decodeFlac(bytes: Uint8Array, file: string): Promise<DecodedAudio> {
  const damaged = (what: string, field: string) =>
    new KitError(`${file} is a damaged FLAC file: ${what}`, {
      file,
      field,
      fix: "replace the file (re-download it, or re-extract its archive); a damaged FLAC is never transcribed",
    });
  const layout = readFlacLayout(bytes);
  if (!layout) throw damaged("its metadata blocks are cut off or malformed", "STREAMINFO");
  const frames = checkFrames(bytes, layout.firstFrame);
  if (frames.damagedAt !== null) {
    throw damaged(
      `the audio frame at byte ${frames.damagedAt} (after ${frames.frames} good frames; the file has ${bytes.length} bytes) fails its CRC or is cut off`,
      "frame CRC-16",
    );
  }
  const decoder = new FLACDecoder();
  await decoder.ready;
  try {
    const decoded = await decoder.decodeFile(bytes);
    if (decoded.errors.length > 0 || decoded.samplesDecoded === 0) {
      const first = decoded.errors[0];
      throw damaged(first ? `${first.message} at frame ${first.frameNumber}` : "no samples decoded", "frames");
    }
    const info = layout.streamInfo;
    if (info.totalSamples > 0 && decoded.samplesDecoded !== info.totalSamples) {
      throw damaged(`${decoded.samplesDecoded} samples decoded, STREAMINFO records ${info.totalSamples}`, "STREAMINFO.total_samples");
    }
    // The decoder scales an int sample by 1/(2^(b-1)-1); numpy/soundfile (the reference) by 1/2^(b-1).
    const full = 2 ** (decoded.bitDepth - 1) - 1;
    if (!/^0+$/.test(info.md5)) {
      const ints = decoded.channelData.map((ch) => Int32Array.from(ch.subarray(0, decoded.samplesDecoded), (v) => Math.round(v * full)));
      const md5 = audioMd5(ints, info.bitsPerSample);
      if (md5 !== info.md5) throw damaged(`the decoded audio's MD5 is ${md5}, STREAMINFO records ${info.md5}`, "STREAMINFO.md5");
    }
    const parity = full / 2 ** (decoded.bitDepth - 1);
    const channels = decoded.channelData.map((ch) => {
      const out = new Float32Array(decoded.samplesDecoded);
      for (let i = 0; i < out.length; i++) out[i] = ch[i]! * parity;
      return out;
    });
    return { channels, sampleRate: decoded.sampleRate };
  } finally {
    decoder.free();
  }
}

/** RIFF/WAVE with PCM 8/16/24/32-bit integer or 32/64-bit float samples (and WAVE_FORMAT_EXTENSIBLE). */
export function decodeWav(bytes: Uint8Array, file: string): DecodedAudio {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fix = "the WAV file is damaged or in an unsupported encoding; convert it to 16-bit PCM WAV or FLAC";
  let format = -1;
  let channelCount = 0;
  let sampleRate = 0;
  let bits = 0;
  let dataOffset = -1;
  let dataLength = 0;
  for (let pos = 12; pos + 8 <= bytes.length; ) {
    const id = new TextDecoder("latin1").decode(bytes.subarray(pos, pos + 4));
    const size = view.getUint32(pos + 4, true);
    const body = pos + 8;
    if (id === "fmt ") {
      if (size < 16 || body + 16 > bytes.length) throw new KitError(`${file}: WAV fmt chunk is too short`, { file, field: "fmt", fix });
      format = view.getUint16(body, true);
      channelCount = view.getUint16(body + 2, true);
      sampleRate = view.getUint32(body + 4, true);
      bits = view.getUint16(body + 14, true);
      if (format === 0xfffe && size >= 26) format = view.getUint16(body + 24, true); // extensible: sub-format GUID's first two bytes
    } else if (id === "data") {
      dataOffset = body;
      if (size === 0xffffffff)
        dataLength = bytes.length - body; // a streaming writer's "to the end"
      else if (body + size > bytes.length) {
        throw new KitError(`${file} is a damaged WAV file: its data chunk records ${size} bytes, the file holds ${bytes.length - body} after it (cut off)`, {
          file,
          field: "data.size",
          fix: "replace the file (re-download or re-export it); a damaged file is never transcribed",
        });
      } else dataLength = size;
    }
    pos = body + size + (size & 1);
  }
  if (format < 0) throw new KitError(`${file}: WAV file has no fmt chunk`, { file, field: "fmt", fix });
  if (dataOffset < 0) throw new KitError(`${file}: WAV file has no data chunk`, { file, field: "data", fix });
  if (channelCount === 0 || sampleRate === 0)
    throw new KitError(`${file}: WAV header says ${channelCount} channels at ${sampleRate} Hz`, { file, field: "fmt", fix });
  const isFloat = format === 3;
  if (!(format === 1 || isFloat) || (isFloat && bits !== 32 && bits !== 64) || (!isFloat && ![8, 16, 24, 32].includes(bits))) {
    throw new KitError(`${file}: unsupported WAV encoding (format ${format}, ${bits} bits)`, { file, field: "fmt.audio_format", fix });
  }
  const bytesPerSample = bits / 8;
  const frames = Math.floor(dataLength / (bytesPerSample * channelCount));
  if (frames === 0) throw new KitError(`${file}: WAV data chunk holds no samples`, { file, field: "data", fix });
  const channels = Array.from({ length: channelCount }, () => new Float32Array(frames));
  for (let i = 0; i < frames; i++) {
    for (let c = 0; c < channelCount; c++) {
      const at = dataOffset + (i * channelCount + c) * bytesPerSample;
      let v: number;
      if (isFloat) v = bits === 32 ? view.getFloat32(at, true) : view.getFloat64(at, true);
      else if (bits === 8) v = (view.getUint8(at) - 128) / 128;
      else if (bits === 16) v = view.getInt16(at, true) / 32768;
      else if (bits === 24) v = ((view.getUint8(at + 2) << 24) | (view.getUint8(at + 1) << 16) | (view.getUint8(at) << 8)) / 2 ** 31;
      else v = view.getInt32(at, true) / 2 ** 31;
      channels[c]![i] = v;
    }
  }
  return { channels, sampleRate };
}

/** 16-bit PCM WAV bytes (used by tests and by the notebooks' audio player). */
export function encodeWav16(samples: Float32Array, sampleRate: number): Uint8Array {
  const out = new Uint8Array(44 + samples.length * 2);
  const view = new DataView(out.buffer);
  const text = (at: number, s: string) => {
    for (let i = 0; i < s.length; i++) view.setUint8(at + i, s.charCodeAt(i));
  };
  text(0, "RIFF");
  view.setUint32(4, 36 + samples.length * 2, true);
  text(8, "WAVE");
  text(12, "fmt ");
  view.setUint32(16, 16, true);
  view.setUint16(20, 1, true);
  view.setUint16(22, 1, true);
  view.setUint32(24, sampleRate, true);
  view.setUint32(28, sampleRate * 2, true);
  view.setUint16(32, 2, true);
  view.setUint16(34, 16, true);
  text(36, "data");
  view.setUint32(40, samples.length * 2, true);
  for (let i = 0; i < samples.length; i++) {
    view.setInt16(44 + i * 2, Math.max(-32768, Math.min(32767, Math.round(samples[i]! * 32768))), true);
  }
  return out;
}
