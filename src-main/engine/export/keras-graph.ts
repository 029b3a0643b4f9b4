/**
 * A Keras model topology (the `modelTopology` of a TF.js LayersModel `model.json`, Keras 2 JSON) as a
 * flat list of layer calls in execution order, nested models inlined.
 *
 * Why from the JSON rather than the live TF.js objects: the JSON is the documented, stable format,
 * it is exactly what the exported `model.json` holds (so the ONNX file is translated from the very
 * artefact a TF.js consumer loads), and it needs no TF.js internals.
 *
 * Connectivity follows Keras: a layer's `inbound_nodes[k]` lists, for its k-th call, the
 * `[layer, node_index, tensor_index, kwargs]` it reads. A nested model counts its own construction as
 * node 0, so its k-th call is node k+1; plain layers number calls from 0. Layers that are the
 * identity at inference (Dropout and friends, `Activation('linear')`) are resolved here as aliases,
 * so later passes see, for example, BatchNorm -> Dense directly even with a Dropout between them.
 */

export interface KerasLayerJson {
  class_name: string;
  config: Record<string, unknown> & { name?: string };
  name?: string;
  inbound_nodes?: unknown[];
}

export interface LayerCall {
  className: string;
  /** The layer's own name (weights are named `${layerName}/kernel` etc.). */
  layerName: string;
  /** Unique across the flattened graph (used to name ONNX values and nodes). */
  id: string;
  config: Record<string, unknown>;
  inputs: string[];
  output: string;
}

export interface FlatGraph {
  input: { id: string; shape: (number | null)[] };
  output: string;
  calls: LayerCall[];
}

const CONTAINERS = new Set(['Model', 'Functional', 'Sequential']);
const INFERENCE_IDENTITY = new Set(['Dropout', 'SpatialDropout1D', 'SpatialDropout2D', 'SpatialDropout3D', 'GaussianNoise', 'GaussianDropout', 'AlphaDropout', 'ActivityRegularization']);

type NodeRef = [string, number, number, unknown?];

function isIdentity(layer: KerasLayerJson): boolean {
  return INFERENCE_IDENTITY.has(layer.class_name) || (layer.class_name === 'Activation' && layer.config.activation === 'linear');
}

function layerName(layer: KerasLayerJson): string {
  const name = layer.name ?? layer.config.name;
  if (typeof name !== 'string' || !name) throw new Error(`A ${layer.class_name} layer in the topology has no name`);
  return name;
}

/** The model config inside a `modelTopology` (TF.js writes it bare; Keras H5 conversions wrap it in `model_config`). */
export function modelConfigOf(topology: unknown): KerasLayerJson {
  const t = topology as { model_config?: unknown; class_name?: string };
  const model = (t && typeof t === 'object' && 'model_config' in t ? t.model_config : t) as KerasLayerJson | undefined;
  if (!model || typeof model !== 'object' || !CONTAINERS.has(model.class_name)) {
    throw new Error(`The topology is not a Keras model (class_name ${JSON.stringify(model?.class_name)}; expected Model, Functional or Sequential)`);
  }
  return model;
}

class Flattener {
  readonly calls: LayerCall[] = [];
  private readonly usedIds: Set<string>;

  constructor(reserved: string[]) {
    this.usedIds = new Set(reserved);
  }

  private uniqueId(name: string, scope: string): string {
    let id = this.usedIds.has(name) ? `${scope}${name}` : name;
    for (let k = 2; this.usedIds.has(id); k++) id = `${scope}${name}_${k}`;
    this.usedIds.add(id);
    return id;
  }

  /** Applies a layer (or nested model) to `inputs`; returns the id of its output tensor. */
  apply(layer: KerasLayerJson, inputs: string[], scope: string): string {
    if (CONTAINERS.has(layer.class_name)) return this.applyModel(layer, inputs, `${scope}${layerName(layer)}/`);
    if (isIdentity(layer)) {
      if (inputs.length !== 1) throw new Error(`Layer "${layerName(layer)}" (${layer.class_name}) expects one input, got ${inputs.length}`);
      return inputs[0];
    }
    const name = layerName(layer);
    const id = this.uniqueId(name, scope);
    this.calls.push({ className: layer.class_name, layerName: name, id, config: layer.config, inputs, output: id });
    return id;
  }

