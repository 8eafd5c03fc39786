/**
 * The study's figures as Plotly specifications (data + layout), built from result rows alone
 * (pure functions; src/report/write.ts renders them to HTML, PNG and SVG). Every axis names its
 * unit; a smoke run carries a stamp across the plot.
 */
import { calibrationUtterances, cleanRows, type ResultRow } from "./rows.js";

export interface Figure {
  id: string; // file stem: figures/<id>.html|png|svg
  title: string;
  data: Array<Record<string, unknown>>;
  layout: Record<string, unknown>;
  width: number;
  height: number;
}

const LIBRARY_COLORS: Record<string, string> = { none: "#222222", pytorch: "#d62728", quanto: "#1f77b4", hqq: "#2ca02c", bitsandbytes: "#9467bd" };
const MODEL_SYMBOLS = ["circle", "diamond", "square", "triangle-up"];
const MODEL_SYMBOL_NAMES = ["circles", "diamonds", "squares", "triangles"];
const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"];

const clean = cleanRows;

/** Plotly error bars from each row's 95 % bootstrap interval of its WER. */
const werErrorBars = (pts: ResultRow[]) => ({
  type: "data",
  symmetric: false,
  array: pts.map((r) => Math.max(0, r.werHigh - r.wer)),
  arrayminus: pts.map((r) => Math.max(0, r.wer - r.werLow)),
  thickness: 1.2,
  width: 3,
});

function baseLayout(title: string, smoke: string | null): Record<string, unknown> {
  return {
    title: { text: title, x: 0.02, xanchor: "left", font: { size: 16 } },
    font: { family: "Arial, sans-serif", size: 12 },
    paper_bgcolor: "white",
    plot_bgcolor: "white",
    margin: { l: 70, r: 20, t: 70, b: 70 },
    legend: { orientation: "v", x: 1.02, y: 1, xanchor: "left", font: { size: 11 } },
    annotations: smoke
      ? [{ text: smoke, xref: "paper", yref: "paper", x: 0.5, y: 0.5, showarrow: false, textangle: -20, opacity: 0.25, font: { size: 30, color: "#cc0000" } }]
      : [],
  };
}

/** A log WER axis labelled 1, 2, 5, 10, 20, ... in full (Plotly's default shows only leading digits). */
const LOG_WER_TICKS = {
  type: "log",
  tickvals: [0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000],
  ticktext: ["0.5", "1", "2", "5", "10", "20", "50", "100", "200", "500", "1000", "2000"],
};

const axis = (title: string, extra: Record<string, unknown> = {}) => ({
  title: { text: title },
  showgrid: true,
  gridcolor: "#e5e5e5",
  zeroline: false,
  linecolor: "#444",
  mirror: true,
  ...extra,
});

/** Points not dominated in (size, WER): the lower-left frontier, in size order. */
export function paretoFront<T>(points: T[], x: (p: T) => number, y: (p: T) => number): T[] {
  const sorted = [...points].sort((a, b) => x(a) - x(b) || y(a) - y(b));
  const front: T[] = [];
  let best = Infinity;
  for (const p of sorted) {
    if (y(p) < best) {
      front.push(p);
      best = y(p);
    }
  }
  return front;
}

/** Side-by-side panels, one per split: x/y axis names for panel i. */
function panels(count: number, gap = 0.08): Array<{ x: string; y: string; domain: [number, number] }> {
  const w = (1 - gap * (count - 1)) / count;
  return Array.from({ length: count }, (_, i) => ({
    x: i === 0 ? "x" : `x${i + 1}`,
    y: i === 0 ? "y" : `y${i + 1}`,
    domain: [i * (w + gap), i * (w + gap) + w] as [number, number],
  }));
}

