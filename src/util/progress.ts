/**
 * Progress of a long step a user waits for: on a terminal one live line (rewritten in place), in a
 * notebook kernel one line rewritten by carriage returns (Jupyter renders them in place), in a log a
 * plain line every `everyPercent` percent, so `make reproduce > log` stays readable.
 */
import { writeSync } from "node:fs";

export interface ProgressOptions {
  stream?: NodeJS.WriteStream; // default stderr
  everyPercent?: number; // log mode: one line per this many percent (default 5)
  unit?: "bytes" | "items";
}

export interface Progress {
  update(done: number, total: number, detail?: string): void;
  done(detail?: string): void;
}

function formatBytes(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${(n / 1e3).toFixed(0)} kB`;
}

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return "?";
  return s >= 3600 ? `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min` : s >= 90 ? `${Math.round(s / 60)} min` : `${Math.round(s)} s`;
}

/** The text of one progress line: what, how far, how fast, how long still. */
export function progressText(label: string, done: number, total: number, elapsedSeconds: number, unit: "bytes" | "items", detail = ""): string {
  const pct = total > 0 ? (100 * done) / total : 0;
  const rate = elapsedSeconds > 0 ? done / elapsedSeconds : 0;
  const eta = rate > 0 && total > 0 ? (total - done) / rate : Infinity;
  const amount = unit === "bytes" ? `${formatBytes(done)} / ${formatBytes(total)}, ${formatBytes(rate)}/s` : `${done}/${total}, ${rate.toFixed(2)}/s`;
  return `${label}: ${pct.toFixed(0)} % (${amount}, ETA ${formatSeconds(eta)})${detail ? `  ${detail}` : ""}`;
}

/** Progress lines go to stderr unless PTQ_PROGRESS=0 (the test suite sets it to keep its log short). */
export function progress(label: string, options: ProgressOptions = {}): Progress {
  if (process.env.PTQ_PROGRESS === "0" && !options.stream) return { update() {}, done() {} };
  const stream = options.stream ?? process.stderr;
  const every = options.everyPercent ?? 5;
  const unit = options.unit ?? "items";
  const started = performance.now();
  // Log lines go straight to file descriptor 2 when the stream is stderr: inside a notebook kernel
  // (tslab) a burst of stderr writes fails ("Socket is busy writing"), while fd 2 reaches the log
  // of `make reproduce` all the same.
  const writeLine = (text: string) => (stream === process.stderr ? writeSync(2, text) : stream.write(text));
  // A Jupyter kernel (the notebooks, live or under `make reproduce`): jupyter_client sets JPY_PARENT_PID.
  const inKernel = stream === process.stderr && process.env.JPY_PARENT_PID !== undefined;
  let lastStep = -1;
  let lastWrite = -Infinity;
  let live = false;
  return {
    update(done, total, detail) {
      // At most one write per interval (and always the last): a notebook kernel forwards each write as a message.
      const now = performance.now();
      const finished = total > 0 && done >= total;
      if (!finished && now - lastWrite < (stream.isTTY ? 100 : 1000)) return;
      const text = progressText(label, done, total, (now - started) / 1000, unit, detail);
      if (stream.isTTY || inKernel) {
        stream.write(stream.isTTY ? `\r${text}\x1b[K` : `\r${text}`); // a kernel forwards the write as one stream message, at most one a second
        lastWrite = now;
        live = true;
        return;
      }
      const step = total > 0 ? Math.floor((100 * done) / total / every) : 0;
      if (step > lastStep) {
        lastStep = step;
        lastWrite = now;
        writeLine(`${text}\n`);
      }
    },
    done(detail) {
      if (live) stream.write("\n");
      if (detail) writeLine(`${label}: ${detail}\n`);
    },
  };
}
