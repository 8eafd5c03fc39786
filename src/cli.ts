#!/usr/bin/env node
/**
 * `ptq`: a thin command line over the same src functions the notebooks call. The commands are
 * data (src/cli/commands.ts); this file turns them into commander commands and maps failures to
 * exit codes: 0 done, 1 a kit error (file, field and fix named), 2 a usage error (one line).
 */
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { COMMANDS, UsageError, type CommandSpec } from "./cli/commands.js";
import { KitError } from "./util/errors.js";

function addCommand(parent: Command, spec: CommandSpec, name: string): void {
  const command = parent.command(name).description(spec.summary);
  if (spec.arguments) command.arguments(spec.arguments);
  for (const o of spec.options) {
    const option = new Option(o.flags, o.description);
    if (o.default !== undefined) option.default(o.default, o.defaultShown);
    if (o.hidden) option.hideHelp();
    if (o.parse) {
      const parse = o.parse;
      option.argParser((value: string, previous: unknown) => {
        try {
          return parse(value, previous);
        } catch (err) {
          throw new InvalidArgumentError((err as Error).message);
        }
      });
    }
    command.addOption(option);
  }
  command.addHelpText("after", `\nExample:\n  ${spec.example}`);
  command.showHelpAfterError(false);
  command.action(async (...args: unknown[]) => {
    const cmd = args[args.length - 1] as Command;
    const positional = (cmd.args as string[]) ?? [];
    // Required options are checked here, after commander has refused unknown ones (it checks them first).
    const values = cmd.opts();
    for (const o of spec.options.filter((o) => o.required)) {
      const key = new Option(o.flags).attributeName();
      if (values[key] === undefined) throw new UsageError(`required option '${o.flags}' not specified (see ptq ${spec.name} --help)`);
    }
    // The raw arguments after the command's name, which --workers passes on to its processes.
    const raw = process.argv.slice(2 + spec.name.split(" ").length);
    await spec.run(positional, values, raw);
  });
}

export function program(): Command {
  const root = new Command("ptq")
    .description("post-training quantization of Whisper, measured on onnxruntime")
    .exitOverride()
    .configureOutput({ writeErr: () => {} });
  const groups = new Map<string, Command>();
  for (const spec of COMMANDS) {
    const [head, sub] = spec.name.split(" ");
    if (!sub) {
      addCommand(root, spec, head!);
      continue;
    }
    let group = groups.get(head!);
    if (!group) {
      group = root.command(head!).description(
        `${head} subcommands: ${COMMANDS.filter((c) => c.name.startsWith(`${head} `))
          .map((c) => c.name.split(" ")[1])
          .join(", ")}`,
      );
      groups.set(head!, group);
    }
    addCommand(group, spec, sub);
  }
  for (const c of [root, ...root.commands, ...root.commands.flatMap((c) => c.commands)]) c.exitOverride().configureOutput({ writeErr: () => {} });
  return root;
}

/** The command a usage error belongs to, for its one line: "ptq eval" or "ptq fetch model". */
function commandPath(argv: string[]): string {
  const names = new Set(COMMANDS.flatMap((c) => c.name.split(" ")));
  const path = ["ptq"];
  for (const a of argv) {
    if (a.startsWith("-") || !names.has(a)) break;
    path.push(a);
  }
  return path.join(" ");
}

async function main(argv: string[]): Promise<number> {
  if (argv.length === 0) {
    console.error(program().helpInformation());
    return 2;
  }
  try {
    await program().parseAsync(argv, { from: "user" });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === "commander.helpDisplayed" || err.code === "commander.version") return 0;
      const where = commandPath(argv);
      if (err.code === "commander.help") {
        // A group (fetch, import) without its subcommand.
        const subs = COMMANDS.filter((c) => `ptq ${c.name}`.startsWith(`${where} `)).map((c) => c.name.split(" ")[1]);
        console.error(`${where}: which one? ${subs.join(" or ")} (see ${where} --help)`);
        return 2;
      }
      const message = err.message.replace(/^error: /, "").replace(/\s*\n\s*/g, " ");
      console.error(`${where}: ${message} (see ${where} --help)`);
      return err.code === "commander.executeSubCommandAsync" ? 1 : 2;
    }
    if (err instanceof UsageError) {
      console.error(`${commandPath(argv)}: ${err.message}`);
      return 2;
    }
    if (err instanceof KitError) console.error(`ptq: ${err.message}`);
    else console.error(err);
    return 1;
  }
}

main(process.argv.slice(2)).then((code) => process.exit(code));
