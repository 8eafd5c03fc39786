/**
 * Graph fragments that replace one fp32 MatMul(x, W) by its quantized form, writing to the same
 * output name. The weight arrives quantized in Hugging Face layout ([N = out, K = in]); each
 * fragment stores it in the layout its onnxruntime operator reads, and returns the bytes stored.
 */
import { DataType, type GraphBuilder } from "../model/onnx.js";
import { fromFloat8E4M3 } from "../quant/float32.js";
import { dequantizeAbsmax, doubleQuantizeAbsmax, type DoubleQuantizedAbsmax, type QuantizedWeight } from "../quant/schemes.js";

const MS = "com.microsoft";
const NBITS_BLOCKS = [256, 128, 64, 32, 16]; // the block sizes onnxruntime's CPU kernel takes

/**
 * MatMulNBits' block: 16, 32, 64, 128 or 256 (onnxruntime's CPU kernel refuses others), dividing
 * both the group and K. A per-channel scale (group = K) repeats over several blocks of the row.
 */
export function nbitsBlock(groupSize: number, k: number): number {
  for (const b of NBITS_BLOCKS) if (b <= groupSize && groupSize % b === 0 && k % b === 0) return b;
  throw new Error(`no MatMulNBits block size fits K=${k} with groups of ${groupSize}`);
}

/** Whether MatMulNBits can run this weight: groups inside rows that divide K, and a block size that fits. */
export function fitsMatMulNBits(q: QuantizedWeight, k: number): boolean {
  if (q.groupSize === q.codes.length || k % q.groupSize !== 0) return false;
  return NBITS_BLOCKS.some((b) => b <= q.groupSize && q.groupSize % b === 0 && k % b === 0);
}

/**
 * com.microsoft.MatMulNBits: B [N, K/block, block*bits/8] uint8 with the first value of a byte in
 * its low bits; scales [N * K/block]; zero points as floats (2 and 4 bits) or packed uint8.
 * value = (code - zero) * scale. Quanto's shift convention (code * scale - shift) becomes the float
 * zero point shift / scale; symmetric int8 codes are stored offset by 128 with zero point 128.
 */
