// Job pages (/jobs/<id>, /jobs?ids=...): the server rendered the cards; keep them live by long polling.

import { TERMINAL, getJob } from "./api.js";
import { renderResult } from "./results.js";
import { JobWatcher } from "./watch.js";

const cards = new Map([...document.querySelectorAll("li.result[data-job-id]")].map((card) => [card.dataset.jobId, card]));
const predictCards = [...cards.values()].filter((card) => card.querySelector(".thumb"));
const watcher = new JobWatcher((job) => {
  const card = cards.get(job.id);
  if (!card) return;
  if (card.querySelector(".thumb")) renderResult(card, job);
  else if (TERMINAL.has(job.status)) window.location.reload(); // a training job: show its server-rendered end
});

for (const card of cards.values()) {
  if (!TERMINAL.has(card.dataset.status)) watcher.watch(card.dataset.jobId);
}
// Finished predictions come with their probabilities only from the API: draw their charts.
for (const card of predictCards) {
  if (TERMINAL.has(card.dataset.status)) getJob(card.dataset.jobId).then((job) => renderResult(card, job)).catch(() => {});
}
