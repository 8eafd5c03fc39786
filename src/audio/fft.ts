/**
 * Mixed-radix Cooley-Tukey FFT for any size whose prime factors are small. Whisper's n_fft is
 * 400 = 2^4 * 5^2, which power-of-two FFT libraries refuse. Plan once, transform many frames.
 */
export class FFT {
  private readonly factors: number[] = [];
  private readonly cos: Float64Array; // cos(2 pi j / n)
  private readonly sin: Float64Array; // sin(2 pi j / n); the forward transform uses exp(-i ...)
  private readonly tmpRe: Float64Array;
  private readonly tmpIm: Float64Array;

  constructor(readonly n: number) {
    let rest = n;
    for (const p of [4, 2, 3, 5, 7]) {
      while (rest % p === 0) {
        this.factors.push(p);
        rest /= p;
      }
    }
    for (let p = 11; rest > 1; p += 2) {
      while (rest % p === 0) {
        this.factors.push(p);
        rest /= p;
      }
    }
    this.cos = new Float64Array(n);
    this.sin = new Float64Array(n);
    for (let j = 0; j < n; j++) {
      this.cos[j] = Math.cos((2 * Math.PI * j) / n);
      this.sin[j] = Math.sin((2 * Math.PI * j) / n);
    }
    const maxRadix = Math.max(1, ...this.factors);
    this.tmpRe = new Float64Array(maxRadix);
    this.tmpIm = new Float64Array(maxRadix);
  }

  /** Forward DFT: X[k] = sum_t x[t] exp(-2 pi i k t / n). */
  transform(inRe: Float64Array, inIm: Float64Array, outRe: Float64Array, outIm: Float64Array): void {
    this.recurse(inRe, inIm, 0, 1, outRe, outIm, 0, this.n, 0);
  }

  private recurse(xr: Float64Array, xi: Float64Array, xOff: number, stride: number, yr: Float64Array, yi: Float64Array, yOff: number, n: number, depth: number): void {
    if (n === 1) {
      yr[yOff] = xr[xOff]!;
      yi[yOff] = xi[xOff]!;
      return;
    }
    const r = this.factors[depth]!;
    const m = n / r;
    for (let q = 0; q < r; q++) this.recurse(xr, xi, xOff + q * stride, stride * r, yr, yi, yOff + q * m, m, depth + 1);
    const N = this.n;
    const step = N / n; // W_n^x = W_N^(x * step)
    const radixStep = N / r;
    const tr = this.tmpRe;
    const ti = this.tmpIm;
    for (let k = 0; k < m; k++) {
      for (let q = 0; q < r; q++) {
        const idx = (q * k * step) % N;
        const c = this.cos[idx]!;
        const s = -this.sin[idx]!;
        const ar = yr[yOff + q * m + k]!;
        const ai = yi[yOff + q * m + k]!;
        tr[q] = ar * c - ai * s;
        ti[q] = ar * s + ai * c;
      }
      for (let s = 0; s < r; s++) {
        let accR = 0;
        let accI = 0;
        for (let q = 0; q < r; q++) {
          const idx = ((q * s) % r) * radixStep;
          const c = this.cos[idx]!;
          const sn = -this.sin[idx]!;
          accR += tr[q]! * c - ti[q]! * sn;
          accI += tr[q]! * sn + ti[q]! * c;
        }
        yr[yOff + k + m * s] = accR;
        yi[yOff + k + m * s] = accI;
      }
    }
  }
}
