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
  // The version being served first, then every other one, newest first, each compared with it.
  const serving = models.find((card) => card.version === active);
  const others = models.filter((card) => card !== serving).sort((a, b) => b.version - a.version);
  fill(list, [serving, ...others].filter(Boolean).map((card) => modelCard(card, active, serving)));
  const count = models.length === 1 ? "1 version" : `${models.length} versions`;
  status.textContent = active ? `${count}; v${active} is serving.` : `${count}; none active.`;
  if (window.location.hash) document.querySelector(window.location.hash)?.scrollIntoView();
}

/** How `card` compares with the version being served: MNIST test accuracy, accuracy on the held-out
 * corrections (where both were measured) and cost per image (from each version's check). */
function comparison(card, serving) {
  const held = (c) => (c.held_out_corrections?.count ? c.held_out_corrections.accuracy : null);
  const cost = (c) => c.check?.ms_per_image ?? null;
  const rows = [];
  const points = (a, b) => `${a >= b ? "+" : "−"}${(Math.abs(a - b) * 100).toFixed(2)} points`;
  if (typeof card.test_accuracy === "number" && typeof serving.test_accuracy === "number") {
    rows.push({ name: "MNIST accuracy", text: points(card.test_accuracy, serving.test_accuracy), worse: card.test_accuracy < serving.test_accuracy });
  }
  if (held(card) !== null && held(serving) !== null) {
    rows.push({ name: "held-out corrections", text: points(held(card), held(serving)), worse: held(card) < held(serving) });
  } else {
    rows.push({ name: "held-out corrections", text: "not measured on both", worse: false });
  }
  if (cost(card) !== null && cost(serving) !== null) {
    const ratio = cost(card) / cost(serving);
    // Timings vary from run to run: only a clear difference counts against a version.
    rows.push({ name: "cost per image", text: `${cost(card).toFixed(3)} ms (×${ratio.toFixed(2)})`, worse: ratio > 1.5 });
  } else {
    rows.push({ name: "cost per image", text: cost(card) !== null ? `${cost(card).toFixed(3)} ms` : "not checked yet", worse: false });
  }
  return rows;
}

function comparisonLine(rows, serving) {
  return el(
    "p",
    { class: "comparison" },
    `Against v${serving.version} (serving): `,
    rows.map((row, i) => [i ? " · " : "", el("span", { class: row.worse ? "worse" : "not-worse", text: `${row.name} ${row.text}` })]),
  );
}

function modelCard(card, active, serving) {
  const isActive = card.version === active;
  const compared = !isActive && serving ? comparison(card, serving) : [];
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
    compared.length ? comparisonLine(compared, serving) : null,
    el("dl", { class: "facts-list" }, facts.map(([term, value]) => el("div", {}, el("dt", { text: term }), el("dd", { text: value })))),
    isActive ? null : activateButton(card.version, active, compared.filter((row) => row.worse)),
    card.confusion_matrix ? confusionMatrix(card.version, card.confusion_matrix) : null,
    card.mistakes && card.mistakes.length ? mistakes(card.mistakes) : null,
  );
}

/** Activate (or roll back to) a version; one that is worse than the served one on any measure asks first. */
function activateButton(version, active, worse) {
  const label = active && version < active ? `Roll back to v${version}` : `Activate v${version}`;
  const button = el("button", { type: "button", class: worse.length ? "activate" : "primary activate", text: label });
  const box = el("div", { class: "activation" }, button);
  const activate = async (clicked) => {
    errorBox.textContent = "";
    clicked.disabled = true;
    try {
      await request(`/api/v1/models/${version}/activate`, { method: "POST", token: token() });
      await load(); // the status line now names v${version} as serving
    } catch (error) {
      clicked.disabled = false;
      errorBox.textContent = tokenProblem(error) || `Not activated: ${error.message}`;
    }
  };
  button.addEventListener("click", () => {
    if (!worse.length) return activate(button);
    const why = worse.map((row) => `${row.name} ${row.text}`).join(", ");
    const yes = el("button", { type: "button", class: "danger", text: `Activate v${version} anyway` });
    const no = el("button", { type: "button", text: `Keep v${active}` });
    const question = el("p", { class: "confirm", role: "alert" }, `v${version} is worse than v${active} (${why}). Serve it anyway?`, " ", yes, " ", no);
    yes.addEventListener("click", () => activate(yes));
    no.addEventListener("click", () => fill(box, button));
    fill(box, question);
    no.focus();
  });
  return box;
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