export function emitMatMulNBits(
  g: GraphBuilder,
  x: string,
  out: string,
  name: string,
  q: QuantizedWeight,
  n: number,
  k: number,
  accuracyLevel: 0 | 4 = 0,
): number {
  const bits = q.bits;
  const block = nbitsBlock(q.groupSize, k);
  const blocksPerRow = k / block;
  const blob = (block * bits) / 8;
  const perByte = 8 / bits;
  const packed = new Uint8Array(n * blocksPerRow * blob);
  const offset = q.convention === "symmetric" ? 2 ** (bits - 1) : 0;
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < k; c++) {
      const code = q.codes[r * k + c]! + offset;
      packed[r * blocksPerRow * blob + Math.floor(c / perByte)]! |= code << ((c % perByte) * bits);
    }
  }
  const scales = new Float32Array(n * blocksPerRow);
  const groupsPerRow = k / q.groupSize;
  for (let r = 0; r < n; r++)
    for (let b = 0; b < blocksPerRow; b++) scales[r * blocksPerRow + b] = q.scales[r * groupsPerRow + Math.floor((b * block) / q.groupSize)]!;
  g.initializer(`${name}.qweight`, packed, [n, blocksPerRow, blob], DataType.UINT8);
  g.initializer(`${name}.scales`, scales, [n * blocksPerRow]);
  const inputs = [x, `${name}.qweight`, `${name}.scales`];
  // onnxruntime's fast 4-bit kernels take integer zero points only; with float ones it expands the
  // whole weight on every call (8x the fp32 time for one decoder row). So a 4-bit float zero point
  // is folded out: integer zero points of 0 leave code * scale, and the shift, one per group,
  // becomes a correction, the same values summed in another order:
  //   sum_k x_k (code_k scale - shift) = sum_k x_k code_k scale - sum_g shift_g (sum_(k in g) x_k)
  // 2-bit keeps float zero points: there they are the fast path.
  const foldShift = q.zeros !== null && q.convention !== "symmetric" && bits === 4;
  if (q.convention === "symmetric" || foldShift) {
    const zero = offset; // symmetric codes are stored offset by 2^(bits-1); a folded shift leaves 0
    const zpPerByte = 8 / bits;
    const rowBytes = Math.ceil(blocksPerRow / zpPerByte);
    const zeros = new Uint8Array(n * rowBytes);
    for (let r = 0; r < n; r++) for (let b = 0; b < blocksPerRow; b++) zeros[r * rowBytes + Math.floor(b / zpPerByte)]! |= zero << ((b % zpPerByte) * bits);
    g.initializer(`${name}.zeros`, zeros, [zeros.length], DataType.UINT8);
    inputs.push(`${name}.zeros`);
  } else if (q.zeros) {
    const zeros = new Float32Array(n * blocksPerRow);
    for (let r = 0; r < n; r++) {
      for (let b = 0; b < blocksPerRow; b++) {
        const gi = r * groupsPerRow + Math.floor((b * block) / q.groupSize);
        zeros[r * blocksPerRow + b] = q.convention === "shift" ? Math.fround(q.zeros[gi]! / q.scales[gi]!) : q.zeros[gi]!;
      }
    }
    g.initializer(`${name}.zeros`, zeros, [zeros.length]);
    inputs.push(`${name}.zeros`);
  }
  const product = foldShift ? `${out}/codes_x_scales` : out;
  g.op(
    "MatMulNBits",
    inputs,
    { K: k, N: n, bits, block_size: block, accuracy_level: accuracyLevel },
    { domain: MS, name: `${name}/quant/MatMulNBits`, output: product },
  );
  if (foldShift) g.op("Add", [product, emitGroupShiftCorrection(g, x, name, q, n, k)], {}, { name: `${name}/quant/ZeroPointCorrection`, output: out });
  // The symmetric offset is a constant the format needs, not a parameter of the scheme.
  const zeroBytes = q.convention === "symmetric" ? 0 : 4 * (q.zeros?.length ?? 0);
  return Math.ceil((n * k * bits) / 8) + 4 * q.scales.length + zeroBytes;
}

/**
 * -(sum over each group of x) x (each group's shift), [..., N]: what a float zero point adds to
 * code * scale. Shift per group: quanto's `shift`, or HQQ's zero * scale (float32, as it dequantizes).
 * Group sums are one MatMul with a 0/1 matrix [K, G], shared by the layers of the same K and group.
 */
function emitGroupShiftCorrection(g: GraphBuilder, x: string, name: string, q: QuantizedWeight, n: number, k: number): string {
  const groups = k / q.groupSize;
  const indicator = `group_sums.${k}x${q.groupSize}`;
  if (!g.initializers.has(indicator)) {
    const ones = new Float32Array(k * groups);
    for (let c = 0; c < k; c++) ones[c * groups + Math.floor(c / q.groupSize)] = 1;
    g.initializer(indicator, ones, [k, groups]);
  }
  const negShift = new Float32Array(groups * n); // [G, N]
  for (let r = 0; r < n; r++) {
    for (let gi = 0; gi < groups; gi++) {
      const zero = q.zeros![r * groups + gi]!;
      negShift[gi * n + r] = -(q.convention === "shift" ? zero : Math.fround(zero * q.scales[r * groups + gi]!));
    }
  }
  g.initializer(`${name}.neg_shift`, negShift, [groups, n]);
  const sums = g.op("MatMul", [x, indicator], {}, { name: `${name}/quant/GroupSums` });
  return g.op("MatMul", [sums, `${name}.neg_shift`], {}, { name: `${name}/quant/ShiftCorrection` });
}

/**
 * com.microsoft.MatMulBnb4: bitsandbytes' own packing of the flattened [N, K] weight, absmax per
 * block. With double quantization the absmax is stored as bitsandbytes stores it (8-bit codes of
 * the dynamic map, one scale per 256 blocks, an offset) and rebuilt in the graph (folded at load).
 */