function panelAxes(
  layout: Record<string, unknown>,
  ps: ReturnType<typeof panels>,
  xTitles: string[],
  yTitle: string,
  titles: string[],
  extra: { x?: Record<string, unknown>; y?: Record<string, unknown> } = {},
): void {
  const annotations = layout.annotations as Array<Record<string, unknown>>;
  ps.forEach((p, i) => {
    const suffix = i === 0 ? "" : String(i + 1);
    layout[`xaxis${suffix}`] = axis(xTitles[i] ?? xTitles[0]!, { domain: p.domain, anchor: p.y, ...extra.x });
    layout[`yaxis${suffix}`] = axis(i === 0 ? yTitle : "", { anchor: p.x, ...extra.y });
    annotations.push({
      text: `<b>${titles[i]}</b>`,
      xref: "paper",
      yref: "paper",
      x: (p.domain[0] + p.domain[1]) / 2,
      y: 1.0,
      yanchor: "bottom",
      showarrow: false,
      font: { size: 13 },
    });
  });
}

export function werVsSizeFigure(rows: ResultRow[], smoke: string | null): Figure {
  const rs = clean(rows).filter((r) => r.parameterMB !== null);
  const splits = [...new Set(rs.map((r) => r.split))].sort();
  const models = [...new Set(rs.map((r) => r.model))].sort();
  const ps = panels(Math.max(1, splits.length));
  const data: Array<Record<string, unknown>> = [];
  const shown = new Set<string>();
  splits.forEach((split, i) => {
    const here = rs.filter((r) => r.split === split);
    for (const library of [...new Set(here.map((r) => r.library))]) {
      const pts = here.filter((r) => r.library === library);
      data.push({
        type: "scatter",
        mode: "markers",
        name: library === "none" ? "fp32 baseline" : library,
        legendgroup: library,
        showlegend: !shown.has(library),
        x: pts.map((r) => r.parameterMB),
        y: pts.map((r) => r.wer),
        error_y: { ...werErrorBars(pts), color: LIBRARY_COLORS[library] ?? "#555" },
        text: pts.map((r) => `${r.model} ${r.recipe} (95 % CI ${r.werLow.toFixed(2)}-${r.werHigh.toFixed(2)})`),
        hovertemplate: "%{text}<br>%{x:.1f} MB, WER %{y:.2f} %<extra></extra>",
        marker: {
          color: LIBRARY_COLORS[library] ?? "#555",
          size: 9,
          symbol: pts.map((r) => MODEL_SYMBOLS[models.indexOf(r.model) % MODEL_SYMBOLS.length]),
          line: { width: 1, color: "white" },
        },
        xaxis: ps[i]!.x,
        yaxis: ps[i]!.y,
      });
      shown.add(library);
    }
    const front = paretoFront(
      here,
      (r) => r.parameterMB!,
      (r) => r.wer,
    );
    data.push({
      type: "scatter",
      mode: "lines",
      name: "Pareto front",
      legendgroup: "pareto",
      showlegend: i === 0,
      x: front.map((r) => r.parameterMB),
      y: front.map((r) => r.wer),
      line: { color: "#444", dash: "dot", width: 1.5 },
      hoverinfo: "skip",
      xaxis: ps[i]!.x,
      yaxis: ps[i]!.y,
    });
  });
  const layout = baseLayout(
    `F1. WER (95 % CI bars) against model size, coloured by library (${models.map((m, i) => `${MODEL_SYMBOL_NAMES[i % MODEL_SYMBOL_NAMES.length]}: ${m}`).join(", ")})`,
    smoke,
  );
  // Loops push WER past 100 %: a log axis keeps the good recipes readable.
  panelAxes(layout, ps, ["parameter size (MB)"], "WER (%)", splits, { y: LOG_WER_TICKS });
  return { id: "F1-wer-vs-size", title: "WER against model size", data, layout, width: 1100, height: 520 };
}

/** The numeric bit width of a weight format ("8 (float8 e4m3fn)" -> 8); null for the static grid's pairs. */
export function weightBits(bits: string): number | null {
  if (bits.includes(" x ")) return null;
  const n = parseFloat(bits);
  return Number.isFinite(n) ? n : null;
}

