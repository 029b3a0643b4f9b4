/** The shape every CLI subcommand has, so `main.ts` can list, dispatch and document them uniformly. */
export interface CliCommand {
  /** Words that select it, e.g. `dataset inspect`. */
  name: string;
  summary: string;
  /** Full usage text printed by `--help` and on argument errors. */
  usage: string;
  /** Runs with the arguments after the command words; resolves to the process exit code. */
  run(args: string[]): Promise<number>;
}

/** A user mistake in the command line: printed with the command's usage, exit code 2. */
export class UsageError extends Error {}