export function emitMatMulBnb4(
  g: GraphBuilder,
  x: string,
  out: string,
  name: string,
  q: QuantizedWeight,
  packed: Uint8Array,
  quantType: "nf4" | "fp4",
  n: number,
  k: number,
  dq?: DoubleQuantizedAbsmax,
): number {
  g.initializer(`${name}.qweight`, packed, [packed.length], DataType.UINT8);
  let absmax = `${name}.absmax`;
  let statsBytes = 4 * q.scales.length;
  if (dq) {
    const blocks = dq.codes.length;
    const blocks2 = dq.absmax2.length;
    const padded = new Uint8Array(blocks2 * 256);
    padded.set(dq.codes);
    g.initializer(`${name}.absmax_q`, padded, [blocks2 * 256], DataType.UINT8);
    g.initializer(`${name}.absmax2`, dq.absmax2, [blocks2, 1]);
    g.initializer(`${name}.absmax_code`, dq.code, [256]);
    g.initializer(`${name}.absmax_offset`, Float32Array.of(dq.offset), []);
    const index = g.op("Cast", [`${name}.absmax_q`], { to: DataType.INT32 }, { name: `${name}/quant/AbsmaxIndex` });
    const values = g.op(
      "Reshape",
      [g.op("Gather", [`${name}.absmax_code`, index], { axis: 0 }, { name: `${name}/quant/AbsmaxLookup` }), g.constant([blocks2, 256])],
      {},
      { name: `${name}/quant/AbsmaxBlocks` },
    );
    const scaled = g.op(
      "Add",
      [g.op("Mul", [values, `${name}.absmax2`], {}, { name: `${name}/quant/AbsmaxScale` }), `${name}.absmax_offset`],
      {},
      { name: `${name}/quant/AbsmaxOffset` },
    );
    absmax = g.op(
      "Slice",
      [g.op("Reshape", [scaled, g.constant([-1])], {}, { name: `${name}/quant/AbsmaxFlat` }), g.constant([0]), g.constant([blocks])],
      {},
      { name: `${name}/quant/Absmax` },
    );
    statsBytes = doubleQuantBytes(dq);
  } else {
    g.initializer(absmax, q.scales, [q.scales.length]);
  }
  g.op(
    "MatMulBnb4",
    [x, `${name}.qweight`, absmax],
    { K: k, N: n, block_size: q.groupSize, quant_type: quantType === "nf4" ? 1 : 0 },
    { domain: MS, name: `${name}/quant/MatMulBnb4`, output: out },
  );
  return packed.length + statsBytes;
}

/** What double-quantized statistics take as bitsandbytes' state_dict keeps them: codes, second-level scales, the map, the offset. */
export function doubleQuantBytes(dq: DoubleQuantizedAbsmax): number {
  return dq.codes.length + 4 * dq.absmax2.length + 4 * dq.code.length + 4;
}

/** How an expanded weight is computed: bitsandbytes' compute_dtype float16, and its double-quantized absmax. */
export interface DequantizedForm {
  fp16Compute?: boolean;
  doubleQuant?: boolean;
}

/**
 * Codes stored at exactly `bits` per value and expanded in the graph: 8-bit codes one per byte,
 * 4-bit codes two per byte (low nibble first), other widths as bit planes (plane p holds bit p of
 * every code, eight codes a byte). The codes are transposed to [K, N] while still bytes, then
 * cast and dequantized per group with scales laid out [groups, 1, N]. Every input is an
 * initializer, so onnxruntime folds the expansion when the session loads: the file is small,
 * the weight in memory is fp32. Returns the bytes the scheme's parameters take.
 */
