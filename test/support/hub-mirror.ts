/**
 * A loopback Hugging Face hub for tests: the routes @huggingface/hub calls (revision info, tree
 * listing, paths-info, resolve with Range), serving repos from memory, with fault injection
 * (a connection dropped midway, a corrupted byte, a 404) and a request log.
 */
import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { LoopbackServer } from "./loopback.js";
import { join, relative } from "node:path";

interface MirrorFile {
  bytes: Buffer;
  lfs: boolean;
}

interface MirrorRepo {
  commit: string;
  files: Map<string, MirrorFile>;
}

export interface Faults {
  /** Drop the connection after this many body bytes of the next GET of the path (once). */
  dropAfter: Map<string, number>;
  /** Serve the path with one byte flipped (once). */
  corruptOnce: Set<string>;
  /** Ignore Range headers and send the whole file (a server without resume support). */
  ignoreRange: boolean;
}

export interface LoggedRequest {
  method: string;
  url: string;
  range: string | undefined;
}

const gitBlobSha1 = (bytes: Buffer) => createHash("sha1").update(`blob ${bytes.length}\0`).update(bytes).digest("hex");

export class HubMirror extends LoopbackServer {
  readonly repos = new Map<string, MirrorRepo>();
  readonly faults: Faults = { dropAfter: new Map(), corruptOnce: new Set(), ignoreRange: false };
  readonly log: LoggedRequest[] = [];

  /** Serve every file of a folder as repo `id` at a commit derived from its content. */
  async addRepoFromDir(id: string, dir: string): Promise<string> {
    const files = new Map<string, MirrorFile>();
    const walk = async (d: string) => {
      for (const entry of await readdir(d, { withFileTypes: true })) {
        const full = join(d, entry.name);
        if (entry.isDirectory()) await walk(full);
        else files.set(relative(dir, full), { bytes: await readFile(full), lfs: /\.(safetensors|onnx|bin)$/.test(entry.name) });
      }
    };
    await walk(dir);
    const commitHash = createHash("sha1");
    for (const [path, f] of [...files].sort()) commitHash.update(path).update(f.bytes);
    const commit = commitHash.digest("hex");
    this.repos.set(id, { commit, files });
    return commit;
  }

  private repoFor(id: string, rev: string, res: ServerResponse): MirrorRepo | null {
    const repo = this.repos.get(id);
    if (!repo || (rev !== "main" && rev !== "HEAD" && rev !== repo.commit)) {
      res.writeHead(404, { "Content-Type": "application/json", "X-Error-Code": repo ? "RevisionNotFound" : "RepoNotFound" });
      res.end(JSON.stringify({ error: repo ? `Invalid rev id: ${rev}` : "Repository not found" }));
      return null;
    }
    return repo;
  }

  private treeEntry(path: string, f: MirrorFile) {
    return {
      type: "file",
      path,
      size: f.bytes.length,
      oid: gitBlobSha1(f.bytes),
      ...(f.lfs ? { lfs: { oid: createHash("sha256").update(f.bytes).digest("hex"), size: f.bytes.length, pointerSize: 134 } } : {}),
    };
  }

  protected async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", this.url);
    this.log.push({ method: req.method ?? "GET", url: url.pathname, range: req.headers.range });
    const path = decodeURIComponent(url.pathname);
    let m = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/([^/]+)$/.exec(path);
    if (m) {
      const repo = this.repoFor(m[1]!, m[2]!, res);
      if (!repo) return;
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(
        JSON.stringify({
          _id: m[1],
          id: m[1],
          sha: repo.commit,
          private: false,
          gated: false,
          downloads: 0,
          likes: 0,
          lastModified: "2026-01-01T00:00:00.000Z",
          siblings: [...repo.files.keys()].map((rfilename) => ({ rfilename })),
        }),
      );
      return;
    }
    m = /^\/api\/models\/([^/]+\/[^/]+)\/tree\/([^/]+)$/.exec(path);
    if (m) {
      const repo = this.repoFor(m[1]!, m[2]!, res);
      if (!repo) return;
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(JSON.stringify([...repo.files].map(([p, f]) => this.treeEntry(p, f))));
      return;
    }
    m = /^\/api\/models\/([^/]+\/[^/]+)\/paths-info\/([^/]+)$/.exec(path);
    if (m && req.method === "POST") {
      const repo = this.repoFor(m[1]!, m[2]!, res);
      if (!repo) return;
      let body = "";
      for await (const chunk of req) body += chunk;
      const paths: string[] = JSON.parse(body).paths ?? [];
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(JSON.stringify(paths.filter((p) => repo.files.has(p)).map((p) => this.treeEntry(p, repo.files.get(p)!))));
      return;
    }
    m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    if (m) {
      const repo = this.repoFor(m[1]!, m[2]!, res);
      if (!repo) return;
      const file = repo.files.get(m[3]!);
      if (!file) {
        res.writeHead(404, { "X-Error-Code": "EntryNotFound" });
        res.end("Entry not found");
        return;
      }
      let bytes = file.bytes;
      const probe = req.headers.range === "bytes=0-0"; // the client's size/etag probe; faults hit the data requests
      if (!probe && this.faults.corruptOnce.delete(m[3]!)) {
        bytes = Buffer.from(bytes);
        bytes[bytes.length >> 1]! ^= 0xff;
      }
      const headers: Record<string, string> = {
        ETag: `"${gitBlobSha1(file.bytes)}"`,
        "X-Repo-Commit": repo.commit,
        "Accept-Ranges": "bytes",
        "Content-Type": "application/octet-stream",
      };
      const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
      let start = 0;
      let end = bytes.length - 1;
      if (range && (probe || !this.faults.ignoreRange)) {
        start = Number(range[1]);
        end = range[2] ? Math.min(Number(range[2]), bytes.length - 1) : bytes.length - 1;
        res.writeHead(206, { ...headers, "Content-Range": `bytes ${start}-${end}/${bytes.length}`, "Content-Length": String(end - start + 1) });
      } else {
        res.writeHead(200, { ...headers, "Content-Length": String(bytes.length) });
      }
      if (req.method === "HEAD") {
        res.end();
        return;
      }
      const body = bytes.subarray(start, end + 1);
      const drop = this.faults.dropAfter.get(m[3]!);
      if (drop !== undefined && body.length > 1) {
        this.faults.dropAfter.delete(m[3]!);
        res.write(body.subarray(0, drop), () => res.destroy());
        return;
      }
      res.end(body);
      return;
    }
    res.writeHead(404, { "Content-Type": "text/plain" });
    res.end(`no route for ${req.method} ${path}`);
  }
}
