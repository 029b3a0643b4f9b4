/**
 * A kernel-pool thread (kernel-pool.ts): waits for a task on the control buffer, takes parts of
 * it until none are left, acknowledges, and waits again. It never returns to its event loop, so
 * everything it needs arrives in workerData or the shared control buffer.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { WasmMemory } from './backend-module.js';
import { controlViews, recordError, Slot } from './kernel-pool.js';
import { poolTask } from './pool-tasks.js';

const { memory, control } = workerData as { memory: WasmMemory; control: SharedArrayBuffer };
const views = controlViews(control);
const { ints } = views;
const decoder = new TextDecoder();

let seen = Atomics.load(ints, Slot.Seq);
parentPort!.postMessage('ready');
for (;;) {
  Atomics.wait(ints, Slot.Seq, seen);
  seen = Atomics.load(ints, Slot.Seq);
  if (seen === -1) break;
  try {
    const [name, text] = splitOnce(decoder.decode(views.text.slice(0, Atomics.load(ints, Slot.TextBytes))));
    const args = Array.from(views.args.subarray(0, Atomics.load(ints, Slot.Args)));
    const parts = Atomics.load(ints, Slot.Parts);
    let runPart: ((part: number) => void) | undefined;
    for (let part = Atomics.add(ints, Slot.Next, 1); part < parts; part = Atomics.add(ints, Slot.Next, 1)) {
      runPart ??= poolTask(memory, name, args, text, parts);
      runPart(part);
    }
  } catch (err) {
    Atomics.store(ints, Slot.Next, Atomics.load(ints, Slot.Parts));
    recordError(views, err instanceof Error ? err.message : String(err));
  }
  Atomics.add(ints, Slot.Done, 1);
  Atomics.notify(ints, Slot.Done);
}

function splitOnce(s: string): [string, string] {
  const at = s.indexOf('\n');
  return [s.slice(0, at), s.slice(at + 1)];
}