export function emitDequantized(
  g: GraphBuilder,
  x: string,
  out: string,
  name: string,
  q: QuantizedWeight,
  n: number,
  k: number,
  o: DequantizedForm = {},
): number {
  const fp16Compute = o.fp16Compute ?? false;
  if (o.doubleQuant) {
    // bitsandbytes' double quantization: expanded with the absmax it rebuilds from its 8-bit codes, sized as stored
    const dq = doubleQuantizeAbsmax(q.scales);
    const rebuilt = { ...q, scales: dequantizeAbsmax(dq) };
    return emitDequantized(g, x, out, name, rebuilt, n, k, { fp16Compute: o.fp16Compute ?? false }) - 4 * q.scales.length + doubleQuantBytes(dq);
  }
  const p = `${name}/quant`;
  const count = n * k;
  const offset = q.convention === "symmetric" || q.convention === "absmax127" ? 2 ** (q.bits - 1) : 0;
  let codes: string; // uint8 [N*K], HF row-major order
  let storedBytes: number;
  if (q.bits === 8) {
    const stored = new Uint8Array(count); // a plain loop: Uint8Array.from with a mapper took 20 s on whisper-small's proj_out
    for (let i = 0; i < count; i++) stored[i] = q.codes[i]! + offset;
    g.initializer(`${name}.codes`, stored, [count], DataType.UINT8);
    codes = `${name}.codes`;
    storedBytes = count;
  } else if (q.bits === 4) {
    const packed = new Uint8Array(Math.ceil(count / 2));
    for (let i = 0; i < count; i++) packed[i >> 1]! |= ((q.codes[i]! + offset) & 0xf) << ((i & 1) * 4);
    g.initializer(`${name}.codes`, packed, [packed.length, 1], DataType.UINT8);
    const low = g.op("BitwiseAnd", [`${name}.codes`, g.initializer(`${name}.mask`, Uint8Array.of(15), [1], DataType.UINT8)], {}, { name: `${p}/Low` });
    const high = g.op(
      "BitShift",
      [`${name}.codes`, g.initializer(`${name}.four`, Uint8Array.of(4), [1], DataType.UINT8)],
      { direction: "RIGHT" },
      { name: `${p}/High` },
    );
    codes = g.op(
      "Slice",
      [
        g.op("Reshape", [g.op("Concat", [low, high], { axis: 1 }, { name: `${p}/Nibbles` }), g.constant([-1])], {}, { name: `${p}/Flatten` }),
        g.constant([0]),
        g.constant([count]),
      ],
      {},
      { name: `${p}/Trim` },
    );
    storedBytes = packed.length;
  } else {
    const planeBytes = Math.ceil(count / 8);
    const planes = new Uint8Array(q.bits * planeBytes);
    for (let i = 0; i < count; i++) {
      const code = q.codes[i]! + offset;
      for (let b = 0; b < q.bits; b++) if ((code >> b) & 1) planes[b * planeBytes + (i >> 3)]! |= 1 << (i & 7);
    }
    g.initializer(`${name}.planes`, planes, [q.bits, planeBytes, 1], DataType.UINT8);
    const shifts = g.initializer(`${name}.shifts`, Uint8Array.from([0, 1, 2, 3, 4, 5, 6, 7]), [1, 1, 8], DataType.UINT8);
    const bits = g.op(
      "BitwiseAnd",
      [
        g.op("BitShift", [`${name}.planes`, shifts], { direction: "RIGHT" }, { name: `${p}/Shift` }),
        g.initializer(`${name}.one`, Uint8Array.of(1), [1], DataType.UINT8),
      ],
      {},
      { name: `${p}/Bit` },
    );
    const placeValues = g.initializer(
      `${name}.place`,
      Uint8Array.from({ length: q.bits }, (_, b) => b),
      [q.bits, 1, 1],
      DataType.UINT8,
    );
    const placed = g.op("BitShift", [bits, placeValues], { direction: "LEFT" }, { name: `${p}/Place` }); // [bits, bytes, 8], bit b at place b
    // OR the planes together in uint8 (no widening: a byte per code at every step)
    let combined = g.op("Slice", [placed, g.constant([0]), g.constant([1]), g.constant([0])], {}, { name: `${p}/Plane0` });
    for (let b = 1; b < q.bits; b++) {
      const plane = g.op("Slice", [placed, g.constant([b]), g.constant([b + 1]), g.constant([0])], {}, { name: `${p}/Plane${b}` });
      combined = g.op("BitwiseOr", [combined, plane], {}, { name: `${p}/Or${b}` });
    }
    codes = g.op(
      "Slice",
      [g.op("Reshape", [combined, g.constant([-1])], {}, { name: `${p}/Flatten` }), g.constant([0]), g.constant([count])],
      {},
      { name: `${p}/Trim` },
    );
    storedBytes = planes.length;
  }

  // Groups inside rows (per-channel or group-wise along K): transpose the bytes, scale per [group, 1, N].
  const rowGroups = q.groupSize <= k && k % q.groupSize === 0 ? k / q.groupSize : 0;
  const groups = q.scales.length;
  const lay = (v: Float32Array) => {
    if (!rowGroups) return { data: v, dims: [groups, 1] };
    const t = new Float32Array(v.length); // [N, G] -> [G, 1, N]
    for (let r = 0; r < n; r++) for (let gi = 0; gi < rowGroups; gi++) t[gi * n + r] = v[r * rowGroups + gi]!;
    return { data: t, dims: [rowGroups, 1, n] };
  };
  const grouped = rowGroups
    ? g.op(
        "Cast",
        [
          g.op(
            "Transpose",
            [g.op("Reshape", [codes, g.constant([n, rowGroups, q.groupSize])], {}, { name: `${p}/Rows` })],
            { perm: [1, 2, 0] },
            { name: `${p}/TransposeCodes` },
          ),
        ],
        { to: DataType.FLOAT },
        { name: `${p}/Float` },
      )
    : g.op("Cast", [g.op("Reshape", [codes, g.constant([groups, q.groupSize])], {}, { name: `${p}/Group` })], { to: DataType.FLOAT }, { name: `${p}/Float` });
  const scales = lay(q.scales);
  g.initializer(`${name}.scales`, scales.data, scales.dims);
  let paramBytes = 4 * q.scales.length;
  const zerosInit = () => {
    const z = lay(q.zeros!);
    g.initializer(`${name}.zeros`, z.data, z.dims);
    paramBytes += 4 * q.zeros!.length;
    return `${name}.zeros`;
  };
  let values: string;
  switch (q.convention) {
    case "symmetric":
      values = g.op("Mul", [g.op("Sub", [grouped, g.scalar(offset)], {}, { name: `${p}/Offset` }), `${name}.scales`], {}, { name: `${p}/Scale` });
      break;
    case "absmax127":
      values = g.op(
        "Mul",
        [
          g.op("Mul", [g.op("Sub", [grouped, g.scalar(offset)], {}, { name: `${p}/Offset` }), `${name}.scales`], {}, { name: `${p}/Scale` }),
          g.scalar(7.874015718698502e-3),
        ],
        {},
        { name: `${p}/Per127` },
      );
      break;
    case "affine":
      values = g.op("Mul", [g.op("Sub", [grouped, zerosInit()], {}, { name: `${p}/Zero` }), `${name}.scales`], {}, { name: `${p}/Scale` });
      break;
    case "shift":
      values = g.op("Sub", [g.op("Mul", [grouped, `${name}.scales`], {}, { name: `${p}/Scale` }), zerosInit()], {}, { name: `${p}/Shift` });
      break;
    case "float8":
    case "codebook": {
      const table = q.convention === "float8" ? Float32Array.from({ length: 256 }, (_, c) => fromFloat8E4M3(c) || 0) : q.codebook!;
      g.initializer(`${name}.codebook`, table, [table.length]);
      const index = g.op("Cast", [grouped], { to: DataType.INT32 }, { name: `${p}/Index` }); // Gather refuses uint8 indices
      values = g.op("Mul", [g.op("Gather", [`${name}.codebook`, index], { axis: 0 }, { name: `${p}/Lookup` }), `${name}.scales`], {}, { name: `${p}/Scale` });
      break;
    }
  }
  let weight = rowGroups
    ? g.op("Reshape", [values, g.constant([k, n])], {}, { name: `${p}/Weight` })
    : g.op("Transpose", [g.op("Reshape", [values, g.constant([n, k])], {}, { name: `${p}/Shape` })], { perm: [1, 0] }, { name: `${p}/Transpose` });
  if (!fp16Compute) {
    g.op("MatMul", [x, weight], {}, { name: `${p}/MatMul`, output: out });
    return storedBytes + paramBytes;
  }
  // fp16 compute (bitsandbytes' compute_dtype=float16): the dequantized weight, the activation and
  // the output are rounded to fp16; the product accumulates in fp32, as fp16 GEMMs do.
  const half = (v: string, label: string) =>
    g.op("Cast", [g.op("Cast", [v], { to: DataType.FLOAT16 }, { name: `${p}/${label}ToHalf` })], { to: DataType.FLOAT }, { name: `${p}/${label}FromHalf` });
  weight = half(weight, "Weight");
  const product = g.op("MatMul", [half(x, "Input"), weight], {}, { name: `${p}/MatMul` });
  g.op(
    "Cast",
    [g.op("Cast", [product], { to: DataType.FLOAT16 }, { name: `${p}/OutputToHalf` })],
    { to: DataType.FLOAT },
    { name: `${p}/OutputFromHalf`, output: out },
  );
  return storedBytes + paramBytes;
}

