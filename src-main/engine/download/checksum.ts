/**
 * File checks: size plus a hash. `md5-first-mib` is fastai/fastdownload's check (`path_stats`: the
 * size and the md5 of the first 2**20 bytes), which lets an 800 MB archive be re-checked in
 * milliseconds every time a dataset is requested; `md5` and `sha256` hash the whole file.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';

export type ChecksumAlgorithm = 'md5-first-mib' | 'md5' | 'sha256';
export interface Checksum {
  algorithm: ChecksumAlgorithm;
  /** Lower-case hex digest. */
  value: string;
}

export const ONE_MIB = 1 << 20;

export async function hashFile(file: string, algorithm: ChecksumAlgorithm): Promise<string> {
  const hash = createHash(algorithm === 'sha256' ? 'sha256' : 'md5');
  const end = algorithm === 'md5-first-mib' ? ONE_MIB - 1 : undefined;
  for await (const chunk of createReadStream(file, { end, highWaterMark: ONE_MIB })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export interface ExpectedFile {
  expectedSize?: number;
  checksum?: Checksum;
}

/**
 * Checks `file` against what is expected. Resolves to `undefined` when it matches, else to one
 * sentence saying what differs (both values), for the caller to put in its error.
 */
export async function findMismatch(file: string, expected: ExpectedFile): Promise<string | undefined> {
  const { size } = await stat(file);
  if (expected.expectedSize !== undefined && size !== expected.expectedSize) {
    return `it is ${size.toLocaleString('en-US')} bytes, expected ${expected.expectedSize.toLocaleString('en-US')}`;
  }
  if (expected.checksum) {
    const actual = await hashFile(file, expected.checksum.algorithm);
    if (actual !== expected.checksum.value.toLowerCase()) {
      return `its ${expected.checksum.algorithm} is ${actual}, expected ${expected.checksum.value}`;
    }
  }
  return undefined;
}
