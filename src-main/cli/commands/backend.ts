import { parseArgs } from 'node:util';
import { describeBackend, parseBackendName, selectBackend } from '../../engine/backend.js';
import type { CliCommand } from '../command.js';

export const backendCommand: CliCommand = {
  name: 'backend',
  summary: 'show which compute backend training would use, and why',
  usage: `finetune-studio backend [--backend node-gpu|node|wasm|cpu]

Tries the TF.js backends fastest-first and reports each one's outcome.
Environment: FINETUNE_BACKEND pins the backend like --backend.`,
  async run(args) {
    const { values } = parseArgs({ args, options: { backend: { type: 'string' } }, strict: true });
    const choice = await selectBackend(values.backend ? { force: parseBackendName(values.backend) } : {});
    console.log(describeBackend(choice));
    return 0;
  },
};
