/**
 * Child process for the cross-process lock test: takes the lock named in argv[2], says "locked",
 * and releases it when a line "release" arrives on stdin.
 */
import { createInterface } from 'node:readline';
import { withLock } from '../../../src-main/engine/download/lock.js';

const lockPath = process.argv[2];
await withLock(lockPath, async () => {
  process.stdout.write('locked\n');
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) if (line.trim() === 'release') break;
  lines.close();
});
process.stdout.write('released\n');
