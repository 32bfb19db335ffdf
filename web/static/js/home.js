// The recognise page: draw or upload, submit through the JSON API, watch each job's card fill in.
// Without JavaScript the upload form posts to /predict and lands on pages that refresh themselves.

import { ApiError, submitImages } from "./api.js";
import { DrawingPad } from "./draw.js";
import { createRefusedCard, createResultCard, renderResult } from "./results.js";
import { JobWatcher } from "./watch.js";

const $ = (id) => document.getElementById(id);
// Long enough for a digit's answer when the workers are free, short enough that a card appears soon when not.
const SUBMIT_WAIT_S = 2;
const errorBox = $("submit-error");
const results = $("results");
const cards = new Map();
const sentImages = new WeakMap(); // card -> the File or Blob it was made for, to send again as a number
const watcher = new JobWatcher(
  (job) => cards.has(job.id) && renderResult(cards.get(job.id), job),
  (trouble) => showError(trouble || ""),
);

function showError(message) {
  errorBox.textContent = message;
}

/** Submit images (Files or Blobs) as one request, each read as a "digit" or a "number"; a card per
 * image appears at the top, in order. The server takes a request whole or not at all and names
 * every image it refuses: those get a card with the reason, and the others are sent again. */
async function recognise(images, button, read) {
  showError("");
  button.disabled = true;
  try {
    // Most answers come within the wait, in the same request; the rest are polled.
    let refused = new Map(); // index in images -> the server's refusal of it
    let answer;
    try {
      answer = await submitImages(images, { wait: SUBMIT_WAIT_S, read });
    } catch (error) {
      if (!(error instanceof ApiError) || !error.images.length) throw error;
      refused = new Map(error.images.map((image) => [image.index, image]));
      answer = await submitImages(images.filter((_, i) => !refused.has(i)), { wait: SUBMIT_WAIT_S, read });
    }
    const { done, jobs } = answer;
    $("results-section").hidden = false;
    const ids = jobs.map((job) => job.job_id || job.id);
    const sent = images.filter((_, i) => !refused.has(i));
    const jobCards = ids.map((id, i) => {
      const card = createResultCard(id, URL.createObjectURL(sent[i]), read);
      cards.set(id, card);
      sentImages.set(card, sent[i]);
      return card;
    });
    // Every image in the order chosen: its job's card, or its refusal's.
    const fresh = images.map((image, i) => (refused.has(i) ? createRefusedCard(image.name || `image ${i + 1}`, refused.get(i)) : jobCards.shift()));
    results.prepend(...fresh);
    if (done) jobs.forEach((job) => renderResult(cards.get(job.id), job));
    else ids.forEach((id) => watcher.watch(id));
    return true;
  } catch (error) {
    showError(`Not submitted: ${error.message}`);
    return false;
  } finally {
    button.disabled = false;
  }
}

// "Read as a number" on a card whose image seems to hold several digits: the same image again, as a number.
results.addEventListener("click", async (event) => {
  const button = event.target.closest("button.read-as-number");
  const card = button && button.closest("li.result");
  if (!card || !sentImages.has(card)) return;
  await recognise([sentImages.get(card)], button, "number");
});

// Drawing.
const drawPanel = $("draw-panel");
drawPanel.hidden = false;
const undo = $("undo");
const clear = $("clear");
const submitDrawing = $("submit-drawing");
const penWidth = $("pen-width");
const pad = new DrawingPad($("pad"), {
  penWidth: Number(penWidth.value),
  onChange: () => {
    for (const button of [undo, clear, submitDrawing]) button.disabled = pad.isEmpty;
  },
});
penWidth.addEventListener("input", () => {
  pad.penWidth = Number(penWidth.value);
  $("pen-width-value").textContent = penWidth.value;
});
// A number is drawn on a canvas three digits wide; switching clears the drawing.
const DRAW_HELP = {
  digit: "Draw one digit with a mouse, pen or finger. Ctrl+Z undoes a stroke.",
  number: "Draw a number, its digits side by side on one line. Ctrl+Z undoes a stroke.",
};
const drawRead = () => document.querySelector("input[name=draw-read]:checked").value;
for (const choice of document.querySelectorAll("input[name=draw-read]")) {
  choice.addEventListener("change", () => {
    const read = drawRead();
    $("pad").width = read === "number" ? 840 : 280;
    $("pad").classList.toggle("wide", read === "number");
    drawPanel.classList.toggle("wide", read === "number");
    $("draw-help").textContent = DRAW_HELP[read];
    pad.clear();
  });
}
undo.addEventListener("click", () => pad.undo());
clear.addEventListener("click", () => pad.clear());
document.addEventListener("keydown", (event) => {
  if (event.target.closest("input, select, textarea")) return; // their own undo
  if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "z" && !pad.isEmpty) {
    event.preventDefault();
    pad.undo();
  }
});
submitDrawing.addEventListener("click", async () => {
  const blob = await pad.toBlob();
  if (await recognise([new File([blob], "drawing.png", { type: "image/png" })], submitDrawing, drawRead())) pad.clear();
});

// Uploading: the same form as without JavaScript, sent through the API instead.
const form = $("upload-form");
const input = $("image");
const dropzone = $("dropzone");
const chosen = $("chosen");

function describeChoice() {
  const names = [...input.files].map((file) => file.name);
  chosen.textContent = names.length ? `${names.length} chosen: ${names.join(", ")}` : "";
}

input.addEventListener("change", describeChoice);
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const files = [...input.files];
  if (!files.length) return showError("Choose at least one image first.");
  const read = $("upload-read").value;
  if (await recognise(files, form.querySelector("button[type=submit]"), read)) {
    form.reset();
    $("upload-read").value = read; // the next upload is most likely of the same kind
    describeChoice();
  }
});
for (const type of ["dragenter", "dragover"]) {
  dropzone.addEventListener(type, (event) => {
    event.preventDefault();
    dropzone.classList.add("dragging");
  });
}
for (const type of ["dragleave", "drop"]) {
  dropzone.addEventListener(type, () => dropzone.classList.remove("dragging"));
}
dropzone.addEventListener("drop", (event) => {
  event.preventDefault();
  const files = [...event.dataTransfer.files].filter((file) => file.type.startsWith("image/"));
  if (!files.length) return showError("Only image files can be dropped here.");
  // Dropped files go into the form's file field, so the same Recognise button sends them.
  const transfer = new DataTransfer();
  files.forEach((file) => transfer.items.add(file));
  input.files = transfer.files;
  describeChoice();
  form.querySelector("button[type=submit]").focus();
});
