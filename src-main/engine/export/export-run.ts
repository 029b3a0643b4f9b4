/**
 * `exportRun`: a training run folder -> a folder that other programs load, with its model card.
 *
 * 1. Read run.json and the saved model; rebuild the architecture and load the trained weights.
 * 2. Wrap it to take raw pixels and return probabilities (tfjs-export.ts); capture the LayersModel
 *    artefacts. TF.js: write them. ONNX: translate those same artefacts (keras-to-onnx.ts).
 * 3. Verify: open the written folder the way a user would (metadata.json included) and compare its
 *    probabilities with the app's own model on real validation photos of the run (or, when the
 *    dataset is gone, on generated images). Beyond PARITY_TOLERANCE the export fails.
 * 4. Write metadata.json and README.md.
 *
 * Everything is written to a temporary sibling folder and renamed into place at the end, so a
 * failed or cancelled export never leaves a half-written folder; an earlier export in the target
 * folder is replaced, anything else there is refused.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../backend.js';
import { decodeForPrediction } from '../predict/images.js';
import { openScorer } from '../predict/predict.js';
import { loadRunModel, readRunFolder, type RunFolder } from '../predict/run-model.js';
import { inAppScorer } from '../predict/scorers.js';
import { kerasToOnnx, ONNX_IR_VERSION, ONNX_OPSET } from './keras-to-onnx.js';
import { buildModelCard, MODEL_CARD_FILE, MODEL_CARD_FORMAT, modelCardReadme, PARITY_TOLERANCE, README_FILE, type ExportFormat, type ModelCard } from './model-card.js';
import { encodeOnnxModel } from './onnx-proto.js';
import { buildExportModel, captureArtifacts, INPUT_NAME, namedWeights, OUTPUT_NAME, writeTfjsModel } from './tfjs-export.js';

export type { ExportFormat } from './model-card.js';

export interface ExportResult {
  outDir: string;
  format: ExportFormat;
  /** Names of the files written, relative to outDir. */
  files: string[];
  card: ModelCard;
}

export interface ExportProgress {
  stage: string;
  done: number;
  total: number;
}

export interface ExportOptions {
  format: ExportFormat;
  outDir: string;
  onProgress?: (p: ExportProgress) => void;
  signal?: AbortSignal;
}

export const ONNX_MODEL_FILE = 'model.onnx';
/** Validation photos compared during verification (the run's top losses: the hardest cases). */
const VERIFY_IMAGES = 8;

async function appVersion(): Promise<string> {
  for (const rel of ['../../../package.json', '../../../../package.json']) {
    try {
      const pkg = JSON.parse(await fs.readFile(new URL(rel, import.meta.url), 'utf8'));
      if (pkg.name === 'finetune-studio') return String(pkg.version);
    } catch {
      // try the next layout (source tree vs dist/)
    }
  }
  return 'unknown';
}

/** Refuses targets that would destroy something that is not an earlier export. */
async function checkTarget(outDir: string, runDir: string): Promise<void> {
  if (outDir === runDir) throw new Error(`The export folder ${outDir} is the run folder itself; choose another folder (e.g. ${path.join(runDir, 'export')}).`);
  const s = await fs.stat(outDir).catch(() => undefined);
  if (!s) return;
  if (!s.isDirectory()) throw new Error(`${outDir} is a file; choose a folder to export into.`);
  const names = await fs.readdir(outDir);
  if (names.length === 0) return;
  let earlier = false;
  try {
    earlier = JSON.parse(await fs.readFile(path.join(outDir, MODEL_CARD_FILE), 'utf8')).format === MODEL_CARD_FORMAT;
  } catch {
    earlier = false;
  }
  if (!earlier) throw new Error(`${outDir} already holds other files (${names.slice(0, 3).join(', ')}${names.length > 3 ? ', …' : ''}); choose a new or empty folder. An earlier export there would be replaced.`);
}

/** Deterministic, non-trivial pixels for when the run's photos are no longer on disk. */
function syntheticImages(size: number): Uint8Array[] {
  return [0, 1].map((k) => {
    const img = new Uint8Array(size * size * 3);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const i = (y * size + x) * 3;
        img[i] = (x * 255) / size;
        img[i + 1] = k ? (y * 255) / size : 255 - (y * 255) / size;
        img[i + 2] = ((x * 7 + y * 13 + k * 91) * 37) % 256;
      }
    }
    return img;
  });
}

async function verificationImages(run: RunFolder): Promise<{ names: string[]; pixels: Uint8Array[] }> {
  const names: string[] = [];
  const pixels: Uint8Array[] = [];
  for (const t of run.record.topLosses) {
    if (pixels.length >= VERIFY_IMAGES) break;
    const d = await decodeForPrediction(path.join(run.record.dataset.root, t.relPath), run.meta.size);
    if (d.ok) {
      names.push(t.relPath);
      pixels.push(d.pixels);
    }
  }
  if (pixels.length) return { names, pixels };
  return { names: ['generated image 1', 'generated image 2'], pixels: syntheticImages(run.meta.size) };
}

function maxAbsDiff(a: Float32Array[], b: Float32Array[]): number {
  let max = 0;
  a.forEach((row, i) => row.forEach((v, j) => (max = Math.max(max, Math.abs(v - b[i][j])))));
  return max;
}

