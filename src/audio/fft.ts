/**
 * Mixed-radix FFT for any size whose prime factors are small. Whisper's n_fft is 400 = 2^4 * 5^2,
 * which power-of-two FFT libraries refuse. Planned once (radices and twiddles), then run on many
 * frames with no allocation: a self-sorting (Stockham) decimation-in-time transform.
 *
 * Stage with radix r, after sub-transforms of length l (L = l r, input stride s = n / l, m = s / r):
 *   Y'_k[j + l p] = sum_q W_r^(pq) * W_L^(jq) * Y_(k + m q)[j],  j < l, k < m, p < r
 * with Y_k[j] stored at k + s j, so the last stage leaves X in natural order.
 */
interface Stage {
  radix: number;
  span: number; // l: length of the sub-transforms this stage combines
  twRe: Float64Array; // W_L^(j q) for j < l, 1 <= q < r, at j * (r - 1) + q - 1
  twIm: Float64Array;
  rootRe: Float64Array; // W_r^(p q mod r), p, q < r (generic radices only)
  rootIm: Float64Array;
}

function factorize(n: number): number[] {
  const factors: number[] = [];
  let rest = n;
  for (const p of [4, 2, 3, 5]) {
    while (rest % p === 0) {
      factors.push(p);
      rest /= p;
    }
  }
  for (let p = 7; rest > 1; p += 2) {
    while (rest % p === 0) {
      factors.push(p);
      rest /= p;
    }
  }
  return factors;
}

export class FFT {
  private readonly stages: Stage[] = [];
  private readonly bufRe: Float64Array; // ping-pong buffers
  private readonly bufIm: Float64Array;
  private readonly accRe: Float64Array; // one butterfly's inputs (generic radices)
  private readonly accIm: Float64Array;

  constructor(readonly n: number) {
    let span = 1;
    for (const radix of factorize(n)) {
      const L = span * radix;
      const twRe = new Float64Array(span * (radix - 1));
      const twIm = new Float64Array(span * (radix - 1));
      for (let j = 0; j < span; j++) {
        for (let q = 1; q < radix; q++) {
          const angle = (-2 * Math.PI * j * q) / L;
          twRe[j * (radix - 1) + q - 1] = Math.cos(angle);
          twIm[j * (radix - 1) + q - 1] = Math.sin(angle);
        }
      }
      const rootRe = new Float64Array(radix * radix);
      const rootIm = new Float64Array(radix * radix);
      for (let p = 0; p < radix; p++) {
        for (let q = 0; q < radix; q++) {
          const angle = (-2 * Math.PI * ((p * q) % radix)) / radix;
          rootRe[p * radix + q] = Math.cos(angle);
          rootIm[p * radix + q] = Math.sin(angle);
        }
      }
      this.stages.push({ radix, span, twRe, twIm, rootRe, rootIm });
      span = L;
    }
    this.bufRe = new Float64Array(n);
    this.bufIm = new Float64Array(n);
    const maxRadix = Math.max(1, ...this.stages.map((s) => s.radix));
    this.accRe = new Float64Array(maxRadix);
    this.accIm = new Float64Array(maxRadix);
  }

  /** Forward DFT: X[k] = sum_t x[t] exp(-2 pi i k t / n). The inputs are left unchanged. */
  transform(inRe: Float64Array, inIm: Float64Array, outRe: Float64Array, outIm: Float64Array): void {
    const n = this.n;
    // Alternate buffers so that the last stage writes `out`.
    let srcRe = inRe;
    let srcIm = inIm;
    for (let s = 0; s < this.stages.length; s++) {
      const toOut = (this.stages.length - 1 - s) % 2 === 0;
      const dstRe = toOut ? outRe : this.bufRe;
      const dstIm = toOut ? outIm : this.bufIm;
      this.stage(this.stages[s]!, srcRe, srcIm, dstRe, dstIm);
      srcRe = dstRe;
      srcIm = dstIm;
    }
    if (this.stages.length === 0) {
      outRe.set(inRe.subarray(0, n));
      outIm.set(inIm.subarray(0, n));
    }
  }

