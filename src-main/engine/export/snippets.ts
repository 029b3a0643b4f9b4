/**
 * Copy-paste code for loading an exported model, put in its README. The Node.js snippets are
 * complete programs (`node predict.mjs <model folder> <image>...`) that reproduce the app's
 * preprocessing pixel for pixel with sharp, so their probabilities match the app's to 1e-4; the test
 * suite runs them. The browser and Python snippets use their platform's own image resizers, which
 * differ from libvips by a little, so expect agreement to about 1e-2 there.
 *
 * Every snippet prints one line per image: `<file> <label> <JSON probabilities>`.
 */

/** sharp code for the preprocessing steps of the model card (sharp >= 0.34 for metadata().autoOrient). */
const SHARP_PIXELS = `// fastai's validation transform, as the app does it: EXIF orientation, centred square crop,
// bilinear resize to size x size, transparency onto white, RGB values 0..255 (float32, NHWC).
async function pixels(file, size) {
  const { autoOrient: { width: w, height: h } } = await sharp(file).metadata();
  const side = Math.trunc(Math.min(w / size, h / size) * size);
  const { data } = await sharp(file)
    .autoOrient()
    .extract({ left: Math.trunc(0.5 * (w - side)), top: Math.trunc(0.5 * (h - side)), width: side, height: side })
    .resize(size, size, { fit: 'fill', kernel: 'linear' })
    .flatten({ background: '#ffffff' })
    .toColourspace('srgb')
    .raw()
    .toBuffer({ resolveWithObject: true });
  return Float32Array.from(data);
}`;

export const TFJS_NODE_SNIPPET = `// Node.js: npm install @tensorflow/tfjs sharp
// node predict.mjs <model folder> <image>...
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { readFile } from 'node:fs/promises';
import path from 'node:path';

const [dir, ...images] = process.argv.slice(2);
const meta = JSON.parse(await readFile(path.join(dir, 'metadata.json'), 'utf8'));
const json = JSON.parse(await readFile(path.join(dir, 'model.json'), 'utf8'));
const shards = await Promise.all(json.weightsManifest.flatMap((g) => g.paths).map((p) => readFile(path.join(dir, p))));
const model = await tf.loadLayersModel(tf.io.fromMemory({
  modelTopology: json.modelTopology,
  weightSpecs: json.weightsManifest.flatMap((g) => g.weights),
  weightData: new Uint8Array(Buffer.concat(shards)).buffer,
}));

${SHARP_PIXELS}

const size = meta.input.size;
for (const file of images) {
  const input = tf.tensor4d(await pixels(file, size), [1, size, size, 3]);
  const output = model.predict(input);
  const probs = Array.from(await output.data());
  tf.dispose([input, output]);
  const best = probs.indexOf(Math.max(...probs));
  console.log(file, meta.labels[best], JSON.stringify(probs));
}
`;

export const TFJS_BROWSER_SNIPPET = `<!-- Serve this folder over HTTP; the page sits beside model.json. -->
<img id="photo" src="photo.jpg" crossorigin="anonymous">
<script type="module">
import * as tf from 'https://cdn.jsdelivr.net/npm/@tensorflow/tfjs@4.22.0/+esm';

const meta = await (await fetch('metadata.json')).json();
const model = await tf.loadLayersModel('model.json');
const img = document.getElementById('photo');
await img.decode();
const size = meta.input.size;
const output = tf.tidy(() => {
  const rgb = tf.browser.fromPixels(img); // [h, w, 3], EXIF orientation already applied by the browser
  const [h, w] = rgb.shape;
  const side = Math.trunc(Math.min(w / size, h / size) * size);
  const square = rgb.slice([Math.trunc(0.5 * (h - side)), Math.trunc(0.5 * (w - side)), 0], [side, side, 3]);
  const input = tf.image.resizeBilinear(square.toFloat(), [size, size], false, true).expandDims(0); // 0..255
  return model.predict(input);
});
const probs = Array.from(await output.data());
output.dispose();
const best = probs.indexOf(Math.max(...probs));
console.log(img.src, meta.labels[best], JSON.stringify(probs));
</script>
`;

export const ORT_NODE_SNIPPET = `// Node.js: npm install onnxruntime-node sharp
// node predict.mjs <model folder> <image>...
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { readFile } from 'node:fs/promises';
import path from 'node:path';

const [dir, ...images] = process.argv.slice(2);
const meta = JSON.parse(await readFile(path.join(dir, 'metadata.json'), 'utf8'));
const session = await ort.InferenceSession.create(path.join(dir, 'model.onnx'));

${SHARP_PIXELS}

const size = meta.input.size;
for (const file of images) {
  const input = new ort.Tensor('float32', await pixels(file, size), [1, size, size, 3]);
  const output = await session.run({ [meta.input.name]: input });
  const probs = Array.from(output[meta.output.name].data);
  const best = probs.indexOf(Math.max(...probs));
  console.log(file, meta.labels[best], JSON.stringify(probs));
}
`;

export const ORT_PYTHON_SNIPPET = `# pip install onnxruntime pillow numpy
# python predict.py <model folder> <image>...
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps

folder = Path(sys.argv[1])
meta = json.loads((folder / "metadata.json").read_text())
size = meta["input"]["size"]
session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])


def pixels(path):
    """fastai's validation transform: centred square crop, bilinear resize, RGB 0..255, NHWC."""
    img = ImageOps.exif_transpose(Image.open(path))
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        img = Image.new("RGB", rgba.size, (255, 255, 255))
        img.paste(rgba, mask=rgba.getchannel("A"))
    img = img.convert("RGB")
    w, h = img.size
    side = int(min(w / size, h / size) * size)
    left, top = int(0.5 * (w - side)), int(0.5 * (h - side))
    img = img.crop((left, top, left + side, top + side)).resize((size, size), Image.BILINEAR)
    return np.asarray(img, dtype=np.float32)[None]  # [1, size, size, 3]


for path in sys.argv[2:]:
    probs = session.run([meta["output"]["name"]], {meta["input"]["name"]: pixels(path)})[0][0]
    best = int(probs.argmax())
    print(path, meta["labels"][best], json.dumps(probs.tolist()))
`;
