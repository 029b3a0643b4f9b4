/** Exports a run's model through the engine (engine/export/export-run.ts: `exportRun`). */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { ExportFormat } from '../../api/contract.js';
import { exportRun } from '../../engine/export/export-run.js';
import type { ExportJobResult } from '../protocol.js';

export async function exportModel(
  job: { runDir: string; format: ExportFormat; outDir: string },
  emit: (p: { done: number; total: number; message?: string }) => void,
  signal: AbortSignal,
): Promise<ExportJobResult> {
  const result = await exportRun(job.runDir, {
    format: job.format,
    outDir: job.outDir,
    signal,
    onProgress: (p) => emit({ done: p.done, total: p.total, message: p.stage }),
  });
  // Files may be named relative to the output folder or absolutely; the UI wants absolute paths.
  const absolute = result.files.map((f) => (path.isAbsolute(f) ? f : path.join(result.outDir, f)));
  const files = await Promise.all(absolute.map(async (f) => ({ path: f, bytes: (await stat(f).catch(() => undefined))?.size ?? 0 })));
  return { outDir: result.outDir, format: result.format, files };
}