  private stage(st: Stage, aRe: Float64Array, aIm: Float64Array, bRe: Float64Array, bIm: Float64Array): void {
    const { radix: r, span: l, twRe, twIm, rootRe, rootIm } = st;
    const s = this.n / l;
    const m = s / r;
    const uRe = this.accRe;
    const uIm = this.accIm;
    for (let j = 0; j < l; j++) {
      const tw = j * (r - 1);
      for (let k = 0; k < m; k++) {
        const src = k + s * j;
        uRe[0] = aRe[src]!;
        uIm[0] = aIm[src]!;
        for (let q = 1; q < r; q++) {
          const xr = aRe[src + m * q]!;
          const xi = aIm[src + m * q]!;
          const wr = twRe[tw + q - 1]!;
          const wi = twIm[tw + q - 1]!;
          uRe[q] = xr * wr - xi * wi;
          uIm[q] = xr * wi + xi * wr;
        }
        const dst = k + m * j;
        const step = m * l; // between outputs p and p + 1
        if (r === 2) {
          bRe[dst] = uRe[0]! + uRe[1]!;
          bIm[dst] = uIm[0]! + uIm[1]!;
          bRe[dst + step] = uRe[0]! - uRe[1]!;
          bIm[dst + step] = uIm[0]! - uIm[1]!;
        } else if (r === 4) {
          // W_4 = -i: the four outputs are sums of the inputs rotated by multiples of -90 degrees.
          const s02r = uRe[0]! + uRe[2]!,
            s02i = uIm[0]! + uIm[2]!;
          const d02r = uRe[0]! - uRe[2]!,
            d02i = uIm[0]! - uIm[2]!;
          const s13r = uRe[1]! + uRe[3]!,
            s13i = uIm[1]! + uIm[3]!;
          const d13r = uRe[1]! - uRe[3]!,
            d13i = uIm[1]! - uIm[3]!;
          bRe[dst] = s02r + s13r;
          bIm[dst] = s02i + s13i;
          bRe[dst + step] = d02r + d13i; // d02 - i d13
          bIm[dst + step] = d02i - d13r;
          bRe[dst + 2 * step] = s02r - s13r;
          bIm[dst + 2 * step] = s02i - s13i;
          bRe[dst + 3 * step] = d02r - d13i; // d02 + i d13
          bIm[dst + 3 * step] = d02i + d13r;
        } else {
          for (let p = 0; p < r; p++) {
            let accR = 0;
            let accI = 0;
            for (let q = 0; q < r; q++) {
              const wr = rootRe[p * r + q]!;
              const wi = rootIm[p * r + q]!;
              accR += uRe[q]! * wr - uIm[q]! * wi;
              accI += uRe[q]! * wi + uIm[q]! * wr;
            }
            bRe[dst + p * step] = accR;
            bIm[dst + p * step] = accI;
          }
        }
      }
    }
  }
}

/**
 * DFT of a real frame of even length n, bins 0..n/2, through one complex FFT of length n/2:
 * even samples as the real part, odd as the imaginary, then the two halves separated.
 */
export class RealFFT {
  readonly bins: number;
  private readonly half: FFT;
  private readonly zRe: Float64Array;
  private readonly zIm: Float64Array;
  private readonly outRe: Float64Array;
  private readonly outIm: Float64Array;
  private readonly wRe: Float64Array; // exp(-2 pi i k / n), k <= n/2
  private readonly wIm: Float64Array;

  constructor(readonly n: number) {
    if (n % 2 !== 0) throw new Error(`RealFFT: n must be even, got ${n}`);
    const h = n / 2;
    this.bins = h + 1;
    this.half = new FFT(h);
    this.zRe = new Float64Array(h);
    this.zIm = new Float64Array(h);
    this.outRe = new Float64Array(h);
    this.outIm = new Float64Array(h);
    this.wRe = new Float64Array(h + 1);
    this.wIm = new Float64Array(h + 1);
    for (let k = 0; k <= h; k++) {
      this.wRe[k] = Math.cos((2 * Math.PI * k) / n);
      this.wIm[k] = -Math.sin((2 * Math.PI * k) / n);
    }
  }

  /** X[k] for k = 0..n/2 of the real frame x[0..n). */
  transform(x: Float64Array, re: Float64Array, im: Float64Array): void {
    const h = this.n / 2;
    for (let j = 0; j < h; j++) {
      this.zRe[j] = x[2 * j]!;
      this.zIm[j] = x[2 * j + 1]!;
    }
    this.half.transform(this.zRe, this.zIm, this.outRe, this.outIm);
    const Zr = this.outRe;
    const Zi = this.outIm;
    for (let k = 0; k <= h; k++) {
      const a = k % h;
      const b = (h - k) % h;
      // Even part E = (Z[k] + conj Z[h-k]) / 2, odd part O = (Z[k] - conj Z[h-k]) / 2i.
      const er = (Zr[a]! + Zr[b]!) / 2;
      const ei = (Zi[a]! - Zi[b]!) / 2;
      const or = (Zi[a]! + Zi[b]!) / 2;
      const oi = -(Zr[a]! - Zr[b]!) / 2;
      const wr = this.wRe[k]!;
      const wi = this.wIm[k]!;
      re[k] = er + wr * or - wi * oi;
      im[k] = ei + wr * oi + wi * or;
    }
  }
}
