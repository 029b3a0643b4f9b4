import { parseArgs } from 'node:util';
import { datasetStatus, type DatasetStatus } from '../../engine/download/get-dataset.js';
import { DATASETS, DEFAULT_DATASET_ID, type DatasetEntry } from '../../engine/download/registry.js';
import { defaultCacheDir, expandHome } from '../../engine/paths.js';
import type { CliCommand } from '../command.js';
import { formatBytes } from '../progress-bar.js';

/** `datasets` is injectable so tests can list entries served by a local server. */
export function createDatasetListCommand(deps: { datasets?: readonly DatasetEntry[] } = {}): CliCommand {
  const datasets = deps.datasets ?? DATASETS;
  return {
    name: 'dataset list',
    summary: 'list the datasets `dataset get` can download, and which are already here',
    usage: `finetune-studio dataset list [--cache-dir DIR] [--json]

Lists the downloadable datasets (fastai's URLs.*), their download size and whether each is
ready, downloaded but not extracted, partly downloaded (the next get resumes), or absent.
  --cache-dir DIR  where datasets live (default: $FINETUNE_STUDIO_CACHE, else
                   $XDG_CACHE_HOME/finetune-studio, else ~/.cache/finetune-studio)
  --json           one JSON array on stdout, for scripts`,
    async run(args) {
      const { values } = parseArgs({ args, options: { 'cache-dir': { type: 'string' }, json: { type: 'boolean' } }, strict: true });
      const cacheDir = values['cache-dir'] ? expandHome(values['cache-dir']) : defaultCacheDir();
      const rows = await Promise.all(datasets.map(async (d) => ({ d, status: await datasetStatus(d, cacheDir) })));

      if (values.json) {
        const json = rows.map(({ d, status }) => ({
          id: d.id,
          title: d.title,
          fastaiName: d.fastaiName,
          url: d.url,
          sizeBytes: d.sizeBytes,
          imageCount: d.imageCount,
          state: status.state,
          folder: status.folder,
          partialBytes: status.partialBytes,
        }));
        console.log(JSON.stringify(json, null, 2));
        return 0;
      }

      const table = [
        ['id', 'size', 'here', 'dataset'],
        ...rows.map(({ d, status }) => [
          d.id + (d.id === DEFAULT_DATASET_ID ? '*' : ''),
          formatBytes(d.sizeBytes),
          describeState(status, d.sizeBytes),
          `${d.title} (${d.fastaiName})`,
        ]),
      ];
      const widths = table[0].map((_, col) => Math.max(...table.map((row) => row[col].length)));
      console.log(`Datasets in ${cacheDir}:\n`);
      for (const row of table) console.log(`  ${row.map((cell, col) => (col === row.length - 1 ? cell : cell.padEnd(widths[col]))).join('  ')}`);
      console.log(`\n* the default. Get one with: finetune-studio dataset get <id>`);
      return 0;
    },
  };
}

function describeState(status: DatasetStatus, size: number): string {
  switch (status.state) {
    case 'ready':
      return 'ready';
    case 'downloaded':
      return 'downloaded (not extracted)';
    case 'partial':
      return `partial ${Math.floor(((status.partialBytes ?? 0) / size) * 100)}% (get resumes)`;
    case 'invalid':
      return 'folder incomplete';
    case 'absent':
      return '-';
  }
}

export const datasetListCommand = createDatasetListCommand();