/**
 * PyTorch's dynamic int8 linear (fbgemm on x86): per call, the activation's min and max (widened
 * to include 0) give a uint8 scale and zero point over 0..127 (reduce_range), chosen in double
 * precision as ATen's ChooseQuantizationParams does; MatMulInteger accumulates in int32; the
 * result is rescaled by activation scale x weight scale. Weights int8, per tensor or per channel.
 */
export function emitTorchDynamic(g: GraphBuilder, x: string, out: string, name: string, q: QuantizedWeight, n: number, k: number): number {
  const wT = new Int8Array(n * k); // [K, N] for MatMulInteger
  for (let r = 0; r < n; r++) for (let c = 0; c < k; c++) wT[c * n + r] = q.codes[r * k + c]!;
  g.initializer(`${name}.qweight`, wT, [k, n], DataType.INT8);
  const perChannel = q.scales.length > 1;
  g.initializer(`${name}.scales`, q.scales, perChannel ? [n] : []);
  const D = DataType.DOUBLE;
  const toDouble = (v: string, label: string) => g.op("Cast", [v], { to: D }, { name: `${name}/quant/${label}` });
  const dconst = (v: number, label: string) => g.op("Cast", [g.scalar(v)], { to: D }, { name: `${name}/quant/${label}` });
  const zero = dconst(0, "Zero");
  const min = g.op(
    "Min",
    [toDouble(g.op("ReduceMin", [x], { keepdims: 0 }, { name: `${name}/quant/Act/Min` }), "Act/MinD"), zero],
    {},
    { name: `${name}/quant/Act/Min0` },
  );
  const max = g.op(
    "Max",
    [toDouble(g.op("ReduceMax", [x], { keepdims: 0 }, { name: `${name}/quant/Act/Max` }), "Act/MaxD"), zero],
    {},
    { name: `${name}/quant/Act/Max0` },
  );
  let scaleD = g.op("Div", [g.op("Sub", [max, min], {}, { name: `${name}/quant/Act/Range` }), dconst(127, "QRange")], {}, { name: `${name}/quant/Act/ScaleD` });
  const scaleF = g.op("Cast", [scaleD], { to: DataType.FLOAT }, { name: `${name}/quant/Act/ScaleF0` });
  const degenerate = g.op("Equal", [scaleF, g.scalar(0)], {}, { name: `${name}/quant/Act/ZeroScale` });
  scaleD = g.op("Where", [degenerate, dconst(0.1, "Fallback"), scaleD], {}, { name: `${name}/quant/Act/ScaleSafe` });
  const minScaled = g.op("Div", [min, scaleD], {}, { name: `${name}/quant/Act/MinScaled` });
  const maxScaled = g.op("Div", [max, scaleD], {}, { name: `${name}/quant/Act/MaxScaled` });
  const fromMin = g.op("Neg", [minScaled], {}, { name: `${name}/quant/Act/FromMin` }); // qmin - min/scale, qmin = 0
  const fromMax = g.op("Sub", [dconst(127, "QMax"), maxScaled], {}, { name: `${name}/quant/Act/FromMax` });
  const errMin = g.op("Neg", [g.op("Abs", [minScaled], {}, { name: `${name}/quant/Act/AbsMin` })], {}, { name: `${name}/quant/Act/ErrMin` });
  const errMax = g.op(
    "Sub",
    [dconst(127, "QMax2"), g.op("Abs", [maxScaled], {}, { name: `${name}/quant/Act/AbsMax` })],
    {},
    { name: `${name}/quant/Act/ErrMax` },
  );
  const initial = g.op(
    "Where",
    [g.op("Less", [errMin, errMax], {}, { name: `${name}/quant/Act/Pick` }), fromMin, fromMax],
    {},
    { name: `${name}/quant/Act/Initial` },
  );
  const zp = g.op(
    "Cast",
    [
      g.op(
        "Clip",
        [g.op("Round", [initial], {}, { name: `${name}/quant/Act/Round` }), dconst(0, "Lo"), dconst(127, "Hi")],
        {},
        { name: `${name}/quant/Act/Clip` },
      ),
    ],
    { to: DataType.UINT8 },
    { name: `${name}/quant/Act/ZeroPoint` },
  );
  const scale = g.op("Cast", [scaleD], { to: DataType.FLOAT }, { name: `${name}/quant/Act/Scale` });
  const xq = g.op("QuantizeLinear", [x, scale, zp], {}, { name: `${name}/quant/Act/Quantize` });
  const acc = g.op("MatMulInteger", [xq, `${name}.qweight`, zp], {}, { name: `${name}/quant/MatMulInteger` });
  const rescale = g.op("Mul", [scale, `${name}.scales`], {}, { name: `${name}/quant/Rescale` });
  g.op("Mul", [g.op("Cast", [acc], { to: DataType.FLOAT }, { name: `${name}/quant/AccFloat` }), rescale], {}, { name: `${name}/quant/Output`, output: out });
  return n * k + 4 * q.scales.length;
}

