/** The README.md of an exported model, rendered from its model card (metadata.json). */
import type { ModelCard } from './model-card.js';
import { ORT_NODE_SNIPPET, ORT_PYTHON_SNIPPET, TFJS_BROWSER_SNIPPET, TFJS_NODE_SNIPPET } from './snippets.js';

const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
const cell = (s: string) => s.replace(/\|/g, '\\|');

function table(header: string[], rows: (string | number)[][]): string {
  return [`| ${header.map(cell).join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.map((c) => cell(String(c))).join(' | ')} |`)].join('\n');
}

function fence(lang: string, code: string): string {
  return `\`\`\`${lang}\n${code.trimEnd()}\n\`\`\``;
}

function splitText(card: ModelCard): string {
  const s = card.split;
  return s.kind === 'random' ? `random, ${pct(s.validPct)} for validation, seed ${s.seed} (fastai's RandomSplitter)` : `by folder: \`${s.trainName}/\` and \`${s.validName}/\``;
}

function usage(card: ModelCard): string {
  if (card.modelFormat === 'tfjs') {
    return [
      '### TF.js in a browser',
      fence('html', TFJS_BROWSER_SNIPPET),
      '### TF.js in Node.js',
      'Reproduces the app\'s preprocessing exactly (same crop, same libvips resize), so it gives the app\'s probabilities.',
      fence('js', TFJS_NODE_SNIPPET),
      '### ONNX Runtime',
      'Export the same run with `--format onnx` for an ONNX file (Python and JavaScript code is in that folder\'s README).',
    ].join('\n\n');
  }
  return [
    '### ONNX Runtime in Python',
    'Pillow\'s bilinear resize differs slightly from libvips\', so probabilities can differ from the app\'s in the third decimal.',
    fence('python', ORT_PYTHON_SNIPPET),
    '### ONNX Runtime in Node.js',
    'Reproduces the app\'s preprocessing exactly (same crop, same libvips resize), so it gives the app\'s probabilities.',
    fence('js', ORT_NODE_SNIPPET),
    '### TF.js',
    'Export the same run with `--format tfjs` for a TF.js LayersModel (loading code is in that folder\'s README).',
  ].join('\n\n');
}