/** One panel per model: a method's line never joins two models' points, and each panel has its own fp32. */
export function werVsBitsFigure(rows: ResultRow[], smoke: string | null): Figure {
  const rs = clean(rows).filter((r) => weightBits(r.bits) !== null);
  const splits = [...new Set(rs.map((r) => r.split))].sort();
  const models = [...new Set(rs.map((r) => r.model))].sort();
  const ps = panels(Math.max(1, models.length));
  const data: Array<Record<string, unknown>> = [];
  const shown = new Set<string>(); // one legend entry per name, as in F1
  const legendOnce = (name: string): boolean => {
    if (shown.has(name)) return false;
    shown.add(name);
    return true;
  };
  const methods = [...new Set(rs.filter((r) => r.recipe !== "fp32").map((r) => `${r.library} ${r.scheme}`))];
  const dash = (si: number) => (si === 0 ? "solid" : si === 1 ? "dash" : "dot");
  models.forEach((model, pi) => {
    const here = rs.filter((r) => r.model === model);
    methods.forEach((method, mi) => {
      splits.forEach((split, si) => {
        const pts = here.filter((r) => `${r.library} ${r.scheme}` === method && r.split === split).sort((a, b) => weightBits(b.bits)! - weightBits(a.bits)!);
        if (!pts.length) return;
        const name = `${method}, ${split}`;
        data.push({
          type: "scatter",
          mode: "lines+markers",
          name,
          legendgroup: name,
          showlegend: legendOnce(name),
          x: pts.map((r) => weightBits(r.bits)),
          y: pts.map((r) => r.wer),
          error_y: { ...werErrorBars(pts), color: PALETTE[mi % PALETTE.length] },
          text: pts.map((r) => `${r.model} ${r.recipe} (95 % CI ${r.werLow.toFixed(2)}-${r.werHigh.toFixed(2)})`),
          hovertemplate: "%{text}<br>%{x} bits, WER %{y:.2f} %<extra></extra>",
          line: { color: PALETTE[mi % PALETTE.length], dash: dash(si) },
          marker: { size: 8, symbol: si === 0 ? "circle" : "diamond" },
          xaxis: ps[pi]!.x,
          yaxis: ps[pi]!.y,
        });
      });
    });
    for (const [si, split] of splits.entries()) {
      const base = here.find((r) => r.recipe === "fp32" && r.split === split);
      if (!base) continue;
      const name = `fp32 baseline, ${split}`;
      data.push({
        type: "scatter",
        mode: "lines",
        name,
        legendgroup: name,
        showlegend: legendOnce(name),
        x: [1, 8],
        y: [base.wer, base.wer],
        line: { color: "#222", dash: dash(si), width: 1 },
        xaxis: ps[pi]!.x,
        yaxis: ps[pi]!.y,
      });
    }
  });
  const layout = baseLayout(
    `F2. WER (95 % CI bars) against weight bit width, per method and model (${splits.map((s, i) => `${dash(i)}: ${s}`).join(", ")})`,
    smoke,
  );
  panelAxes(layout, ps, ["weight bit width (bits)"], "WER (%)", models, {
    x: { tickvals: [1, 2, 3, 4, 8], type: "linear", range: [0.5, 8.5] },
    y: LOG_WER_TICKS,
  });
  return { id: "F2-wer-vs-bits", title: "WER against bit width", data, layout, width: 1100 + 300 * Math.max(0, models.length - 1), height: 560 };
}

