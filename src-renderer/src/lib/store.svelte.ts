/**
 * The wizard's shared state (Svelte 5 runes in a module): one object that every step reads and
 * writes, plus the API connection and a helper that runs a job with its progress events.
 */
import type { AppEvent, AppInfo, BackendInfo, Channel, JobEvent, LabelRuleChoice, PreviewResult, Request, Response, RunDetails, ScanSummary, StudioApi } from '../../../src-main/api/contract.js';
import { connectApi } from './api';
import { DEFAULT_DATA_FORM, DEFAULT_MODEL_FORM, newJobId, type DataForm, type ModelForm, type StepId } from './wizard';

export const api: StudioApi = connectApi();

export const app = $state({
  info: null as AppInfo | null,
  backend: null as BackendInfo | null,
  rules: [] as LabelRuleChoice[],
  step: 'data' as StepId,
  data: { ...DEFAULT_DATA_FORM } as DataForm,
  /** 'pets': the fastai download; 'folder': the user's own photos. */
  source: 'folder' as 'folder' | 'pets',
  scan: null as ScanSummary | null,
  preview: null as PreviewResult | null,
  model: { ...DEFAULT_MODEL_FORM } as ModelForm,
  /** The model used by Test and Export: the last trained, or one reopened from Recent runs. */
  run: null as RunDetails | null,
  training: false,
  showRuns: false,
});

const jobListeners = new Map<string, (e: JobEvent) => void>();
api.onEvent((e: AppEvent) => {
  if (e.type === 'job') jobListeners.get(e.event.jobId)?.(e.event);
});

export interface JobHandle<C extends Channel> {
  jobId: string;
  result: Promise<Response<C>>;
  cancel(): Promise<void>;
}

/** Starts a long request under a fresh job id, routing its progress events to `onEvent`. */
export function startJob<C extends Channel>(channel: C, payload: Omit<Request<C>, 'jobId'>, onEvent: (e: JobEvent) => void = () => {}): JobHandle<C> {
  const jobId = newJobId(channel.replace(/[^a-z]/g, ''));
  jobListeners.set(jobId, onEvent);
  const result = api.invoke(channel, { ...payload, jobId } as Request<C>).finally(() => jobListeners.delete(jobId));
  return {
    jobId,
    result,
    cancel: async () => {
      await api.invoke('job:cancel', { jobId });
    },
  };
}

/** True for errors that mean "the user cancelled", which the UI reports calmly, not as failures. */
export function isCancel(err: unknown): boolean {
  return err instanceof Error && err.name === 'AbortError';
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

import type { TopLossImage } from '../../../src-main/api/contract.js';
import type { TrainView } from './wizard';

/** The Train step's live state, kept here so it survives moving between steps. */
export const training = $state({
  view: null as TrainView | null,
  job: null as JobHandle<'train:start'> | null,
  error: '',
  cancelling: false,
  topLosses: [] as TopLossImage[],
  topLossesError: '',
});
