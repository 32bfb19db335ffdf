// The training page: start a training job with the token, follow its progress and curves, cancel it.

import { TERMINAL, getJob, isAbort, pageSignal, request } from "./api.js";
import { lineChart } from "./charts.js";
import { el, fill } from "./dom.js";
import { percent, seconds, tookSeconds } from "./format.js";
import { tokenField, tokenProblem } from "./token.js";
import { sleep } from "./watch.js";

// ?wait= returns early only when a job ends, so for progress a short wait doubles as the poll interval.
const PROGRESS_WAIT_S = 1;
const JOB_KEY = "digits.trainingJob"; // the job this tab follows, so a reload picks it up again

const $ = (id) => document.getElementById(id);
const token = tokenField();
const form = $("train-form");
const errorBox = $("train-error");
const run = $("run");
const cancel = $("cancel");
let followed = null; // {id, samples: [[fractional epoch, loss, accuracy]]}

$("train-fields").disabled = false;

function parameters() {
  const number = (id) => (form.elements[id].value === "" ? undefined : Number(form.elements[id].value));
  const params = {
    recipe: form.elements.recipe.value,
    arch: form.elements.arch.value || undefined, // empty: the recipe's
    epochs: number("epochs"),
    batch_size: number("batch_size"),
    learning_rate: number("learning_rate"),
    augment: form.elements.augment.checked,
    train_limit: number("train_limit"),
  };
  return Object.fromEntries(Object.entries(params).filter(([, value]) => value !== undefined));
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  errorBox.textContent = "";
  const start = $("start");
  start.disabled = true;
  try {
    const job = await request("/api/v1/training-jobs", { method: "POST", json: parameters(), token: token() });
    follow(job.job_id);
  } catch (error) {
    errorBox.textContent = tokenProblem(error) || `Not started: ${error.message}`;
  } finally {
    start.disabled = false;
  }
});

cancel.addEventListener("click", async () => {
  errorBox.textContent = "";
  try {
    cancel.disabled = true;
    await request(`/api/v1/jobs/${followed.id}`, { method: "DELETE", token: token() });
    $("run-status").textContent = "stopping after the current batch…";
  } catch (error) {
    cancel.disabled = false;
    errorBox.textContent = tokenProblem(error) || `Not cancelled: ${error.message}`;
  }
});

async function follow(jobId) {
  sessionStorage.setItem(JOB_KEY, jobId);
  followed = { id: jobId, samples: [] };
  const mine = followed;
  run.hidden = false;
  $("run-id").textContent = jobId.slice(0, 8);
  $("run-result").textContent = "";
  cancel.hidden = false;
  cancel.disabled = false;
  show({ id: jobId, status: "queued" });
  let failures = 0;
  while (followed === mine) {
    try {
      const job = await getJob(jobId, { wait: PROGRESS_WAIT_S, signal: pageSignal });
      failures = 0;
      if (followed !== mine) return;
      show(job);
      if (TERMINAL.has(job.status)) return;
    } catch (error) {
      if (isAbort(error)) return;
      if (error.status === 404) {
        sessionStorage.removeItem(JOB_KEY);
        run.hidden = true;
        return;
      }
      failures += 1;
      $("run-status").textContent = `Connection trouble (${error.message}); retrying…`;
      await sleep(Math.min(10, 2 ** failures) * 1000);
    }
  }
}

function show(job) {
  const progress = job.progress;
  const bar = $("run-progress");
  if (progress) {
    // The share of the expected time (evaluation included) when the worker could tell; else of the batches.
    const done = (progress.epoch - 1) * progress.batches + progress.batch;
    bar.value = progress.fraction ?? done / (progress.epochs * progress.batches);
    const sample = [(progress.epoch - 1) + progress.batch / progress.batches, progress.loss, progress.accuracy];
    const last = followed.samples.at(-1);
    if (!last || last[0] !== sample[0]) followed.samples.push(sample);
    drawCurves(progress);
  }
  if (job.status === "succeeded") bar.value = 1;
  $("run-status").textContent = statusText(job);
  if (TERMINAL.has(job.status)) {
    cancel.hidden = true;
    fill($("run-result"), resultText(job));
  }
}

function statusText(job) {
  const p = job.progress;
  if (job.status === "queued") return "queued: waiting for a training worker…";
  if (job.status !== "running") {
    // A job that did not finish says where it stopped (its record's progress stops there too).
    const where = p && p.stopped ? ` at epoch ${p.epoch}/${p.epochs}, batch ${p.batch}/${p.batches}` : "";
    return job.finished_at ? `${job.status}${where} after ${seconds(tookSeconds(job))}` : job.status;
  }
  if (!p) return "running: loading data…";
  if (p.epoch === p.epochs && p.batch === p.batches) return "running: evaluating on the 10,000 test images…";
  const eta = p.eta_s === null || p.eta_s === undefined ? "" : `, about ${seconds(p.eta_s)} left`;
  return `running: epoch ${p.epoch}/${p.epochs}, batch ${p.batch}/${p.batches} · loss ${p.loss.toFixed(3)} · accuracy ${percent(p.accuracy)} · ${seconds(p.elapsed_s)} elapsed${eta}`;
}

function resultText(job) {
  if (job.status === "succeeded") {
    const version = job.result.model_version;
    return [
      `Stored as model v${version}, test accuracy ${percent(job.result.test_accuracy, 2)}. It is not serving yet: `,
      el("a", { href: `/models#model-${version}`, text: "activate it on the Models page" }),
      ".",
    ];
  }
  return job.error ? `${job.status}: ${job.error.message}` : job.status;
}

function drawCurves(progress) {
  // Training: the running averages as they came in, and each finished epoch's value; validation: per epoch.
  const history = progress.history || [];
  const ends = new Set(history.map((h) => h.epoch));
  const training = (key, index) =>
    [...history.map((h) => [h.epoch, h[key]]), ...followed.samples.filter(([x]) => !ends.has(x)).map((s) => [s[0], s[index]])].sort(
      (a, b) => a[0] - b[0],
    );
  const epochs = progress.epochs;
  lineChart($("loss-chart"), {
    epochs,
    yMin: 0,
    series: [
      { name: "training", className: "train", points: training("loss", 1) },
      { name: "validation", className: "val", points: history.map((h) => [h.epoch, h.val_loss]), dots: true },
    ],
  });
  const accuracies = history.flatMap((h) => [h.accuracy, h.val_accuracy]).concat(followed.samples.map((s) => s[2]));
  lineChart($("accuracy-chart"), {
    epochs,
    yMin: Math.floor(Math.min(...accuracies.filter(Number.isFinite), 0.9) * 10) / 10,
    yMax: 1,
    format: (v) => percent(v, 0),
    series: [
      { name: "training", className: "train", points: training("accuracy", 2) },
      { name: "validation", className: "val", points: history.map((h) => [h.epoch, h.val_accuracy]), dots: true },
    ],
  });
}

const resumed = sessionStorage.getItem(JOB_KEY);
if (resumed) follow(resumed);