export function speedMemoryFigure(rows: ResultRow[], smoke: string | null): Figure {
  const rs = clean(rows).filter((r) => r.rtfx !== null);
  const models = [...new Set(rs.map((r) => r.model))];
  const ps = panels(2, 0.1);
  const data: Array<Record<string, unknown>> = [];
  models.forEach((model, mi) => {
    const byRecipe = new Map<string, ResultRow[]>();
    for (const r of rs.filter((x) => x.model === model)) byRecipe.set(r.recipe, [...(byRecipe.get(r.recipe) ?? []), r]);
    const recipes = [...byRecipe.keys()];
    const mean = (xs: ResultRow[], f: (r: ResultRow) => number | null) => xs.reduce((a, r) => a + (f(r) ?? 0), 0) / xs.length;
    const color = PALETTE[mi % PALETTE.length];
    data.push({
      type: "bar",
      orientation: "h",
      name: model,
      legendgroup: model,
      y: recipes,
      x: recipes.map((k) => mean(byRecipe.get(k)!, (r) => r.rtfx)),
      marker: { color },
      xaxis: ps[0]!.x,
      yaxis: ps[0]!.y,
      hovertemplate: "%{y}: RTFx %{x:.1f}<extra></extra>",
    });
    data.push({
      type: "bar",
      orientation: "h",
      name: model,
      legendgroup: model,
      showlegend: false,
      y: recipes,
      x: recipes.map((k) => Math.max(...byRecipe.get(k)!.map((r) => r.peakRssMB ?? 0))),
      marker: { color },
      xaxis: ps[1]!.x,
      yaxis: ps[1]!.y,
      hovertemplate: "%{y}: %{x:.0f} MB<extra></extra>",
    });
  });
  const layout = baseLayout("F3. Speed (RTFx: audio seconds per wall second, higher is faster) and peak memory per recipe", smoke);
  panelAxes(layout, ps, ["RTFx (audio s per wall s)", "peak resident memory (MB)"], "", ["speed", "memory"]);
  (layout.yaxis as Record<string, unknown>).automargin = true;
  (layout.yaxis2 as Record<string, unknown>).showticklabels = false;
  layout.barmode = "group";
  layout.margin = { l: 160, r: 20, t: 80, b: 60 };
  const recipesShown = new Set(rs.map((r) => r.recipe)).size;
  return {
    id: "F3-speed-memory",
    title: "Speed and memory",
    data,
    layout,
    width: 1100,
    height: Math.max(420, 120 + recipesShown * 22 * Math.max(1, models.length)),
  };
}

/** Counts of `values` in `bins` equal bins over [lo, hi] (the ends included), with the bin centers. */
export function binCounts(values: Float32Array, lo: number, hi: number, bins: number): { centers: number[]; counts: number[]; width: number } {
  const width = (hi - lo) / bins || 1;
  const counts = new Array<number>(bins).fill(0);
  for (const v of values) counts[Math.min(bins - 1, Math.max(0, Math.floor((v - lo) / width)))]!++;
  return { centers: counts.map((_, i) => lo + (i + 0.5) * width), counts, width };
}

export interface ErrorHistogramInput {
  layer: string; // which weight
  weights: Float32Array;
  errors: Array<{ label: string; values: Float32Array /* dequantized - original */ }>;
}

export function weightErrorFigure(input: ErrorHistogramInput, smoke: string | null): Figure {
  const ps = panels(2, 0.1);
  // binned here: a Plotly histogram trace would carry every element (50 MB of HTML for one layer)
  const errorRange = Math.max(...input.errors.map((e) => e.values.reduce((m, v) => Math.max(m, Math.abs(v)), 0)));
  const bars = (values: Float32Array, lo: number, hi: number) => {
    const b = binCounts(values, lo, hi, 120);
    return { x: b.centers, y: b.counts, width: b.width };
  };
  const wMax = input.weights.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  const data: Array<Record<string, unknown>> = [
    { type: "bar", name: "weights", ...bars(input.weights, -wMax, wMax), marker: { color: "#555" }, xaxis: ps[0]!.x, yaxis: ps[0]!.y },
    ...input.errors.map((e, i) => ({
      type: "bar",
      name: `error, ${e.label}`,
      ...bars(e.values, -errorRange, errorRange),
      opacity: 0.6,
      marker: { color: PALETTE[i % PALETTE.length] },
      xaxis: ps[1]!.x,
      yaxis: ps[1]!.y,
    })),
  ];
  const layout = baseLayout(`F4. Weights of ${input.layer} and their quantization error per scheme`, smoke);
  panelAxes(layout, ps, ["weight value (dimensionless)", "error (dequantized - original)"], "count (elements)", ["weights", "quantization error"]);
  layout.barmode = "overlay";
  return { id: "F4-weight-error-histograms", title: "Weight and error histograms", data, layout, width: 1100, height: 500 };
}