export function renderReadme(card: ModelCard): string {
  const a = card.architecture;
  const size = card.input.size;
  const v = card.validation;
  const t = card.training;
  const out: string[] = [];
  out.push(`# ${a.arch} image classifier: ${card.labels.length <= 6 ? card.labels.join(' / ') : `${card.labels.length} classes`}`);
  out.push(
    `Fine-tuned with Finetune Studio ${card.app.trainedWithVersion} (fastai's \`vision_learner\` + \`fine_tune\`) from ${a.title}. ` +
      (v ? `Validation accuracy **${pct(v.accuracy)}** (error rate ${pct(v.errorRate)}) on ${v.images} images. ` : 'The run has no validation result. ') +
      (t.status === 'cancelled' ? '**The run was cancelled before it finished: this model holds the weights at that point.** ' : '') +
      `Exported as ${card.modelFormat === 'tfjs' ? 'a TF.js LayersModel' : `ONNX (opset ${a.onnx?.opset})`} on ${card.exportedAt.slice(0, 10)}.`,
  );

  out.push('## Files');
  const fileRows: string[][] = [[card.files.model, card.modelFormat === 'tfjs' ? 'TF.js LayersModel topology and weights manifest' : 'ONNX model (graph and weights)']];
  for (const w of card.files.weights) fileRows.push([w, 'weights (float32)']);
  fileRows.push(['metadata.json', 'this card as data: labels, input, preprocessing, training, metrics']);
  out.push(table(['file', 'what'], fileRows));

  out.push('## Input and output');
  out.push(
    [
      `- **Input** \`${card.input.name}\`: float32 \`[batch, ${size}, ${size}, 3]\`, **NHWC** (channels last), RGB, values **0..255** as decoded. ` +
        `Normalisation (${card.preprocessing.normalization.formula}, mean ${JSON.stringify(card.preprocessing.normalization.mean)}, std ${JSON.stringify(card.preprocessing.normalization.std)}) is inside the model: do not normalise.`,
      `- **Output** \`${card.output.name}\`: float32 \`[batch, ${card.labels.length}]\`, ${card.output.meaning}.`,
      '- **Preprocessing** (what the app does; the model was validated on exactly this):',
      ...card.preprocessing.steps.map((s, i) => `  ${i + 1}. ${s}`),
    ].join('\n'),
  );

  out.push('## Labels');
  out.push(table(['index', 'label', 'images', 'train', 'valid'], card.labels.map((l, i) => {
    const c = card.dataset.classes.find((x) => x.name === l);
    return [i, l, c?.count ?? '', c?.train ?? '', c?.valid ?? ''];
  })));

  out.push('## Use it');
  out.push(usage(card));

  out.push('## Model');
  out.push(
    [
      `- Architecture: ${a.title} (\`${a.arch}\`): ${a.body}; fastai's head: ${a.head.pooling}, then ${a.head.sizes.slice(1).map((n, i) => `BatchNorm, Dropout(${a.head.dropouts[i]}), Linear(${a.head.sizes[i]} → ${n})`).join(', ReLU, ')}.`,
      `- Parameters: ${a.parameters.toLocaleString('en-US')}.`,
      card.pretrained.weights === 'random'
        ? '- Pretrained weights: none (the body started from a random initialisation).'
        : `- Pretrained weights: ${card.pretrained.source} (used from \`${card.pretrained.weights}\`; see ${card.pretrained.homepage}). Licence: ${card.pretrained.licence}.`,
      ...(a.onnx
        ? [`- ONNX: opset ${a.onnx.opset}, IR version ${a.onnx.irVersion}; ${a.onnx.foldedBatchNorms} BatchNorm layers folded into their convolution or linear layer, ${a.onnx.foldedPads} paddings folded into convolutions, ${a.onnx.keptBatchNorms} BatchNorm nodes kept. Operators: ${Object.entries(a.onnx.opCounts).map(([k, n]) => `${k} ×${n}`).join(', ')}.`]
        : []),
    ].join('\n'),
  );

  out.push('## Training');
  out.push(
    [
      `- Dataset: \`${card.dataset.root}\`, labels from the rule “${card.dataset.labelRule}”: ${card.dataset.found} images found, ${card.dataset.train} for training, ${card.dataset.valid} for validation, ${card.dataset.skipped} skipped.`,
      `- Split: ${splitText(card)}.`,
      `- \`fine_tune(${t.epochs}, freeze_epochs=${t.freezeEpochs})\`, base learning rate ${t.baseLr}, batch size ${t.batchSize} (${t.microBatch} per forward pass), model seed ${t.seed}, image size ${size}.`,
      ...(t.lrFindSuggestions ? [`- lr_find suggestions: ${Object.entries(t.lrFindSuggestions).map(([k, lr]) => `${k} ${lr.toExponential(2)}`).join(', ')}.`] : []),
      `- Trained on ${t.backend} in ${Math.round(t.seconds)} s (${t.startedAt} to ${t.finishedAt}); status: ${t.status}.`,
    ].join('\n'),
  );
  if (card.epochTable.length) {
    out.push(table(['phase', 'epoch', 'train_loss', 'valid_loss', 'error_rate', 'time'], card.epochTable.map((r) => [r.phase, r.epoch, r.trainLoss.toFixed(6), r.validLoss.toFixed(6), r.errorRate.toFixed(6), `${r.seconds.toFixed(1)} s`])));
  }

  if (v) {
    out.push('## Validation');
    out.push(`Loss ${v.loss.toFixed(4)}, accuracy ${pct(v.accuracy)}, error rate ${pct(v.errorRate)} on ${v.images} images.`);
    out.push('Confusion matrix (rows: actual, columns: predicted):');
    out.push(table(['actual \\ predicted', ...card.labels], v.confusion.map((row, i) => [card.labels[i], ...row])));
    out.push(table(['label', 'accuracy'], card.labels.map((l, i) => [l, pct(v.perClassAccuracy[i] ?? NaN)])));
  }

  out.push('## Verification');
  out.push(
    `After writing, the export was loaded back with ${card.verification.runtime} and run on ${card.verification.images.length} image(s) next to ${card.verification.reference}: ` +
      `the largest difference in any class probability was ${card.verification.maxAbsDiff.toExponential(2)} (limit ${card.verification.tolerance}).`,
  );

  out.push('## Provenance');
  out.push(`Finetune Studio ${card.app.version} exported this on ${card.exportedAt} from the run in \`${card.run.dir}\`. The model is only as good as its ${card.dataset.found} training photos: check it on your own images before relying on it.`);
  return `${out.join('\n\n')}\n`;
}
