// Watching many jobs by long polling, a few at a time.
//
// Browsers open about six connections per server; a hundred uploads each holding a long poll
// would starve everything else. So at most MAX_POLLS jobs are polled at once, and a job that is
// still unfinished when its poll returns goes to the back of the line (jobs mostly finish in order).

import { TERMINAL, getJob, isAbort, pageSignal } from "./api.js";

const MAX_POLLS = 4;
const WAIT_S = 20;
const RETRY_MAX_S = 10;

export class JobWatcher {
  /** `onUpdate(job)` runs for every record read; `onTrouble(message | null)` when the connection fails or recovers. */
  constructor(onUpdate, onTrouble = () => {}) {
    this.onUpdate = onUpdate;
    this.onTrouble = onTrouble;
    this.waiting = [];
    this.active = 0;
    this.failures = 0;
  }

  watch(jobId) {
    this.waiting.push(jobId);
    this.pump();
  }

  pump() {
    while (this.active < MAX_POLLS && this.waiting.length) {
      this.active += 1;
      this.pollOnce(this.waiting.shift()).finally(() => {
        this.active -= 1;
        this.pump();
      });
    }
  }

  async pollOnce(jobId) {
    try {
      const job = await getJob(jobId, { wait: WAIT_S, signal: pageSignal });
      if (this.failures) this.onTrouble(null);
      this.failures = 0;
      this.onUpdate(job);
      if (!TERMINAL.has(job.status)) this.waiting.push(jobId);
    } catch (error) {
      if (isAbort(error)) return;
      if (error.status === 404) {
        this.onUpdate({ id: jobId, status: "failed", error: { code: "not_found", message: "this job is no longer kept" } });
        return;
      }
      this.failures += 1;
      this.onTrouble(`Connection trouble (${error.message}); retrying…`);
      await sleep(Math.min(RETRY_MAX_S, 2 ** this.failures) * 1000);
      this.waiting.push(jobId);
    }
  }
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