/** F5: WER against SNR per recipe, with each point's 95 % bootstrap interval; stars: the same recipe on clean audio. */
export function werVsSnrFigure(rows: ResultRow[], smoke: string | null): Figure {
  const noisy = rows.filter((r) => r.noise !== null);
  const data: Array<Record<string, unknown>> = [];
  const groups = [...new Set(noisy.map((r) => `${r.model} ${r.recipe} ${r.noise!.split(":")[0]}`))];
  const snrs = [...new Set(noisy.map((r) => r.noiseSnrDb!))].sort((a, b) => a - b);
  const cleanX = snrs.length ? Math.max(...snrs) + 10 : 0;
  groups.forEach((g, i) => {
    const pts = noisy.filter((r) => `${r.model} ${r.recipe} ${r.noise!.split(":")[0]}` === g).sort((a, b) => a.noiseSnrDb! - b.noiseSnrDb!);
    const cleanRow = rows.find((r) => r.noise === null && `${r.model} ${r.recipe}` === `${pts[0]!.model} ${pts[0]!.recipe}` && r.split === pts[0]!.split);
    // recipes side by side at each SNR, so that their bars do not hide each other
    const dx = (i - (groups.length - 1) / 2) * 0.5;
    data.push({
      type: "scatter",
      mode: "lines+markers",
      name: g,
      x: pts.map((r) => r.noiseSnrDb! + dx),
      y: pts.map((r) => r.wer),
      error_y: { ...werErrorBars(pts), color: PALETTE[i % PALETTE.length] },
      text: pts.map((r) => `${g} at ${r.noiseSnrDb} dB: ${r.wer.toFixed(2)} % (${r.werLow.toFixed(2)}-${r.werHigh.toFixed(2)}), ${r.utterances} utterances`),
      hovertemplate: "%{text}<extra></extra>",
      line: { color: PALETTE[i % PALETTE.length] },
    });
    if (cleanRow)
      data.push({
        type: "scatter",
        mode: "markers",
        name: `${pts[0]!.model} ${pts[0]!.recipe}, clean`,
        x: [cleanX + dx],
        y: [cleanRow.wer],
        error_y: { ...werErrorBars([cleanRow]), color: PALETTE[i % PALETTE.length] },
        marker: { color: PALETTE[i % PALETTE.length], symbol: "star", size: 11 },
      });
  });
  const layout = baseLayout("F5. WER against signal-to-noise ratio per recipe, 95 % bootstrap intervals (stars: clean audio)", smoke);
  layout.xaxis = axis("signal-to-noise ratio (dB)", { tickvals: [...snrs, cleanX], ticktext: [...snrs.map(String), "clean"] });
  layout.yaxis = axis("WER (%)");
  return { id: "F5-wer-vs-snr", title: "WER under noise", data, layout, width: 1100, height: 520 };
}

export interface SensitivityPoint {
  block: string; // e.g. "model.encoder.layers.2"
  row: ResultRow; // the run with only this block quantized; its versusFp32 is the paired difference drawn
}

