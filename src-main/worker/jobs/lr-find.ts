/**
 * "Find a learning rate" on its own, before training: the same setup as a run (label, split,
 * decode once, `vision_learner(dls, arch)` with a frozen body) and then fastai's `lr_find()`.
 * Nothing is saved; the sweep leaves the model untouched and the model is thrown away.
 */
import type { LrFindResult } from '../../engine/train/learner.js';
import { prepareLearner, type RunEvent, type TrainConfig } from '../../engine/train/run-training.js';
import { withSeededMathRandom } from '../../engine/train/seeded-random.js';

export async function findLearningRate(config: TrainConfig, emit: (e: RunEvent) => void, signal: AbortSignal): Promise<LrFindResult> {
  const { learner, model, batchSize, backend } = await prepareLearner(config, emit, signal);
  try {
    emit({ type: 'stage', stage: 'lr-find', message: `Sweeping the learning rate from 1e-7 to 10 (batch size ${batchSize}, ${backend.label})` });
    // vision_learner returns a frozen learner; lr_find in lesson 1 runs on it.
    learner.setFrozen(true);
    // Seeded dropout, as in a run: the same settings sweep the same curve every time.
    return await withSeededMathRandom(config.seed ?? 42, () => learner.lrFind());
  } finally {
    learner.dispose();
    model.dispose();
  }
}
