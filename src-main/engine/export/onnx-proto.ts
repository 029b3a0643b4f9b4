/**
 * ONNX model files (`onnx.proto`, proto2): the messages an inference graph needs, as plain objects,
 * and their encoding. Field numbers are those of onnx/onnx.proto (ModelProto, GraphProto, NodeProto,
 * AttributeProto, TensorProto, ValueInfoProto, TypeProto, TensorShapeProto, OperatorSetIdProto,
 * StringStringEntryProto). The decoder reads back the structure (not the weights' values) so tests
 * and the model-folder checks can inspect a file without a protobuf library.
 */
import { decodeString, float32Bytes, int64, ProtoWriter, readFields, unpackVarints, type ProtoField } from './protobuf.js';

/** TensorProto.DataType values used here. */
export const ONNX_FLOAT = 1;
export const ONNX_INT64 = 7;

export type OnnxAttribute =
  | { type: 'int'; value: number }
  | { type: 'float'; value: number }
  | { type: 'string'; value: string }
  | { type: 'ints'; value: number[] }
  | { type: 'floats'; value: number[] };

/** AttributeProto.AttributeType */
const ATTR_TYPE = { float: 1, int: 2, string: 3, floats: 6, ints: 7 } as const;

export interface OnnxNode {
  opType: string;
  name: string;
  inputs: string[];
  outputs: string[];
  attributes: Record<string, OnnxAttribute>;
}

export type OnnxTensorData = { type: 'float32'; values: Float32Array } | { type: 'int64'; values: number[] };

export interface OnnxTensor {
  name: string;
  dims: number[];
  data: OnnxTensorData;
}

export interface OnnxValueInfo {
  name: string;
  elemType: number;
  /** Numbers are fixed sizes; strings are symbolic (e.g. 'batch'). */
  shape: (number | string)[];
}

export interface OnnxGraph {
  name: string;
  nodes: OnnxNode[];
  initializers: OnnxTensor[];
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
  docString?: string;
}

export interface OnnxModel {
  irVersion: number;
  opsetVersion: number;
  producerName: string;
  producerVersion: string;
  docString?: string;
  graph: OnnxGraph;
  metadata: Record<string, string>;
}

export const attr = {
  int: (value: number): OnnxAttribute => ({ type: 'int', value }),
  float: (value: number): OnnxAttribute => ({ type: 'float', value }),
  string: (value: string): OnnxAttribute => ({ type: 'string', value }),
  ints: (value: number[]): OnnxAttribute => ({ type: 'ints', value }),
  floats: (value: number[]): OnnxAttribute => ({ type: 'floats', value }),
};

function encodeAttribute(name: string, a: OnnxAttribute): ProtoWriter {
  const w = new ProtoWriter().string(1, name).varint(20, ATTR_TYPE[a.type]);
  switch (a.type) {
    case 'float':
      return w.float(2, a.value);
    case 'int':
      return w.varint(3, a.value);
    case 'string':
      return w.string(4, a.value);
    case 'floats':
      return w.packedFloats(7, a.value);
    case 'ints':
      return w.packedVarints(8, a.value);
  }
}

function encodeNode(n: OnnxNode): ProtoWriter {
  const w = new ProtoWriter();
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  w.string(3, n.name).string(4, n.opType);
  for (const [name, a] of Object.entries(n.attributes)) w.message(5, encodeAttribute(name, a));
  return w;
}

function encodeTensor(t: OnnxTensor): ProtoWriter {
  const w = new ProtoWriter();
  if (t.dims.length) w.packedVarints(1, t.dims);
  const count = t.dims.reduce((a, b) => a * b, 1);
  if (t.data.values.length !== count) throw new Error(`ONNX tensor ${t.name}: ${t.data.values.length} values for dims [${t.dims}]`);
  if (t.data.type === 'float32') {
    w.varint(2, ONNX_FLOAT).string(8, t.name).bytes(9, float32Bytes(t.data.values));
  } else {
    w.varint(2, ONNX_INT64).packedVarints(7, t.data.values).string(8, t.name);
  }
  return w;
}

function encodeValueInfo(v: OnnxValueInfo): ProtoWriter {
  const shape = new ProtoWriter();
  for (const d of v.shape) shape.message(1, typeof d === 'number' ? new ProtoWriter().varint(1, d) : new ProtoWriter().string(2, d));
  const tensorType = new ProtoWriter().varint(1, v.elemType).message(2, shape);
  return new ProtoWriter().string(1, v.name).message(2, new ProtoWriter().message(1, tensorType));
}

function encodeGraph(g: OnnxGraph): ProtoWriter {
  const w = new ProtoWriter();
  for (const n of g.nodes) w.message(1, encodeNode(n));
  w.string(2, g.name);
  for (const t of g.initializers) w.message(5, encodeTensor(t));
  if (g.docString) w.string(10, g.docString);
  for (const i of g.inputs) w.message(11, encodeValueInfo(i));
  for (const o of g.outputs) w.message(12, encodeValueInfo(o));
  return w;
}

export function encodeOnnxModel(m: OnnxModel): Uint8Array {
  const w = new ProtoWriter().varint(1, m.irVersion).string(2, m.producerName).string(3, m.producerVersion);
  if (m.docString) w.string(6, m.docString);
  w.message(7, encodeGraph(m.graph));
  w.message(8, new ProtoWriter().string(1, '').varint(2, m.opsetVersion));
  for (const [key, value] of Object.entries(m.metadata)) w.message(14, new ProtoWriter().string(1, key).string(2, value));
  return w.finish();
}

