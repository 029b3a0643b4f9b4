import { stat } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { findImageFiles } from '../../engine/data/find-images.js';
import { openPredictor, type ImagePrediction } from '../../engine/predict/predict.js';
import { UsageError, type CliCommand } from '../command.js';

export const predictCommand: CliCommand = {
  name: 'predict',
  summary: 'classify images with a trained run or an exported TF.js/ONNX model',
  usage: `finetune-studio predict <model> <image|folder>... [options]

<model> is a training run folder (run.json + model/) or a folder written by \`finetune-studio
export\` (TF.js or ONNX). Each image is cropped and resized as in validation, then classified;
a folder argument means every image in it (and its subfolders). Prints the most probable class
and the probabilities, highest first. Images that cannot be read are reported and skipped.

Options:
  --top <n>      probabilities shown per image (default: all, at most 5)
  --json         print the predictions as JSON

Exit code: 0 when every image was classified, 1 when some could not be read.

Example:
  finetune-studio predict runs/pets/export-onnx ~/Pictures/cat.jpg ~/Pictures/dogs/`,
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      allowPositionals: true,
      options: { top: { type: 'string' }, json: { type: 'boolean', default: false } },
    });
    if (positionals.length < 2) throw new UsageError('Give a model folder and at least one image (or folder of images).');
    const top = values.top === undefined ? undefined : Number(values.top);
    if (top !== undefined && (!Number.isInteger(top) || top < 1)) throw new UsageError(`--top must be a whole number of at least 1; got ${values.top}.`);
    const files = await expandImages(positionals.slice(1));

    const predictor = await openPredictor(positionals[0]);
    let results: ImagePrediction[];
    try {
      results = await predictor.predict(files);
    } finally {
      predictor.dispose();
    }
    if (values.json) {
      console.log(JSON.stringify({ model: { dir: predictor.dir, format: predictor.format, labels: predictor.labels, inputSize: predictor.inputSize }, predictions: results }, null, 2));
    } else {
      const shown = top ?? Math.min(5, predictor.labels.length);
      const width = Math.min(60, Math.max(...results.map((r) => r.file.length)));
      const labelWidth = Math.max(...predictor.labels.map((l) => l.length));
      for (const r of results) {
        if (r.error) {
          console.log(`${r.file.padEnd(width)}  ✘ ${r.error}`);
          continue;
        }
        const probs = r.probabilities.slice(0, shown).map((p) => `${p.label} ${p.probability.toFixed(4)}`).join(', ');
        console.log(`${r.file.padEnd(width)}  ${r.label.padEnd(labelWidth)}  ${r.probability.toFixed(4)}   (${probs})`);
      }
    }
    const failed = results.filter((r) => r.error).length;
    if (failed) console.error(`${failed} of ${results.length} image(s) could not be classified (see above).`);
    return failed ? 1 : 0;
  },
};

/** Files as given; folders replaced by the images inside them (sorted, as training finds them). */
async function expandImages(args: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const a of args) {
    const s = await stat(a).catch(() => undefined);
    if (s?.isDirectory()) {
      const found = await findImageFiles(a);
      if (!found.files.length) throw new UsageError(`The folder ${a} holds no images (looked for .jpg, .png and other image files, recursively).`);
      out.push(...found.files.map((f) => path.join(a, f)));
    } else {
      out.push(a); // a missing file is reported per image, not as a usage error
    }
  }
  return out;
}
