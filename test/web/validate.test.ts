/** Every request payload is checked before anything runs: these are the refusals a renderer (or anyone with the port) meets. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CHANNELS } from '../../src-main/api/contract.js';
import { PayloadError, validateRequest } from '../../src-main/api/validate.js';

const dataset = { root: '/photos', label: { kind: 'is-cat' }, split: { kind: 'random', validPct: 0.2, seed: 42 } };
const settings = { dataset, arch: 'resnet34', size: 224, epochs: 1, freezeEpochs: 1, baseLr: 0.002, seed: 42 };

function refused(channel: string, payload: unknown, message: RegExp) {
  assert.throws(() => validateRequest(channel, payload), (err: Error) => err instanceof PayloadError && message.test(err.message), `${channel} ${JSON.stringify(payload)}`);
}

describe('API payload validation', () => {
  test('accepts well-formed requests and returns only known fields', () => {
    assert.deepEqual(validateRequest('train:start', { jobId: 'train-1', settings }).payload, { jobId: 'train-1', settings });
    assert.deepEqual(validateRequest('app:info', undefined).payload, {});
    assert.deepEqual(validateRequest<'predict:images'>('predict:images', { jobId: 'p1', runId: '2024-05-01T10-00-00-000Z', images: [{ kind: 'path', path: '/a.jpg' }, { kind: 'upload', id: '0f8fad5b-d9cb-469f-a165-70867728950e' }] }).payload.images.length, 2);
    assert.deepEqual(validateRequest<'dataset:scan'>('dataset:scan', { jobId: 'j', dataset: { root: '/p', label: { kind: 'regex', pattern: '^(.+)_\\d+' }, split: { kind: 'folder', trainName: 'train', validName: 'valid' } } }).payload.dataset.split, { kind: 'folder', trainName: 'train', validName: 'valid' });
  });

  test('every channel of the contract has a validator', () => {
    for (const c of CHANNELS) {
      try {
        validateRequest(c, {});
      } catch (err) {
        assert.ok(err instanceof PayloadError, `${c}: ${(err as Error).message}`);
      }
    }
  });

  test('refuses unknown channels, unknown fields and wrong types, naming the field', () => {
    refused('fs:read', {}, /unknown channel/);
    refused('__proto__', {}, /unknown channel/);
    refused('app:info', { extra: 1 }, /payload\.extra is not a known field/);
    refused('app:info', [], /must be an object/);
    refused('train:start', { jobId: 'j', settings: { ...settings, size: '224' } }, /settings\.size must be a finite number/);
    refused('train:start', { jobId: 'j', settings: { ...settings, size: 8 } }, /settings\.size must be between 32 and 1024/);
    refused('train:start', { jobId: 'j', settings: { ...settings, epochs: 1.5 } }, /settings\.epochs must be a whole number/);
    refused('train:start', { jobId: 'j', settings: { ...settings, epochs: 0, freezeEpochs: 0 } }, /add up to at least 1/);
    refused('train:start', { jobId: 'j', settings: { ...settings, baseLr: Infinity } }, /baseLr must be a finite number/);
    refused('train:start', { jobId: 'j', settings: { ...settings, arch: '../../evil' } }, /arch has an unexpected form/);
    refused('train:start', { jobId: 'j', settings: { ...settings, outDir: '/etc' } }, /settings\.outDir is not a known field/);
    refused('dataset:scan', { jobId: 'j', dataset: { ...dataset, label: { kind: 'python' } } }, /label\.kind must be one of/);
    refused('dataset:scan', { jobId: 'j', dataset: { ...dataset, label: { kind: 'is-cat', pattern: 'x' } } }, /label\.pattern is not a known field/);
    refused('dataset:scan', { jobId: 'j', dataset: { ...dataset, split: { kind: 'random', validPct: 1, seed: 1 } } }, /validPct must be between/);
    refused('dataset:scan', { jobId: 'j', dataset: { ...dataset, split: { kind: 'folder', trainName: '../x', validName: 'v' } } }, /trainName has an unexpected form/);
    refused('dataset:scan', { jobId: 'j', dataset: { ...dataset, root: 'a'.repeat(5000) } }, /root must have at most 4096/);
    refused('dataset:scan', { jobId: 'j', dataset: { ...dataset, root: '/a\0b' } }, /NUL/);
    refused('dataset:scan', { jobId: 'j', dataset: { ...dataset, root: '' } }, /root must not be empty/);
  });

  test('ids cannot smuggle paths', () => {
    refused('runs:get', { runId: '../../etc' }, /runId has an unexpected form/);
    refused('runs:get', { runId: '.hidden' }, /runId has an unexpected form/);
    refused('runs:get', { runId: 'a/b' }, /runId has an unexpected form/);
    refused('job:cancel', { jobId: 'a b' }, /jobId has an unexpected form/);
    refused('predict:images', { jobId: 'j', runId: 'r', images: [{ kind: 'upload', id: '../../etc/passwd' }] }, /images\[0\]\.id has an unexpected form/);
    refused('predict:images', { jobId: 'j', runId: 'r', images: [] }, /images must hold 1 to 200/);
    refused('export:run', { jobId: 'j', runId: 'r', format: 'pickle' }, /format must be tfjs or onnx/);
  });
});
