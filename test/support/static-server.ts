/** A loopback file server with Range support and one-shot connection drops, for download tests. */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export class StaticServer {
  readonly files = new Map<string, Uint8Array>();
  readonly dropAfter = new Map<string, number>();
  readonly ranges: Array<string | undefined> = [];
  private server: Server | null = null;
  url = "";

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
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
      res.writeHead(m ? 206 : 200, { "Content-Length": String(slice.length), ...(m ? { "Content-Range": `bytes ${start}-${body.length - 1}/${body.length}` } : {}) });
      const drop = this.dropAfter.get(path);
      if (drop !== undefined) {
        this.dropAfter.delete(path);
        res.write(slice.subarray(0, drop), () => res.destroy());
        return;
      }
      res.end(slice);
    });
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.url;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }
}