/** F6: per block, the paired WER difference against fp32 when only that block is quantized, with its 95 % interval. */
export function sensitivityFigure(points: SensitivityPoint[], recipe: string, smoke: string | null): Figure {
  const compared = points.filter((p) => p.row.versusFp32 !== null);
  const colour = (p: SensitivityPoint) => (p.block.includes("encoder") ? "#1f77b4" : p.block.includes("decoder") ? "#ff7f0e" : "#7f7f7f");
  const data: Array<Record<string, unknown>> = [
    {
      type: "scatter",
      mode: "markers",
      name: `WER change with only this block quantized (${recipe})`,
      x: compared.map((p) => p.block.replace("model.", "")),
      y: compared.map((p) => p.row.versusFp32!.difference),
      error_y: {
        type: "data",
        symmetric: false,
        array: compared.map((p) => Math.max(0, p.row.versusFp32!.high - p.row.versusFp32!.difference)),
        arrayminus: compared.map((p) => Math.max(0, p.row.versusFp32!.difference - p.row.versusFp32!.low)),
        color: "#444",
        thickness: 1.3,
        width: 4,
      },
      // filled: Holm-corrected p below 0.05; hollow: inside the noise
      marker: {
        size: 10,
        color: compared.map((p) => (p.row.versusFp32!.significant ? colour(p) : "white")),
        line: { color: compared.map(colour), width: 2 },
      },
      text: compared.map(
        (p) =>
          `${p.block}: ${p.row.versusFp32!.difference.toFixed(2)} (${p.row.versusFp32!.low.toFixed(2)}, ${p.row.versusFp32!.high.toFixed(2)}) points, ${p.row.versusFp32!.utterances} utterances`,
      ),
      hovertemplate: "%{text}<extra></extra>",
    },
  ];
  const layout = baseLayout(
    `F6. Per-block sensitivity (${recipe}): WER minus fp32's with one block alone quantized<br><sup>95 % paired bootstrap intervals; blue: encoder, orange: decoder; filled: Holm-corrected p < 0.05</sup>`,
    smoke,
  );
  layout.margin = { l: 70, r: 20, t: 90, b: 70 };
  layout.xaxis = axis("quantized block", { tickangle: -35, automargin: true });
  layout.yaxis = axis("WER difference vs fp32 (percentage points)", { zeroline: true, zerolinecolor: "#222" });
  layout.showlegend = false;
  return { id: "F6-layer-sensitivity", title: "Per-layer sensitivity", data, layout, width: 1100, height: 520 };
}

/** The most frequent value (the smaller one on a tie). */
function modalValue(values: readonly number[]): number | undefined {
  const counts = new Map<number, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0]?.[0];
}

/** Differences beyond this many points are drawn at the edge with their value: collapsed recipes would squeeze the rest to a line. */
const DIFFERENCE_AXIS_CAP = 40;

/**
 * F8: each recipe's paired WER difference against fp32 on the same utterances, with its 95 %
 * interval, sorted, one panel per split: the study's question at a glance. Filled markers: Holm-
 * corrected p below 0.05; hollow: inside the noise.
 */
