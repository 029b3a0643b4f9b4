/**
 * The kernel pool's tasks by name (kernel-pool.ts): what a worker thread runs for each. Every
 * task builds its part function from the same code the main thread runs, bound to the worker's
 * own instance of the module on the shared heap.
 */
import type { WasmMemory } from './backend-module.js';
import { batchNormBackwardTask } from './batch-norm-training.js';
import { batchNormSumsTask } from './fused-grads.js';
import { maxPoolTask } from './max-pool.js';
import { maxPoolGradTask } from './max-pool-grad.js';
import { rowsGemmTask, tableGemmTask } from './gemm.js';
import { filterGradPart, stridedFilterGradTilesOnMemory } from './strided-filter-grad.js';
import { tableTransposeTask, transformRowsTask } from './winograd-transforms.js';
import { winogradBlocksTask } from './winograd-blocks.js';
import { winogradFilterGradBlocksTask } from './winograd-filter-grad-blocks.js';

type TaskFactory = (memory: WasmMemory, args: readonly number[], text: string) => (part: number, parts: number) => void;

const TASKS: Record<string, TaskFactory> = {
  filterGrad(memory, args) {
    const tiles = stridedFilterGradTilesOnMemory(memory);
    if (!tiles) throw new Error('the filter-gradient kernels could not be instantiated on this thread');
    return filterGradPart(tiles, args);
  },
  transformRows: transformRowsTask,
  tableGemm: tableGemmTask,
  gemmRows: rowsGemmTask,
  tableTranspose: tableTransposeTask,
  batchNormSums: batchNormSumsTask,
  batchNormBackward: batchNormBackwardTask,
  maxPool: maxPoolTask,
  maxPoolGrad: maxPoolGradTask,
  winogradBlocks: winogradBlocksTask,
  winogradFilterGradBlocks: winogradFilterGradBlocksTask,
};

/** The part function of task `name` (throws on an unknown name: a main/worker version mismatch). */
export function poolTask(memory: WasmMemory, name: string, args: readonly number[], text: string, parts: number): (part: number) => void {
  const factory = TASKS[name];
  if (!factory) throw new Error(`unknown kernel-pool task '${name}'`);
  const run = factory(memory, args, text);
  return (part) => run(part, parts);
}
