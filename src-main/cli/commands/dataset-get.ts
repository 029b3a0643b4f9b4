import { parseArgs } from 'node:util';
import { ensureDataset, type DatasetProgress } from '../../engine/download/get-dataset.js';
import { isAbortError } from '../../engine/download/errors.js';
import { DATASETS, findDataset, type DatasetEntry } from '../../engine/download/registry.js';
import { ARCHIVE_DIR_ENV, MIRROR_ENV } from '../../engine/download/source.js';
import { defaultCacheDir, expandHome } from '../../engine/paths.js';
import { UsageError, type CliCommand } from '../command.js';
import { createProgressBar, formatBytes, type ProgressBar } from '../progress-bar.js';

export interface DatasetGetDeps {
  /** The registry; tests pass entries served by a local server. */
  datasets?: readonly DatasetEntry[];
  /** Where progress bars and notes go (default stderr, so stdout carries only the folder). */
  stream?: NodeJS.WriteStream;
}

export function createDatasetGetCommand(deps: DatasetGetDeps = {}): CliCommand {
  const datasets = deps.datasets ?? DATASETS;
  const stream = deps.stream ?? process.stderr;
  const ids = datasets.map((d) => d.id).join(', ');
  return {
    name: 'dataset get',
    summary: "download and extract a dataset, like fastai's untar_data",
    usage: `finetune-studio dataset get <id> [--cache-dir DIR] [--mirror URL] [--archive PATH] [--delete-archive]

Downloads the dataset's archive (resuming an interrupted download), checks its size and checksum
as fastai does, and extracts it into the cache. Prints the dataset folder on stdout; progress
goes to stderr. Does nothing when the dataset is already there. Ctrl-C keeps the partial
download for the next run.

Datasets: ${ids} (see \`finetune-studio dataset list\`)
  --cache-dir DIR   where datasets live (default: $FINETUNE_STUDIO_CACHE, else
                    $XDG_CACHE_HOME/finetune-studio, else ~/.cache/finetune-studio)
  --mirror URL      fetch <URL>/<archive name> instead of the internet ($${MIRROR_ENV})
  --archive PATH    use this local archive, or the one in this folder ($${ARCHIVE_DIR_ENV})
  --delete-archive  delete the downloaded archive after extracting (saves disk; fastai keeps it)`,
    async run(args) {
      const { values, positionals } = parseArgs({
        args,
        allowPositionals: true,
        strict: true,
        options: {
          'cache-dir': { type: 'string' },
          mirror: { type: 'string' },
          archive: { type: 'string' },
          'delete-archive': { type: 'boolean' },
        },
      });
      if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? `Name a dataset: ${ids}.` : `Name one dataset, not ${positionals.length}.`);
      let dataset: DatasetEntry;
      try {
        dataset = findDataset(positionals[0], datasets);
      } catch (err) {
        throw new UsageError((err as Error).message);
      }

      const controller = new AbortController();
      const onSigint = () => controller.abort();
      process.once('SIGINT', onSigint);
      const progress = new PhaseBars(dataset, stream);
      try {
        const result = await ensureDataset(dataset, {
          cacheDir: values['cache-dir'] ? expandHome(values['cache-dir']) : defaultCacheDir(),
          mirrorBaseUrl: values.mirror,
          localArchive: values.archive,
          keepArchive: !values['delete-archive'],
          signal: controller.signal,
          onProgress: (p) => progress.update(p),
        });
        progress.close();
        for (const warning of result.warnings) stream.write(`Warning: ${warning}\n`);
        const count = dataset.imageCount ? `, ${dataset.imageCount.toLocaleString('en-US')} photos` : '';
        stream.write(result.extracted ? `${dataset.title} is ready${count}.\n` : `${dataset.title} is already here${count}.\n`);
        console.log(result.path);
        return 0;
      } catch (err) {
        progress.close();
        if (isAbortError(err)) {
          stream.write(`Cancelled. Run the same command again to resume.\n`);
          return 130;
        }
        throw err;
      } finally {
        process.off('SIGINT', onSigint);
      }
    },
  };
}

/** One progress bar per phase (download, extract); notes for waiting and retries. */
class PhaseBars {
  private bar: ProgressBar | undefined;
  private phase: DatasetProgress['phase'] | undefined;
  private resumedFrom = 0;
  private lastMessage: string | undefined;
  private doneBytes = 0;

  constructor(
    private readonly dataset: DatasetEntry,
    private readonly stream: NodeJS.WriteStream,
  ) {}

  update(p: DatasetProgress): void {
    if (p.message && p.message !== this.lastMessage && (p.phase === 'waiting' || /trying again|again from the start/.test(p.message))) {
      this.lastMessage = p.message;
      this.stream.write(`${this.stream.isTTY ? '\r\x1b[2K' : ''}${p.message}\n`);
    }
    if (p.phase === 'download' || p.phase === 'extract') {
      // A retry before the first response reports no resume yet; restart the bar once the offset is known.
      const resumedChanged = p.phase === 'download' && (p.resumedFromBytes ?? 0) !== this.resumedFrom;
      if (p.phase !== this.phase || resumedChanged) this.start(p, resumedChanged);
      // The bar measures its own rate from its start, so it counts only this run's bytes; the label says where a resume began.
      this.doneBytes = p.doneBytes - this.resumedFrom;
      this.bar?.update(this.doneBytes, p.totalBytes === undefined ? undefined : p.totalBytes - this.resumedFrom);
    } else if (p.phase === 'verify' && this.phase === 'download') {
      this.close();
    }
  }

  private start(p: DatasetProgress, replace = false): void {
    if (replace) this.bar = undefined; // its line is overwritten on a TTY; no "done" for a bar that was not done
    this.close();
    this.phase = p.phase;
    this.resumedFrom = p.phase === 'download' ? (p.resumedFromBytes ?? 0) : 0;
    const resumed = this.resumedFrom > 0 ? ` (resuming after ${formatBytes(this.resumedFrom)})` : '';
    const label = p.phase === 'download' ? `Downloading ${this.dataset.id}${resumed}` : `Extracting ${this.dataset.id}`;
    this.bar = createProgressBar({ label, total: p.totalBytes, format: formatBytes, unit: 'B', stream: this.stream });
  }

  close(): void {
    if (!this.bar) return;
    this.bar.finish(formatBytes(this.doneBytes + this.resumedFrom));
    this.bar = undefined;
    this.phase = undefined;
  }
}

export const datasetGetCommand = createDatasetGetCommand();
