// The models page: every stored version's card from GET /api/v1/models, its confusion matrix as
// a heat map and its most confident mistakes; activate a version (or roll back to an older one).

import { request } from "./api.js";
import { el, fill } from "./dom.js";
import { dateTime, percent, seconds } from "./format.js";
import { tokenField, tokenProblem } from "./token.js";

const $ = (id) => document.getElementById(id);
const token = tokenField();
const list = $("models");
const status = $("models-status");
const errorBox = $("models-error");

async function load() {
  const { active_version: active, models } = await request("/api/v1/models");
  const newestFirst = [...models].sort((a, b) => b.version - a.version);
  fill(list, newestFirst.map((card) => modelCard(card, active)));
  const count = models.length === 1 ? "1 version" : `${models.length} versions`;
  status.textContent = active ? `${count}; v${active} is serving.` : `${count}; none active.`;
  if (window.location.hash) document.querySelector(window.location.hash)?.scrollIntoView();
}

function modelCard(card, active) {
  const isActive = card.version === active;
  const hp = card.hyperparameters || {};
  const facts = [
    ["Architecture", card.arch],
    ["Test accuracy", percent(card.test_accuracy, 2)],
    ["Held-out corrections", card.held_out_corrections?.count ? `${percent(card.held_out_corrections.accuracy, 2)} of ${card.held_out_corrections.count}` : null],
    ["Fine-tuned from", card.base_version ? `v${card.base_version}` : null],
    ["Corrections trained on", card.feedback?.included ? `${card.feedback.train_corrections} (×${card.feedback.repeats})` : null],
    ["Epochs", card.epochs],
    ["Training time", seconds(card.training_seconds)],
    ["Trained on", card.train_images ? `${card.train_images.toLocaleString()} images` : null],
    ["Batch size", hp.batch_size],
    ["Learning rate", hp.learning_rate ?? "architecture default"],
    ["Augmented", hp.augment === undefined ? null : hp.augment ? "yes" : "no"],
    ["Parameters", card.parameters ? card.parameters.toLocaleString() : null],
    ["Created", dateTime(card.created_at)],
    ["Stored", dateTime(card.stored_at)],
    ["Origin", card.origin || (card.training_job_id ? `training job ${card.training_job_id.slice(0, 8)}` : null)],
  ].filter(([, value]) => value !== null && value !== undefined && value !== "");
  return el(
    "article",
    { class: isActive ? "panel model active" : "panel model", id: `model-${card.version}`, "aria-labelledby": `model-${card.version}-title` },
    el("h2", { id: `model-${card.version}-title` }, `Version ${card.version} `, isActive ? el("span", { class: "badge", text: "serving" }) : null),
    el("dl", { class: "facts-list" }, facts.map(([term, value]) => el("div", {}, el("dt", { text: term }), el("dd", { text: value })))),
    isActive ? null : activateButton(card.version, active),
    card.confusion_matrix ? confusionMatrix(card.version, card.confusion_matrix) : null,
    card.mistakes && card.mistakes.length ? mistakes(card.mistakes) : null,
  );
}

function activateButton(version, active) {
  const label = active && version < active ? `Roll back to v${version}` : `Activate v${version}`;
  const button = el("button", { type: "button", class: "primary activate", text: label });
  button.addEventListener("click", async () => {
    errorBox.textContent = "";
    button.disabled = true;
    try {
      await request(`/api/v1/models/${version}/activate`, { method: "POST", token: token() });
      await load(); // the status line now names v${version} as serving
    } catch (error) {
      button.disabled = false;
      errorBox.textContent = tokenProblem(error) || `Not activated: ${error.message}`;
    }
  });
  return button;
}

/** The 10x10 matrix as a table; cell colour grows with the count (correct: blue, mistakes: red). */
function confusionMatrix(version, matrix, { title = "Confusion matrix (10,000 test images)", rowsAre = "true", label = `Confusion matrix of version ${version}` } = {}) {
  const worstMistake = Math.max(1, ...matrix.flatMap((row, t) => row.filter((_, p) => p !== t)));
  const header = el("tr", {}, el("th", { scope: "col", class: "corner", text: `${rowsAre} ↓ / predicted →` }), matrix.map((_, p) => el("th", { scope: "col", text: p })));
  const rows = matrix.map((row, t) => {
    const total = row.reduce((a, b) => a + b, 0) || 1;
    return el(
      "tr",
      {},
      el("th", { scope: "row", text: t }),
      row.map((count, p) => {
        // Mistakes are rare: a square root keeps a single one visible next to dozens.
        const heat = p === t ? count / total : Math.sqrt(count / worstMistake);
        const cell = el("td", { class: `${p === t ? "hit" : "miss"}${heat > 0.55 ? " dark" : ""}`, text: count || "", title: `${rowsAre} ${t}, predicted ${p}: ${count}` });
        cell.style.setProperty("--heat", heat.toFixed(3)); // CSSOM, not a style attribute: allowed by the CSP
        return cell;
      }),
    );
  });
  return el(
    "details",
    { class: "confusion", open: true },
    el("summary", { text: title }),
    el("div", { class: "table-wrap" }, el("table", { class: "heatmap", "aria-label": label }, el("thead", {}, header), el("tbody", {}, rows))),
  );
}

function mistakes(items) {
  return el(
    "details",
    { class: "mistakes", open: true },
    el("summary", { text: `The ${items.length} most confident mistakes` }),
    el(
      "ul",
      { class: "mistake-grid" },
      items.map((m) =>
        el(
          "li",
          {},
          el("img", { src: `data:image/png;base64,${m.png}`, width: 56, height: 56, alt: `Test image ${m.index}, a ${m.label}` }),
          el("span", { text: `${m.label} → ${m.predicted}` }),
          el("span", { class: "muted", text: percent(m.confidence, 1) }),
        ),
      ),
    ),
  );
}

/** The corrections people gave on the Recognise page or through the API: given digit x predicted digit. */
async function loadFeedback() {
  const feedback = await request("/api/v1/feedback?limit=1");
  const box = $("feedback");
  if (!feedback.total) {
    fill(box, el("h2", { text: "Corrections" }), el("p", { class: "muted", text: "No corrections yet: mark results right or wrong on the Recognise page." }));
    return;
  }
  const share = `${feedback.total.toLocaleString()} corrections, ${feedback.corrected.toLocaleString()} of them where the model was wrong`;
  fill(
    box,
    el("h2", { text: "Corrections" }),
    el("p", { class: "muted", id: "feedback-summary", text: share }),
    confusionMatrix(0, feedback.confusion, { title: "Corrections: digit given by people × digit predicted", rowsAre: "given", label: "Confusion table of the corrections" }),
  );
}

loadFeedback().catch((error) => {
  errorBox.textContent = `Could not load the corrections: ${error.message}`;
});

load().catch((error) => {
  status.textContent = "";
  errorBox.textContent = `Could not load the models: ${error.message}`;
});