  applyModel(model: KerasLayerJson, inputs: string[], scope: string): string {
    if (model.class_name === 'Sequential') {
      const layers = (Array.isArray(model.config) ? model.config : (model.config.layers as KerasLayerJson[] | undefined)) ?? [];
      let x = inputs[0];
      for (const l of layers) if (l.class_name !== 'InputLayer') x = this.apply(l, [x], scope);
      return x;
    }
    const cfg = model.config as { layers?: KerasLayerJson[]; input_layers?: NodeRef[]; output_layers?: NodeRef[] };
    if (!Array.isArray(cfg.layers) || !Array.isArray(cfg.input_layers) || !Array.isArray(cfg.output_layers)) {
      throw new Error(`Model "${model.config.name ?? scope}" has no layers/input_layers/output_layers: not a Keras 2 functional config`);
    }
    if (cfg.input_layers.length !== inputs.length) throw new Error(`Model "${model.config.name}" takes ${cfg.input_layers.length} inputs, got ${inputs.length}`);
    if (cfg.output_layers.length !== 1) throw new Error(`Model "${model.config.name}" has ${cfg.output_layers.length} outputs; only single-output models are exported`);
    const tensors = new Map<string, string>();
    const key = (ref: NodeRef) => `${ref[0]}:${ref[1]}:${ref[2]}`;
    cfg.input_layers.forEach((ref, i) => tensors.set(key(ref), inputs[i]));

    // Every (layer, call) still to run, in config order; run whichever has its inputs, until none is left.
    const pending: { layer: KerasLayerJson; nodeIndex: number; refs: NodeRef[] }[] = [];
    for (const layer of cfg.layers) {
      if (layer.class_name === 'InputLayer') continue;
      const offset = CONTAINERS.has(layer.class_name) ? 1 : 0;
      (layer.inbound_nodes ?? []).forEach((node, k) => {
        if (!Array.isArray(node)) throw new Error(`Layer "${layerName(layer)}" has inbound nodes in a format other than Keras 2 lists`);
        pending.push({ layer, nodeIndex: k + offset, refs: node as NodeRef[] });
      });
    }
    while (pending.length) {
      const ready = pending.findIndex((p) => p.refs.every((r) => tensors.has(key(r))));
      if (ready < 0) {
        const p = pending[0];
        throw new Error(`Layer "${layerName(p.layer)}" reads ${p.refs.map((r) => r[0]).join(', ')}, which nothing produces: the topology is inconsistent`);
      }
      const [p] = pending.splice(ready, 1);
      const out = this.apply(p.layer, p.refs.map((r) => tensors.get(key(r))!), scope);
      tensors.set(`${layerName(p.layer)}:${p.nodeIndex}:0`, out);
    }
    const out = tensors.get(key(cfg.output_layers[0]));
    if (!out) throw new Error(`Model "${model.config.name}" names output ${cfg.output_layers[0][0]}, which is never computed`);
    return out;
  }
}

function inputShapeOf(model: KerasLayerJson): (number | null)[] {
  if (model.class_name === 'Sequential') {
    const layers = (Array.isArray(model.config) ? model.config : (model.config.layers as KerasLayerJson[])) ?? [];
    const first = layers[0];
    const shape = (first?.config.batch_input_shape ?? first?.config.batchInputShape) as (number | null)[] | undefined;
    if (!shape) throw new Error('The Sequential model does not record its input shape (batch_input_shape)');
    return shape;
  }
  const cfg = model.config as { layers: KerasLayerJson[]; input_layers: NodeRef[] };
  if (cfg.input_layers?.length !== 1) throw new Error(`The model has ${cfg.input_layers?.length ?? 0} inputs; only single-input models are exported`);
  const inputLayer = cfg.layers.find((l) => layerName(l) === cfg.input_layers[0][0]);
  const shape = inputLayer?.config.batch_input_shape as (number | null)[] | undefined;
  if (!shape) throw new Error(`Input layer "${cfg.input_layers[0][0]}" does not record its shape (batch_input_shape)`);
  return shape;
}

export function flattenKerasModel(topology: unknown, inputId = 'input'): FlatGraph {
  const model = modelConfigOf(topology);
  const f = new Flattener([inputId]);
  const output = f.applyModel(model, [inputId], '');
  return { input: { id: inputId, shape: inputShapeOf(model) }, output, calls: f.calls };
}
