/**
 * What a FLAC file records about itself, checked: STREAMINFO's total sample count and the MD5 of
 * the decoded audio, and each frame's CRC-8 (header) and CRC-16 (whole frame). The decoder stops
 * silently at a truncation or a damaged frame, so these checks are what catches a bad download.
 */
import { createHash } from "node:crypto";

export interface StreamInfo {
  sampleRate: number;
  channels: number;
  bitsPerSample: number;
  totalSamples: number; // per channel; 0 = unknown
  md5: string; // hex; all zeros = not set by the encoder
}

export interface FlacLayout {
  streamInfo: StreamInfo;
  firstFrame: number; // byte offset of the first audio frame
}

/** STREAMINFO and where the audio frames start; null when the metadata itself is damaged. */
export function readFlacLayout(bytes: Uint8Array): FlacLayout | null {
  if (bytes.length < 42 || bytes[0] !== 0x66 || bytes[1] !== 0x4c || bytes[2] !== 0x61 || bytes[3] !== 0x43) return null;
  let pos = 4;
  let info: StreamInfo | null = null;
  for (;;) {
    if (pos + 4 > bytes.length) return null;
    const last = (bytes[pos]! & 0x80) !== 0;
    const type = bytes[pos]! & 0x7f;
    const length = (bytes[pos + 1]! << 16) | (bytes[pos + 2]! << 8) | bytes[pos + 3]!;
    const body = pos + 4;
    if (body + length > bytes.length) return null;
    if (type === 0) {
      if (length < 34) return null;
      const b = bytes.subarray(body, body + 34);
      const sampleRate = (b[10]! << 12) | (b[11]! << 4) | (b[12]! >> 4);
      const channels = ((b[12]! >> 1) & 0x07) + 1;
      const bitsPerSample = (((b[12]! & 0x01) << 4) | (b[13]! >> 4)) + 1;
      const totalSamples = (b[13]! & 0x0f) * 2 ** 32 + ((b[14]! << 24) >>> 0) + (b[15]! << 16) + (b[16]! << 8) + b[17]!;
      info = { sampleRate, channels, bitsPerSample, totalSamples, md5: Buffer.from(b.subarray(18, 34)).toString("hex") };
    }
    pos = body + length;
    if (last) break;
  }
  return info ? { streamInfo: info, firstFrame: pos } : null;
}

const CRC8 = new Uint8Array(256);
const CRC16 = new Uint16Array(256);
for (let i = 0; i < 256; i++) {
  let c8 = i;
  let c16 = i << 8;
  for (let k = 0; k < 8; k++) {
    c8 = c8 & 0x80 ? ((c8 << 1) ^ 0x07) & 0xff : (c8 << 1) & 0xff; // x^8 + x^2 + x + 1
    c16 = c16 & 0x8000 ? ((c16 << 1) ^ 0x8005) & 0xffff : (c16 << 1) & 0xffff; // x^16 + x^15 + x^2 + 1
  }
  CRC8[i] = c8;
  CRC16[i] = c16;
}

export function crc8(bytes: Uint8Array, start: number, end: number): number {
  let c = 0;
  for (let i = start; i < end; i++) c = CRC8[c ^ bytes[i]!]!;
  return c;
}

export function crc16(bytes: Uint8Array, start: number, end: number): number {
  let c = 0;
  for (let i = start; i < end; i++) c = ((c << 8) & 0xffff) ^ CRC16[(c >> 8) ^ bytes[i]!]!;
  return c;
}

/** Length of a frame header at `pos` whose CRC-8 matches, or 0 where none starts there. */
export function frameHeaderAt(bytes: Uint8Array, pos: number): number {
  if (pos + 6 > bytes.length || bytes[pos] !== 0xff || (bytes[pos + 1]! & 0xfe) !== 0xf8) return 0;
  const blockSizeCode = bytes[pos + 2]! >> 4;
  const rateCode = bytes[pos + 2]! & 0x0f;
  if (blockSizeCode === 0 || rateCode === 0x0f || bytes[pos + 3]! >> 4 > 10 || (bytes[pos + 3]! & 0x01) !== 0) return 0;
  let p = pos + 4;
  // The frame or sample number, UTF-8 style: the count of leading ones is the byte count.
  const lead = bytes[p]!;
  let extra = 0;
  if (lead >= 0xc0) {
    let mask = 0x40;
    while (lead & mask && extra < 6) {
      extra++;
      mask >>= 1;
    }
    if (lead & mask) return 0;
  } else if (lead >= 0x80) return 0;
  p += 1 + extra;
  if (blockSizeCode === 6) p += 1;
  else if (blockSizeCode === 7) p += 2;
  if (rateCode === 12) p += 1;
  else if (rateCode === 13 || rateCode === 14) p += 2;
  if (p + 1 > bytes.length) return 0;
  return crc8(bytes, pos, p) === bytes[p] ? p + 1 - pos : 0;
}

export interface FrameCheck {
  frames: number;
  /** Byte offset of the first frame whose CRC-16 matches at no later frame boundary (damaged or cut). */
  damagedAt: number | null;
}

/**
 * Walk the frames: from each frame header, the frame ends where a later header starts and the
 * CRC-16 of the bytes between matches the two bytes before it (a header-like pattern inside the
 * audio data fails that and is passed over). A frame with no such end is damaged or cut off.
 */
export function checkFrames(bytes: Uint8Array, firstFrame: number): FrameCheck {
  let frames = 0;
  let start = firstFrame;
  if (frameHeaderAt(bytes, start) === 0) return { frames, damagedAt: start };
  while (start < bytes.length) {
    let end = -1;
    for (let next = start + 1; next <= bytes.length; next++) {
      const atHeader = next === bytes.length || (bytes[next] === 0xff && frameHeaderAt(bytes, next) > 0);
      if (!atHeader || next - start < 4) continue;
      if (crc16(bytes, start, next - 2) === ((bytes[next - 2]! << 8) | bytes[next - 1]!)) {
        end = next;
        break;
      }
    }
    if (end < 0) return { frames, damagedAt: start };
    frames++;
    start = end;
  }
  return { frames, damagedAt: null };
}

/** MD5 of decoded audio as FLAC defines it: interleaved samples, little-endian, whole bytes per sample. */
export function audioMd5(channels: Int32Array[], bitsPerSample: number): string {
  const width = Math.ceil(bitsPerSample / 8);
  const n = channels[0]?.length ?? 0;
  const out = Buffer.alloc(n * channels.length * width);
  let o = 0;
  for (let i = 0; i < n; i++) {
    for (const ch of channels) {
      let v = ch[i]!;
      for (let b = 0; b < width; b++) {
        out[o++] = v & 0xff;
        v >>= 8;
      }
    }
  }
  return createHash("md5").update(out).digest("hex");
}