// ---- decoding (structure only) ----

export interface DecodedTensorInfo {
  name: string;
  dims: number[];
  dataType: number;
}

export interface DecodedOnnxModel {
  irVersion: number;
  opsetVersion: number | undefined;
  producerName: string;
  producerVersion: string;
  graph: Omit<OnnxGraph, 'initializers'> & { initializers: DecodedTensorInfo[] };
  metadata: Record<string, string>;
}

const str = (f: ProtoField) => decodeString(f.bytes!);

function decodeAttribute(buf: Uint8Array): [string, OnnxAttribute] {
  let name = '';
  let a: OnnxAttribute | undefined;
  const floats: number[] = [];
  const ints: number[] = [];
  let type = 0;
  for (const f of readFields(buf)) {
    if (f.field === 1) name = str(f);
    else if (f.field === 20) type = Number(f.int);
    else if (f.field === 2) a = { type: 'float', value: f.float! };
    else if (f.field === 3) a = { type: 'int', value: int64(f.int!) };
    else if (f.field === 4) a = { type: 'string', value: str(f) };
    else if (f.field === 7) {
      if (f.bytes) for (let i = 0; i + 4 <= f.bytes.length; i += 4) floats.push(new DataView(f.bytes.buffer, f.bytes.byteOffset + i, 4).getFloat32(0, true));
      else floats.push(f.float!);
    } else if (f.field === 8) {
      if (f.bytes) ints.push(...unpackVarints(f.bytes));
      else ints.push(int64(f.int!));
    }
  }
  if (type === ATTR_TYPE.floats) a = { type: 'floats', value: floats };
  if (type === ATTR_TYPE.ints) a = { type: 'ints', value: ints };
  if (!a) throw new Error(`attribute ${name} has no value`);
  return [name, a];
}

function decodeValueInfo(buf: Uint8Array): OnnxValueInfo {
  const v: OnnxValueInfo = { name: '', elemType: 0, shape: [] };
  for (const f of readFields(buf)) {
    if (f.field === 1) v.name = str(f);
    if (f.field !== 2) continue;
    for (const t of readFields(f.bytes!)) {
      if (t.field !== 1) continue;
      for (const tt of readFields(t.bytes!)) {
        if (tt.field === 1) v.elemType = Number(tt.int);
        if (tt.field !== 2) continue;
        for (const dim of readFields(tt.bytes!)) {
          for (const d of readFields(dim.bytes!)) {
            if (d.field === 1) v.shape.push(int64(d.int!));
            if (d.field === 2) v.shape.push(str(d));
          }
        }
      }
    }
  }
  return v;
}

export function decodeOnnxModel(bytes: Uint8Array): DecodedOnnxModel {
  const model: DecodedOnnxModel = {
    irVersion: 0,
    opsetVersion: undefined,
    producerName: '',
    producerVersion: '',
    graph: { name: '', nodes: [], initializers: [], inputs: [], outputs: [] },
    metadata: {},
  };
  for (const f of readFields(bytes)) {
    if (f.field === 1) model.irVersion = int64(f.int!);
    else if (f.field === 2) model.producerName = str(f);
    else if (f.field === 3) model.producerVersion = str(f);
    else if (f.field === 8) {
      let domain = '';
      let version: number | undefined;
      for (const o of readFields(f.bytes!)) {
        if (o.field === 1) domain = str(o);
        if (o.field === 2) version = int64(o.int!);
      }
      if (domain === '' || domain === 'ai.onnx') model.opsetVersion = version;
    } else if (f.field === 14) {
      let key = '';
      let value = '';
      for (const e of readFields(f.bytes!)) {
        if (e.field === 1) key = str(e);
        if (e.field === 2) value = str(e);
      }
      model.metadata[key] = value;
    } else if (f.field === 7) {
      for (const g of readFields(f.bytes!)) {
        if (g.field === 2) model.graph.name = str(g);
        else if (g.field === 11) model.graph.inputs.push(decodeValueInfo(g.bytes!));
        else if (g.field === 12) model.graph.outputs.push(decodeValueInfo(g.bytes!));
        else if (g.field === 10) model.graph.docString = str(g);
        else if (g.field === 1) {
          const node: OnnxNode = { opType: '', name: '', inputs: [], outputs: [], attributes: {} };
          for (const n of readFields(g.bytes!)) {
            if (n.field === 1) node.inputs.push(str(n));
            else if (n.field === 2) node.outputs.push(str(n));
            else if (n.field === 3) node.name = str(n);
            else if (n.field === 4) node.opType = str(n);
            else if (n.field === 5) {
              const [name, a] = decodeAttribute(n.bytes!);
              node.attributes[name] = a;
            }
          }
          model.graph.nodes.push(node);
        } else if (g.field === 5) {
          const t: DecodedTensorInfo = { name: '', dims: [], dataType: 0 };
          for (const x of readFields(g.bytes!)) {
            if (x.field === 1) {
              if (x.bytes) t.dims.push(...unpackVarints(x.bytes));
              else t.dims.push(int64(x.int!));
            } else if (x.field === 2) t.dataType = Number(x.int);
            else if (x.field === 8) t.name = str(x);
          }
          model.graph.initializers.push(t);
        }
      }
    }
  }
  return model;
}
