/** A loopback file server with Range support and one-shot connection drops, for download tests. */
import type { IncomingMessage, ServerResponse } from "node:http";
import { LoopbackServer } from "./loopback.js";

export class StaticServer extends LoopbackServer {
  readonly files = new Map<string, Uint8Array>();
  readonly dropAfter = new Map<string, number>();
  /** Send this many body bytes of the next GET of the path, then nothing more (a client to be killed midway). */
  readonly stallAfter = new Map<string, number>();
  readonly ranges: Array<string | undefined> = [];

  protected handle(req: IncomingMessage, res: ServerResponse): void {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    const body = this.files.get(path);
    this.ranges.push(req.headers.range);
    if (!body) {
      res.writeHead(404).end("not found");
      return;
    }
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    const start = m ? Number(m[1]) : 0;
    if (start >= body.length && m) {
      res.writeHead(416).end();
      return;
    }
    const slice = body.subarray(start);
    res.writeHead(m ? 206 : 200, {
      "Content-Length": String(slice.length),
      ...(m ? { "Content-Range": `bytes ${start}-${body.length - 1}/${body.length}` } : {}),
    });
    const stall = this.stallAfter.get(path);
    if (stall !== undefined) {
      this.stallAfter.delete(path);
      res.write(slice.subarray(0, stall));
      return;
    }
    const drop = this.dropAfter.get(path);
    if (drop !== undefined) {
      this.dropAfter.delete(path);
      res.write(slice.subarray(0, drop), () => res.destroy());
      return;
    }
    res.end(slice);
  }
}
