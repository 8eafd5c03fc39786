/**
 * The kit's one error type: every failure a user can cause names the file (or URL), the field
 * that is wrong, and what to do about it, so that a message alone is enough to fix the input.
 */
export class KitError extends Error {
  readonly file: string | undefined;
  readonly field: string | undefined;
  readonly fix: string | undefined;

  constructor(message: string, where: { file?: string; field?: string; fix?: string } = {}, cause?: unknown) {
    const parts = [message];
    if (where.file !== undefined) parts.push(`file: ${where.file}`);
    if (where.field !== undefined) parts.push(`field: ${where.field}`);
    if (where.fix !== undefined) parts.push(`fix: ${where.fix}`);
    super(parts.join("\n  "), cause === undefined ? undefined : { cause });
    this.name = "KitError";
    this.file = where.file;
    this.field = where.field;
    this.fix = where.fix;
  }
}

/** Narrow an unknown throw to something with a message, for wrapping. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
