/**
 * A real one-machine Slurm for the tests: slurmctld and slurmd from Debian's slurm-wlm, run as the
 * current user with a slurm.conf of their own in a temporary folder (no systemd, no munge:
 * auth/none), on ports of their own. Stopped by their PIDs: jobs cancelled first.
 */
import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { hostname, userInfo } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Why Slurm cannot run here, or false. */
export function slurmMissing(): string | false {
  for (const bin of ["/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/bin/sbatch"])
    if (!existsSync(bin)) return `${bin} is missing: install Debian's slurm-wlm (.ci/run does)`;
  if (userInfo().uid !== 0) return "slurmd must run as root here (SlurmdUser=root)";
  return false;
}

export interface SlurmCluster {
  env: Record<string, string>; // SLURM_CONF for sbatch, squeue, scontrol
  stop(): Promise<void>;
}

function nodeLine(): string {
  const c = execFileSync("slurmd", ["-C"], { encoding: "utf8" }).split("\n")[0]!;
  const field = (k: string) => c.match(new RegExp(`${k}=(\\S+)`))?.[1];
  return `NodeName=${hostname().split(".")[0]} Sockets=${field("SocketsPerBoard") ?? 1} CoresPerSocket=${field("CoresPerSocket")} ThreadsPerCore=${field("ThreadsPerCore")} RealMemory=${field("RealMemory")} State=UNKNOWN`;
}

export async function startSlurm(dir: string, ports: { ctld: number; d: number }): Promise<SlurmCluster> {
  await mkdir(join(dir, "state"), { recursive: true });
  await mkdir(join(dir, "spool"), { recursive: true });
  const host = hostname().split(".")[0]!;
  const conf = join(dir, "slurm.conf");
  await writeFile(
    conf,
    [
      "ClusterName=kit-test",
      `SlurmctldHost=${host}(127.0.0.1)`,
      "SlurmUser=root",
      "SlurmdUser=root",
      "AuthType=auth/none",
      "CredType=cred/none",
      `SlurmctldPort=${ports.ctld}`,
      `SlurmdPort=${ports.d}`,
      `StateSaveLocation=${join(dir, "state")}`,
      `SlurmdSpoolDir=${join(dir, "spool")}`,
      `SlurmctldPidFile=${join(dir, "slurmctld.pid")}`,
      `SlurmdPidFile=${join(dir, "slurmd.pid")}`,
      `SlurmctldLogFile=${join(dir, "slurmctld.log")}`,
      `SlurmdLogFile=${join(dir, "slurmd.log")}`,
      "ProctrackType=proctrack/linuxproc",
      "TaskPlugin=task/none",
      "SelectType=select/cons_tres",
      "AccountingStorageType=accounting_storage/none",
      "JobAcctGatherType=jobacct_gather/none",
      "JobCompType=jobcomp/filetxt",
      `JobCompLoc=${join(dir, "jobcomp.txt")}`,
      "MinJobAge=3600",
      "MailProg=/bin/true",
      "ReturnToService=2",
      "SlurmdParameters=config_overrides",
      nodeLine(),
      `PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP`,
      "",
    ].join("\n"),
  );
  const env = { SLURM_CONF: conf };
  const daemons: ChildProcess[] = [
    spawn("slurmctld", ["-D", "-f", conf], { detached: true, stdio: "ignore", env: { ...process.env, ...env } }),
    spawn("slurmd", ["-D", "-f", conf, "-N", host], { detached: true, stdio: "ignore", env: { ...process.env, ...env } }),
  ];
  const stop = async () => {
    await run("scancel", ["--user", userInfo().username], { env: { ...process.env, ...env } }).catch(() => undefined);
    for (const d of daemons) {
      if (d.pid === undefined || d.exitCode !== null) continue;
      const exited = new Promise((done) => d.once("exit", done));
      try {
        process.kill(d.pid, "SIGTERM");
      } catch {
        continue;
      }
      const timer = setTimeout(() => d.pid && process.kill(d.pid, "SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    }
  };
  // ready when the node is idle
  const started = Date.now();
  for (;;) {
    const out = await run("sinfo", ["-h", "-o", "%T"], { env: { ...process.env, ...env } }).then(
      (r) => r.stdout.trim(),
      () => "",
    );
    if (out.startsWith("idle")) break;
    if (Date.now() - started > 30_000) {
      await stop();
      throw new Error(`the test Slurm did not become idle in 30 s (sinfo: '${out}'); see ${dir}/slurmctld.log and slurmd.log`);
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  return { env, stop };
}