/**
 * int8 codes (float-valued, in [-128, 127]) times a layer's int8 weight codes, as int32 sums. Both
 * enter MatMulInteger as uint8 offset by 128 with zero point 128: the same sums exactly, on
 * onnxruntime's u8 x u8 kernel, which widens to 16 bits before it multiplies (its s8 x s8 path is
 * several times slower on x86 without VNNI, and its u8 x s8 path saturates pairs of products at 16
 * bits there). Stores `${name}.qweight` [K, N] (uint8, code + 128).
 */
export function emitInt8Gemm(g: GraphBuilder, codes: string, name: string, q: QuantizedWeight, n: number, k: number): string {
  const wT = new Uint8Array(n * k);
  for (let r = 0; r < n; r++) for (let c = 0; c < k; c++) wT[c * n + r] = q.codes[r * k + c]! + 128;
  g.initializer(`${name}.qweight`, wT, [k, n], DataType.UINT8);
  const zeroPoint = g.initializer(`${name}.zero_point`, Uint8Array.of(128), [], DataType.UINT8);
  const shifted = g.op(
    "Cast",
    [g.op("Add", [codes, g.scalar(128)], {}, { name: `${name}/quant/Shift` })],
    { to: DataType.UINT8 },
    { name: `${name}/quant/ToUint8` },
  );
  return g.op("MatMulInteger", [shifted, `${name}.qweight`, zeroPoint, zeroPoint], {}, { name: `${name}/quant/MatMulInteger` });
}

