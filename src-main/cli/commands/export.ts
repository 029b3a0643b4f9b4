import { stat } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { exportRun, type ExportFormat } from '../../engine/export/export-run.js';
import { UsageError, type CliCommand } from '../command.js';
import { formatBytes } from '../progress-bar.js';

const FORMATS: readonly ExportFormat[] = ['tfjs', 'onnx'];

export const exportCommand: CliCommand = {
  name: 'export',
  summary: 'export a trained model as TF.js or ONNX files, with a model card',
  usage: `finetune-studio export <run> --format tfjs|onnx [--out <dir>]

Writes the model trained in <run> (the folder \`train --out\` wrote) as files other programs load:
  tfjs   model.json + weights.bin, a TF.js LayersModel (@tensorflow/tfjs, browser or Node.js)
  onnx   model.onnx, ONNX opset 13 (ONNX Runtime and others), BatchNorm folded
Both take RGB pixels 0..255 as float32 [batch, size, size, 3] (NHWC) and return class
probabilities: the normalisation is inside the model, a consumer only crops and resizes.
Beside them: metadata.json (labels, input, preprocessing, training, metrics) and README.md
(the same for people, plus code that loads the model). The export is checked before it is kept:
it must give the app's probabilities to within 1e-4 on the run's validation photos.

Options:
  --format <tfjs|onnx>   file format (required)
  --out <dir>            where to write (default <run>/export-<format>); an earlier export there is replaced

Example:
  finetune-studio export runs/pets --format onnx --out pets-onnx
  finetune-studio predict pets-onnx photo.jpg`,
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: { format: { type: 'string' }, out: { type: 'string' } },
    });
    if (positionals.length !== 1) throw new UsageError(positionals.length ? `Give one run folder; got ${positionals.length}.` : 'Give the training run folder to export.');
    const format = values.format as ExportFormat | undefined;
    if (!format) throw new UsageError('Choose a format: --format tfjs or --format onnx.');
    if (!FORMATS.includes(format)) throw new UsageError(`Unknown --format "${format}". Choose tfjs or onnx.`);
    const runDir = path.resolve(positionals[0]);
    const outDir = path.resolve(values.out ?? path.join(runDir, `export-${format}`));

    const controller = new AbortController();
    const onSigint = () => controller.abort();
    process.once('SIGINT', onSigint);
    try {
      const result = await exportRun(runDir, { format, outDir, signal: controller.signal, onProgress: (p) => {
          if (p.done < p.total) console.error(`» ${p.stage}`);
        },
      });
      const card = result.card;
      const lines = [`Exported ${card.architecture.arch} (${card.labels.length} labels: ${card.labels.slice(0, 8).join(', ')}${card.labels.length > 8 ? ', …' : ''}) as ${format === 'tfjs' ? 'a TF.js LayersModel' : 'ONNX'} to ${result.outDir}`];
      for (const f of result.files) lines.push(`  ${f.padEnd(14)} ${formatBytes((await stat(path.join(result.outDir, f))).size)}`);
      const v = card.verification;
      lines.push(`Input: float32 [batch, ${card.input.size}, ${card.input.size}, 3] (NHWC, RGB 0..255)   Output: ${card.output.name} [batch, ${card.labels.length}]`);
      lines.push(`Verified with ${v.runtime} on ${v.images.length} image(s): largest probability difference from the app ${v.maxAbsDiff.toExponential(1)} (limit ${v.tolerance}).`);
      lines.push(`Try it: finetune-studio predict ${result.outDir} <image>`);
      console.log(lines.join('\n'));
      return 0;
    } catch (err) {
      if (controller.signal.aborted) {
        console.error('Export cancelled; nothing was written.');
        return 130;
      }
      throw err;
    } finally {
      process.off('SIGINT', onSigint);
    }
  },
};
