// Recent jobs (the admin's: the token typed on the Train page is sent): the server rendered the table; refresh its rows from GET /api/v1/jobs while the tab is visible.

import { isAbort, pageSignal, request } from "./api.js";
import { el, fill } from "./dom.js";
import { clockTime, percent, seconds, shortId, tookSeconds } from "./format.js";
import { sleep } from "./watch.js";

const REFRESH_MS = 2000;
const rows = document.getElementById("job-rows");
const updated = document.getElementById("jobs-updated");
const LIMIT = Number(rows.dataset.limit); // as many as the server-rendered page shows

function resultCell(job) {
  const result = job.result || {};
  if (job.error) return el("span", { class: "reason", text: job.error.message });
  if (Number.isInteger(result.label)) {
    return [el("strong", { text: result.label }), " ", el("span", { class: "muted", text: `${percent(result.confidence)}, model v${result.model_version}` })];
  }
  if (typeof result.text === "string" && result.text) {
    return [el("strong", { text: result.text }), " ", el("span", { class: "muted", text: `${percent(result.confidence)}, model v${result.model_version}` })];
  }
  if (result.reason) return el("span", { class: "reason", text: `no digit: ${result.reason}` });
  if (result.model_version) return `model v${result.model_version}, ${percent(result.test_accuracy, 2)}`;
  if (job.progress) return `epoch ${job.progress.epoch}/${job.progress.epochs}`;
  return "";
}

function row(job) {
  return el(
    "tr",
    { "data-status": job.status },
    el("td", {}, el("time", { datetime: job.created_at, text: clockTime(job.created_at) })),
    el("td", {}, el("a", { href: `/jobs/${job.id}`, text: `${job.type} ${shortId(job.id)}` })),
    el("td", {}, el("span", { class: "status", text: job.status })),
    el("td", {}, resultCell(job)),
    el("td", { class: "num", text: seconds(tookSeconds(job)) }),
  );
}

async function refresh() {
  // Without the admin token the list is refused: ask nothing (a refused request is an error in the console).
  if (!sessionStorage.getItem("digits.apiToken")) {
    updated.textContent = "Not shown without the admin token.";
    return;
  }
  for (;;) {
    if (document.visibilityState === "visible") {
      try {
        const { jobs } = await request(`/api/v1/jobs?limit=${LIMIT}`, { signal: pageSignal });
        fill(rows, jobs.length ? jobs.map(row) : el("tr", {}, el("td", { colspan: 5, text: "No jobs yet." })));
        updated.textContent = `Updated ${clockTime(new Date().toISOString())}.`;
      } catch (error) {
        if (isAbort(error)) return;
        const needsToken = error.status === 401 || error.status === 403;
        updated.textContent = needsToken ? `Not shown: ${error.message}` : `Could not update: ${error.message}`;
      }
    }
    await sleep(REFRESH_MS);
  }
}

refresh();