/**
 * bitsandbytes LLM.int8 (MatMul8bitLt, threshold 6.0) as its CPU kernels compute it: the input
 * rounded to fp16; elements with |x| >= threshold zeroed before each row's absmax; rows quantized
 * to int8 (round(x * 127 / absmax)), outlier columns zeroed; int8 GEMM (MatMulInteger) rescaled by
 * row absmax * weight absmax / 127^2, rounded to fp16; the outlier columns added back in floating
 * point against the dequantized weight columns (fp16), the sum rounded to fp16. The outlier path
 * multiplies by the dequantized weight, which onnxruntime materializes in fp32 at load.
 */
export function emitLlmInt8(g: GraphBuilder, x: string, out: string, name: string, q: QuantizedWeight, n: number, k: number, threshold = 6.0): number {
  const p = `${name}/quant`;
  g.initializer(`${name}.absmax`, q.scales, [1, n]);
  const half = (v: string, label: string) =>
    g.op("Cast", [g.op("Cast", [v], { to: DataType.FLOAT16 }, { name: `${p}/${label}ToHalf` })], { to: DataType.FLOAT }, { name: `${p}/${label}FromHalf` });
  const x2 = half(g.op("Reshape", [x, g.constant([-1, k])], {}, { name: `${p}/Flatten` }), "Input");
  const outlier = g.op("GreaterOrEqual", [g.op("Abs", [x2], {}, { name: `${p}/Abs` }), g.scalar(threshold)], {}, { name: `${p}/Outliers` });
  const outlierColumns = g.op(
    "ReduceMax",
    [g.op("Cast", [outlier], { to: DataType.FLOAT }, { name: `${p}/OutlierFloat` }), g.constant([0])],
    { keepdims: 1 },
    { name: `${p}/OutlierColumns` },
  ); // [1, K]
  const zeroed = g.op("Where", [outlier, g.scalar(0), x2], {}, { name: `${p}/ZeroOutliers` });
  const rowAbsmax = g.op("ReduceMax", [g.op("Abs", [zeroed], {}, { name: `${p}/AbsZeroed` }), g.constant([1])], { keepdims: 1 }, { name: `${p}/RowAbsmax` }); // [rows, 1]
  const factor = g.op("Div", [g.scalar(127), g.op("Max", [rowAbsmax, g.scalar(1e-30)], {}, { name: `${p}/SafeAbsmax` })], {}, { name: `${p}/Factor` });
  const keep = g.op("Sub", [g.scalar(1), outlierColumns], {}, { name: `${p}/KeepColumns` });
  const codes = g.op(
    "Mul",
    [g.op("Round", [g.op("Mul", [zeroed, factor], {}, { name: `${p}/Scale` })], {}, { name: `${p}/Round` }), keep],
    {},
    { name: `${p}/DropOutlierColumns` },
  );
  const acc = emitInt8Gemm(g, codes, name, q, n, k);
  const stats = g.op("Mul", [rowAbsmax, `${name}.absmax`], {}, { name: `${p}/Stats` });
  const int8Part = half(
    g.op(
      "Mul",
      [g.op("Mul", [g.op("Cast", [acc], { to: DataType.FLOAT }, { name: `${p}/AccFloat` }), stats], {}, { name: `${p}/Rescale` }), g.scalar(6.200124e-5)],
      {},
      { name: `${p}/Per127Squared` },
    ),
    "Int8Part",
  );
  // The floating path touches only the outlier columns (a handful, found per call): their inputs, and
  // the same rows of the int8 weight dequantized as bitsandbytes does. The same terms as a full
  // product over zeroed columns, summed in another order (numerics revision 3); no fp32 weight is held.
  const columns = g.op(
    "Reshape",
    [
      g.op("NonZero", [g.op("Reshape", [outlierColumns, g.constant([-1])], {}, { name: `${p}/OutlierMask` })], {}, { name: `${p}/OutlierIndices` }),
      g.constant([-1]),
    ],
    {},
    { name: `${p}/OutlierList` },
  );
  const weightRows = g.op("Gather", [`${name}.qweight`, columns], { axis: 0 }, { name: `${p}/OutlierWeightRows` }); // [outliers, N]
  const weight = half(
    g.op(
      "Mul",
      [
        g.op(
          "Mul",
          [
            g.op("Sub", [g.op("Cast", [weightRows], { to: DataType.FLOAT }, { name: `${p}/WeightFloat` }), g.scalar(128)], {}, { name: `${p}/WeightCodes` }),
            `${name}.absmax`,
          ],
          {},
          { name: `${p}/WeightScale` },
        ),
        g.scalar(7.874015718698502e-3),
      ],
      {},
      { name: `${p}/WeightPer127` },
    ),
    "Weight",
  );
  const outlierPart = half(
    g.op("MatMul", [g.op("Gather", [x2, columns], { axis: 1 }, { name: `${p}/OutlierInput` }), weight], {}, { name: `${p}/OutlierMatMul` }),
    "OutlierPart",
  );
  const sum = half(g.op("Add", [int8Part, outlierPart], {}, { name: `${p}/Sum` }), "Sum");
  const outShape = g.op("Concat", [g.op("Shape", [x], { end: -1 }, { name: `${p}/LeadingShape` }), g.constant([n])], { axis: 0 }, { name: `${p}/OutShape` });
  g.op("Reshape", [sum, outShape], {}, { name: `${p}/Unflatten`, output: out });
  return n * k + 4 * n;
}
