#!/usr/bin/env node
/**
 * `finetune-studio <command> …`: the headless entry to the engine. Each command lives in
 * `commands/` and is registered here once.
 */
import { UsageError, type CliCommand } from './command.js';
import { backendCommand } from './commands/backend.js';
import { datasetGetCommand } from './commands/dataset-get.js';
import { datasetInspectCommand } from './commands/dataset-inspect.js';
import { datasetListCommand } from './commands/dataset-list.js';
import { exportCommand } from './commands/export.js';
import { predictCommand } from './commands/predict.js';
import { trainCommand } from './commands/train.js';

const COMMANDS: CliCommand[] = [datasetListCommand, datasetGetCommand, datasetInspectCommand, trainCommand, exportCommand, predictCommand, backendCommand];

function overview(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  const lines = COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return `Usage: finetune-studio <command> [options]\n\nCommands:\n${lines.join('\n')}\n\nRun \`finetune-studio <command> --help\` for a command's options.`;
}

/** Finds the command whose words start `argv`, preferring the longest match. */
function findCommand(argv: string[]): { command: CliCommand; rest: string[] } | undefined {
  const sorted = [...COMMANDS].sort((a, b) => b.name.split(' ').length - a.name.split(' ').length);
  for (const command of sorted) {
    const words = command.name.split(' ');
    if (words.every((w, i) => argv[i] === w)) return { command, rest: argv.slice(words.length) };
  }
  return undefined;
}

export async function main(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    console.log(overview());
    return argv.length === 0 ? 2 : 0;
  }
  const found = findCommand(argv);
  if (!found) {
    console.error(`Unknown command: ${argv.join(' ')}\n\n${overview()}`);
    return 2;
  }
  const { command, rest } = found;
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(command.usage);
    return 0;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    // parseArgs throws TypeErrors with codes like ERR_PARSE_ARGS_UNKNOWN_OPTION for bad flags.
    const code = (err as { code?: string }).code ?? '';
    if (err instanceof UsageError || code.startsWith('ERR_PARSE_ARGS')) {
      console.error(`Error: ${(err as Error).message}\n\n${command.usage}`);
      return 2;
    }
    console.error(`Error: ${err instanceof Error ? err.message : String(err)}`);
    if (process.env.FINETUNE_DEBUG) console.error(err);
    return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    console.error(err);
    process.exitCode = 1;
  },
);
