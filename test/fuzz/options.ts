/**
 * What a fuzz run is asked to do, from the environment. The seed is FERRY_FUZZ_SEED when given;
 * else, in CI (CI set), a fixed one, so that a red build is the code's doing and not a new draw;
 * else a fresh one. Either way it is printed first, with the command that replays the run.
 */

/** The seed CI runs with when FERRY_FUZZ_SEED does not name one. */
export const ciSeed = 20261202;

export type SeedSource = 'FERRY_FUZZ_SEED' | 'the fixed CI seed' | 'drawn at random';

export interface FuzzOptions {
  seed: number;
  seedSource: SeedSource;
  /** Scenarios to run (FERRY_FUZZ_RUNS, default 200). */
  numRuns: number;
  /** fast-check's path of one failing run to replay (FERRY_FUZZ_PATH). */
  replayPath: string | undefined;
}

function inCi(): boolean {
  const ci = process.env['CI'];
  return ci !== undefined && ci !== '' && ci !== 'false';
}

function chooseSeed(): { seed: number; seedSource: SeedSource } {
  const fromEnv = process.env['FERRY_FUZZ_SEED'];
  if (fromEnv) {
    const seed = Number(fromEnv);
    if (!Number.isSafeInteger(seed)) throw new RangeError(`FERRY_FUZZ_SEED must be an integer, not ${fromEnv}`);
    return { seed, seedSource: 'FERRY_FUZZ_SEED' };
  }
  if (inCi()) return { seed: ciSeed, seedSource: 'the fixed CI seed' };
  return { seed: Math.floor(Math.random() * 2 ** 31), seedSource: 'drawn at random' };
}

export function fuzzOptions(): FuzzOptions {
  return {
    ...chooseSeed(),
    numRuns: process.env['FERRY_FUZZ_RUNS'] ? Number(process.env['FERRY_FUZZ_RUNS']) : 200,
    replayPath: process.env['FERRY_FUZZ_PATH'],
  };
}

/** The command that runs the fuzz again with `seed`. */
export function replayCommand(seed: number): string {
  return `FERRY_FUZZ_SEED=${seed} npx tap test/fuzz.test.ts`;
}