export async function exportRun(runDir: string, options: ExportOptions): Promise<ExportResult> {
  const { format, signal } = options;
  if (format !== 'tfjs' && format !== 'onnx') throw new Error(`Unknown export format "${String(format)}"; use tfjs or onnx.`);
  const total = 5;
  const progress = (stage: string, done: number) => options.onProgress?.({ stage, done, total });
  const outDir = path.resolve(options.outDir);

  progress('Reading the run', 0);
  const run = await readRunFolder(runDir);
  await checkTarget(outDir, run.dir);
  signal?.throwIfAborted();

  progress('Rebuilding the trained model', 1);
  await selectBackend();
  const model = await loadRunModel(run, { signal });
  let exported: ReturnType<typeof buildExportModel> | undefined;
  const tmp = `${outDir}.tmp-${process.pid}-${Date.now()}`;
  try {
    exported = buildExportModel(model, run.meta.size, run.meta.preprocessing);
    signal?.throwIfAborted();
    progress(format === 'tfjs' ? 'Writing the TF.js model' : 'Translating to ONNX', 2);
    const artifacts = await captureArtifacts(exported.model);
    await fs.mkdir(tmp, { recursive: true });
    const version = await appVersion();
    let files: string[];
    let onnxInfo: ModelCard['architecture']['onnx'];
    const weights = namedWeights(artifacts);
    const parameters = [...weights.values()].reduce((n, w) => n + w.values.length, 0);
    if (format === 'tfjs') {
      files = await writeTfjsModel(artifacts, tmp, {
        convertedBy: `Finetune Studio ${version}`,
        userDefinedMetadata: { labels: run.meta.vocab, inputSize: run.meta.size, input: 'RGB pixels 0..255, [batch, size, size, 3]', output: 'class probabilities' },
      });
    } else {
      const { model: onnx, report } = kerasToOnnx(artifacts.modelTopology, weights, {
        inputName: INPUT_NAME,
        outputName: OUTPUT_NAME,
        producerName: 'finetune-studio',
        producerVersion: version,
        docString: `${run.meta.arch} fine-tuned by Finetune Studio: RGB pixels 0..255 [batch, ${run.meta.size}, ${run.meta.size}, 3] (NHWC) -> probabilities for ${run.meta.vocab.length} labels`,
        metadata: { labels: JSON.stringify(run.meta.vocab), input_layout: 'NHWC', input_range: '0..255 RGB', input_size: String(run.meta.size), arch: run.meta.arch },
      });
      await fs.writeFile(path.join(tmp, ONNX_MODEL_FILE), encodeOnnxModel(onnx));
      files = [ONNX_MODEL_FILE];
      onnxInfo = { opset: ONNX_OPSET, irVersion: ONNX_IR_VERSION, opCounts: report.opCounts, foldedBatchNorms: report.foldedBatchNorms, foldedPads: report.foldedPads, keptBatchNorms: report.keptBatchNorms };
    }

    signal?.throwIfAborted();
    progress('Verifying the export against the app', 3);
    const cardFor = (verification: ModelCard['verification']) =>
      buildModelCard({
        run,
        format,
        files: { model: files[0], weights: files.slice(1) },
        parameters,
        numFeatures: model.numFeatures,
        onnx: onnxInfo,
        verification,
        appVersion: version,
        exportedAt: new Date(),
        inputName: INPUT_NAME,
        outputName: OUTPUT_NAME,
      });
    const runtime = format === 'tfjs' ? `@tensorflow/tfjs ${tf.version.tfjs} (${tf.getBackend()} backend)` : `onnxruntime-node ${(await import('onnxruntime-node')).env.versions.node ?? ''}`.trim();
    // The scorer reads metadata.json like any consumer, so the card is written first and completed after.
    await fs.writeFile(path.join(tmp, MODEL_CARD_FILE), JSON.stringify(cardFor({ runtime, reference: '', images: [], maxAbsDiff: NaN, tolerance: PARITY_TOLERANCE }), null, 2));
    const images = await verificationImages(run);
    const inApp = inAppScorer(model, run.meta.vocab, run.meta.size, run.meta.preprocessing);
    let reference: Float32Array[];
    try {
      reference = await inApp.score(images.pixels);
    } finally {
      inApp.dispose();
    }
    const { scorer } = await openScorer(tmp);
    let diff: number;
    try {
      diff = maxAbsDiff(reference, await scorer.score(images.pixels));
    } finally {
      scorer.dispose();
    }
    if (!(diff <= PARITY_TOLERANCE)) {
      throw new Error(
        `The exported ${format} model disagrees with the app's model: probabilities differ by up to ${diff.toExponential(2)} (limit ${PARITY_TOLERANCE}) on ${images.names.join(', ')}. ` +
          'Nothing was written. This is a bug in the exporter: please report it with the run folder.',
      );
    }

    progress('Writing the model card', 4);
    const card = cardFor({ runtime, reference: "the app's own model (TF.js, the run's saved weights)", images: images.names, maxAbsDiff: diff, tolerance: PARITY_TOLERANCE });
    await fs.writeFile(path.join(tmp, MODEL_CARD_FILE), JSON.stringify(card, null, 2));
    await fs.writeFile(path.join(tmp, README_FILE), modelCardReadme(card));
    signal?.throwIfAborted();
    await fs.rm(outDir, { recursive: true, force: true });
    await fs.mkdir(path.dirname(outDir), { recursive: true });
    await fs.rename(tmp, outDir);
    progress('Done', total);
    return { outDir, format, files: [...files, MODEL_CARD_FILE, README_FILE], card };
  } finally {
    await fs.rm(tmp, { recursive: true, force: true });
    exported?.dispose();
    model.dispose();
  }
}