export function pairedDifferenceFigure(rows: ResultRow[], smoke: string | null): Figure {
  const rs = clean(rows).filter((r) => r.versusFp32 !== null);
  const splits = [...new Set(rs.map((r) => r.split))].sort();
  const models = [...new Set(rs.map((r) => r.model))].sort();
  // one category per run: the recipe, with the model where there are several and the calibration size where a recipe ran with several
  const base = (r: ResultRow) => (models.length > 1 ? `${r.model} ${r.recipe}` : r.recipe);
  const repeated = new Set(rs.filter((r, i) => rs.findIndex((x) => x.split === r.split && base(x) === base(r)) !== i).map((r) => `${r.split}\u0000${base(r)}`));
  // a run paired on fewer utterances than most of its panel (loop-prone recipes) says so in its label
  const usual = new Map(splits.map((split) => [split, modalValue(rs.filter((r) => r.split === split).map((r) => r.versusFp32!.utterances))]));
  const label = (r: ResultRow) =>
    (repeated.has(`${r.split}\u0000${base(r)}`)
      ? `${base(r)} (${calibrationUtterances(r) !== null ? `calibrated on ${calibrationUtterances(r)}` : r.key.slice(0, 6)})`
      : base(r)) + (r.versusFp32!.utterances !== usual.get(r.split) ? `, ${r.versusFp32!.utterances} utt.` : "");
  const ps = panels(Math.max(1, splits.length), 0.22);
  const data: Array<Record<string, unknown>> = [];
  const onScale = (r: ResultRow) => Math.abs(r.versusFp32!.difference) <= DIFFERENCE_AXIS_CAP;
  const lows = rs.filter(onScale).map((r) => Math.max(-DIFFERENCE_AXIS_CAP, r.versusFp32!.low));
  const highs = rs.filter(onScale).map((r) => Math.min(DIFFERENCE_AXIS_CAP, r.versusFp32!.high));
  const span = Math.max(1, ...highs, ...lows.map((v) => -v));
  const range = [Math.min(-1, ...lows) - 0.08 * span, Math.max(1, ...highs) + 0.3 * span];
  let tallest = 1;
  const orders: string[][] = []; // per panel, bottom to top: the largest difference on top
  splits.forEach((split, i) => {
    const here = rs.filter((r) => r.split === split).sort((a, b) => b.versusFp32!.difference - a.versusFp32!.difference);
    tallest = Math.max(tallest, here.length);
    orders.push([...here].reverse().map(label));
    for (const significant of [true, false]) {
      const pts = here.filter((r) => r.versusFp32!.significant === significant && onScale(r));
      data.push({
        type: "scatter",
        mode: "markers",
        name: significant ? "differs from fp32 (Holm-corrected p < 0.05)" : "not significant after Holm's correction (bars: unadjusted 95 % intervals)",
        legendgroup: String(significant),
        showlegend: i === 0,
        y: pts.map(label),
        x: pts.map((r) => r.versusFp32!.difference),
        error_x: {
          type: "data",
          symmetric: false,
          array: pts.map((r) => Math.max(0, r.versusFp32!.high - r.versusFp32!.difference)),
          arrayminus: pts.map((r) => Math.max(0, r.versusFp32!.difference - r.versusFp32!.low)),
          color: significant ? "#c0392b" : "#555",
          thickness: 1.3,
          width: 3,
        },
        text: pts.map(
          (r) =>
            `${label(r)}: ${r.versusFp32!.difference.toFixed(2)} (${r.versusFp32!.low.toFixed(2)}, ${r.versusFp32!.high.toFixed(2)}) points, ${r.utterances} utterances`,
        ),
        hovertemplate: "%{text}<extra></extra>",
        marker: { size: 8, color: significant ? "#c0392b" : "white", line: { color: significant ? "#c0392b" : "#555", width: 1.5 } },
        xaxis: ps[i]!.x,
        yaxis: ps[i]!.y,
      });
    }
    // off the scale (collapsed recipes): their value as text at the edge, no marker
    const beyond = here.filter((r) => !onScale(r));
    if (beyond.length)
      data.push({
        type: "scatter",
        mode: "text",
        showlegend: false,
        y: beyond.map(label),
        x: beyond.map((r) => (r.versusFp32!.difference > 0 ? range[1]! : range[0]!)),
        text: beyond.map((r) =>
          r.versusFp32!.difference > 0
            ? `+${r.versusFp32!.difference.toFixed(0)} (${r.versusFp32!.low.toFixed(0)}, ${r.versusFp32!.high.toFixed(0)}) ▸`
            : `◂ ${r.versusFp32!.difference.toFixed(0)}`,
        ),
        textposition: beyond.map((r) => (r.versusFp32!.difference > 0 ? "middle left" : "middle right")),
        textfont: { size: 10, color: "#c0392b" },
        hoverinfo: "skip",
        xaxis: ps[i]!.x,
        yaxis: ps[i]!.y,
      });
  });
  const layout = baseLayout("F8. Each recipe's WER minus fp32's on the same utterances, with its 95 % paired bootstrap interval", smoke);
  panelAxes(layout, ps, ["WER difference vs fp32 (percentage points)"], "", splits, {
    x: { range, zeroline: true, zerolinecolor: "#222" },
    y: { type: "category", automargin: true, tickfont: { size: 11 } },
  });
  for (const [i, order] of orders.entries())
    Object.assign(layout[`yaxis${i === 0 ? "" : i + 1}`] as Record<string, unknown>, { categoryorder: "array", categoryarray: order });
  layout.legend = { orientation: "h", x: 0, y: -0.1, yanchor: "top" };
  layout.margin = { l: 70, r: 20, t: 70, b: 120 };
  return { id: "F8-paired-difference", title: "Paired WER difference against fp32", data, layout, width: 1100, height: Math.max(460, 180 + 24 * tallest) };
}

