/**
 * The datasets the app can fetch, with fastai's own checks. URLs, sizes and checksums are copied
 * from fastai's `URLs` class and `fastai/data/checks.txt` (the file fastdownload reads); the
 * checksum there is the md5 of the first MiB (fastdownload's `path_stats`), not of the whole file.
 * No value here is made up: where fastai records none, the field is left out.
 */
import type { Checksum } from './checksum.js';

export interface DatasetEntry {
  /** What the CLI and the UI call it: `finetune-studio dataset get pets`. */
  id: string;
  title: string;
  /** One or two sentences for the picker. */
  description: string;
  /** The name in fastai, so lesson readers recognise it. */
  fastaiName: string;
  url: string;
  /** Bytes of the archive. */
  sizeBytes: number;
  checksum?: Checksum;
  /** Folder under the cache dir that holds the extracted dataset (fastai: the archive's stem). */
  folderName: string;
  /** Paths inside the folder that a complete copy has; a folder without them is not treated as the dataset. */
  requiredPaths: string[];
  /** Where the photos are, relative to the folder. */
  imagesPath: string;
  /** How labels are found: from file names (Pets) or from parent folders. */
  labelsFrom: 'filename' | 'folder';
  /** Photos in the extracted set, where the source documents it; shown before downloading. */
  imageCount?: number;
}

export const DATASETS: readonly DatasetEntry[] = [
  {
    id: 'pets',
    title: 'Oxford-IIIT Pet',
    description:
      '7,390 photos of 37 cat and dog breeds; lesson 1 learns "is it a cat?" from the file names (cat breeds start with a capital letter).',
    fastaiName: 'URLs.PETS',
    url: 'https://s3.amazonaws.com/fast-ai-imageclas/oxford-iiit-pet.tgz',
    sizeBytes: 811_706_944,
    checksum: { algorithm: 'md5-first-mib', value: 'e4db5c768afd933bb91f5f594d7417a4' },
    folderName: 'oxford-iiit-pet',
    requiredPaths: ['images', 'annotations'],
    // images/ also holds three .mat files, which the image lister must skip.
    imagesPath: 'images',
    labelsFrom: 'filename',
    imageCount: 7390,
  },
  {
    id: 'mnist-tiny',
    title: 'MNIST tiny (3s and 7s)',
    description: 'A few hundred handwritten 3s and 7s (342 KB): a smoke test that downloads in a second.',
    fastaiName: 'URLs.MNIST_TINY',
    url: 'https://s3.amazonaws.com/fast-ai-sample/mnist_tiny.tgz',
    sizeBytes: 342_207,
    checksum: { algorithm: 'md5-first-mib', value: '56143e8f24db90d925d82a5a74141875' },
    folderName: 'mnist_tiny',
    requiredPaths: ['train', 'valid'],
    imagesPath: '.',
    labelsFrom: 'folder',
  },
  {
    id: 'mnist-sample',
    title: 'MNIST sample (3s and 7s)',
    description: 'About 14,000 handwritten 3s and 7s in train/ and valid/ folders, as in chapter 4 of the fastai book.',
    fastaiName: 'URLs.MNIST_SAMPLE',
    url: 'https://s3.amazonaws.com/fast-ai-sample/mnist_sample.tgz',
    sizeBytes: 3_214_948,
    checksum: { algorithm: 'md5-first-mib', value: '2dbc7ec6f9259b583af0072c55816a88' },
    folderName: 'mnist_sample',
    requiredPaths: ['train', 'valid'],
    imagesPath: '.',
    labelsFrom: 'folder',
  },
  {
    id: 'imagenette-160',
    title: 'Imagenette (160 px)',
    description: 'Ten easy ImageNet classes (tench, church, parachute, …), shortest side 160 px, in train/ and val/ folders.',
    fastaiName: 'URLs.IMAGENETTE_160',
    url: 'https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-160.tgz',
    sizeBytes: 99_003_388,
    checksum: { algorithm: 'md5-first-mib', value: 'c475f8f7617a200ba35b9facc48443c3' },
    folderName: 'imagenette2-160',
    requiredPaths: ['train', 'val'],
    imagesPath: '.',
    labelsFrom: 'folder',
  },
  {
    id: 'imagewoof-160',
    title: 'Imagewoof (160 px)',
    description: 'Ten dog breeds from ImageNet that are hard to tell apart, shortest side 160 px, in train/ and val/ folders.',
    fastaiName: 'URLs.IMAGEWOOF_160',
    url: 'https://s3.amazonaws.com/fast-ai-imageclas/imagewoof2-160.tgz',
    sizeBytes: 92_612_825,
    checksum: { algorithm: 'md5-first-mib', value: '3559b194123981a540b87132dbda412f' },
    folderName: 'imagewoof2-160',
    requiredPaths: ['train', 'val'],
    imagesPath: '.',
    labelsFrom: 'folder',
  },
];

export const DEFAULT_DATASET_ID = 'pets';

/** The entry for `id`, or an error that lists the ids there are. */
export function findDataset(id: string, datasets: readonly DatasetEntry[] = DATASETS): DatasetEntry {
  const found = datasets.find((d) => d.id === id.trim().toLowerCase());
  if (!found) throw new Error(`Unknown dataset "${id}". Known datasets: ${datasets.map((d) => d.id).join(', ')}.`);
  return found;
}

/** The archive's file name, taken from its URL (`oxford-iiit-pet.tgz`). */
export function archiveName(url: string): string {
  const name = decodeURIComponent(new URL(url).pathname.split('/').pop() ?? '');
  if (!name) throw new Error(`Cannot tell the file name from ${url}`);
  return name;
}