/** F9: static recipes' WER (95 % CI bars) against the number of calibration utterances, per split. */
export function calibrationSizeFigure(rows: ResultRow[], smoke: string | null): Figure {
  const sized = clean(rows).filter((r) => calibrationUtterances(r) !== null);
  const splits = [...new Set(sized.map((r) => r.split))].sort();
  const series = [...new Set(sized.map((r) => `${r.model} ${r.recipe}`))].sort();
  const ps = panels(Math.max(1, splits.length), 0.1);
  const data: Array<Record<string, unknown>> = [];
  splits.forEach((split, i) => {
    series.forEach((name, si) => {
      const pts = sized
        .filter((r) => r.split === split && `${r.model} ${r.recipe}` === name)
        .sort((a, b) => calibrationUtterances(a)! - calibrationUtterances(b)!);
      if (!pts.length) return;
      data.push({
        type: "scatter",
        mode: "lines+markers",
        name,
        legendgroup: name,
        showlegend: i === 0,
        x: pts.map(calibrationUtterances),
        y: pts.map((r) => r.wer),
        error_y: { ...werErrorBars(pts), color: PALETTE[si % PALETTE.length] },
        line: { color: PALETTE[si % PALETTE.length] },
        marker: { size: 8 },
        text: pts.map(
          (r) =>
            `${name}: ${calibrationUtterances(r)} calibration utterances, WER ${r.wer.toFixed(2)} % (${r.werLow.toFixed(2)}-${r.werHigh.toFixed(2)}), ${r.runaways} loops`,
        ),
        hovertemplate: "%{text}<extra></extra>",
        xaxis: ps[i]!.x,
        yaxis: ps[i]!.y,
      });
    });
    const base = clean(rows).find((r) => r.recipe === "fp32" && r.split === split);
    const xs = sized.filter((r) => r.split === split).map((r) => calibrationUtterances(r)!);
    if (base && xs.length)
      data.push({
        type: "scatter",
        mode: "lines",
        name: "fp32",
        legendgroup: "fp32",
        showlegend: i === 0,
        x: [Math.min(...xs) - 0.5, Math.max(...xs) + 0.5],
        y: [base.wer, base.wer],
        line: { color: "#222", dash: "dot", width: 1.2 },
        xaxis: ps[i]!.x,
        yaxis: ps[i]!.y,
      });
  });
  const layout = baseLayout("F9. Static recipes: WER (95 % CI bars) against the number of calibration utterances", smoke);
  panelAxes(layout, ps, ["calibration utterances (first N of the split's 10 %)"], "WER (%)", splits, { y: LOG_WER_TICKS });
  splits.forEach((split, i) => {
    const sizes = [...new Set(sized.filter((r) => r.split === split).map((r) => calibrationUtterances(r)!))].sort((a, b) => a - b);
    Object.assign(layout[`xaxis${i === 0 ? "" : i + 1}`] as Record<string, unknown>, {
      tickvals: sizes,
      range: [Math.min(...sizes) - 1, Math.max(...sizes) + 1],
    });
  });
  return { id: "F9-calibration-size", title: "Static recipes against calibration size", data, layout, width: 1100, height: 520 };
}

/** One scheme's reconstruction error on a weight (src/study/primer.ts measures them). */
export interface SchemeErrorPoint {
  family: string; // one line of F7
  bits: number;
  relativeRmse: number; // ||dequantized - original|| / ||original||
}

/** F7: relative RMS error against bit width, one line per scheme family, on one layer. */
export function errorVsBitsFigure(layer: string, errors: readonly SchemeErrorPoint[], smoke: string | null): Figure {
  const families = [...new Set(errors.map((e) => e.family))];
  const data = families.map((family, i) => {
    const pts = errors.filter((e) => e.family === family).sort((a, b) => a.bits - b.bits);
    return {
      type: "scatter",
      mode: "lines+markers",
      name: family,
      x: pts.map((e) => e.bits),
      y: pts.map((e) => 100 * e.relativeRmse),
      line: { color: PALETTE[i % PALETTE.length] },
    };
  });
  const layout = baseLayout(`F7. Relative RMS error of ${layer} against bit width`, smoke);
  layout.xaxis = axis("bits per weight", { tickvals: [1, 2, 3, 4, 8] });
  layout.yaxis = axis("relative RMS error (%)", { type: "log" });
  return { id: "F7-error-vs-bits", title: "Error against bits", data, layout, width: 1000, height: 480 };
}
