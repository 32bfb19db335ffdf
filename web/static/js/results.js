// A prediction job as a card: what was sent, what the network saw, the status, the label and
// the 10 probabilities; for a number, the sent image with each digit boxed, the text, and each
// digit's 28x28 crop. templates/_result.html renders the same markup for pages without
// JavaScript. Every part has a fixed size, so cards do not jump while their jobs are polled.

import { sendFeedback, TERMINAL } from "./api.js";
import { probabilityChart } from "./charts.js";
import { el, fill, svg } from "./dom.js";
import { percent, shortId } from "./format.js";

const THUMB = 84;
const CROP = 56;

/** An empty card for a job just submitted; `sentUrl` shows the submitted image; `read` is what the
 * job reads ("digit" or "number"). */
export function createResultCard(jobId, sentUrl, read = "digit") {
  const card = el("li", { class: "result", "data-job-id": jobId, "data-status": "queued", "data-read": read });
  if (sentUrl) card.dataset.uploadUrl = sentUrl;
  renderResult(card, { id: jobId, status: "queued", read, result: null, error: null });
  return card;
}

/** A card for an image the server refused (not an image, too large...): its name and the reason. */
export function createRefusedCard(name, refusal) {
  const card = el("li", { class: "result refused", "data-status": "refused" });
  return fill(
    card,
    thumb(null, "sent", "Sent"),
    thumb(null, "seen", "Not read"),
    el(
      "div",
      { class: "facts" },
      el("p", { class: "status-line" }, el("span", { class: "status", text: "refused" }), " ", el("span", { class: "file-name", text: name })),
      el("p", { class: "answer reason", text: refusal.message }),
    ),
    el("div", { class: "chart" }),
  );
}

/** Show `job` (a record from the API) in `card`. */
export function renderResult(card, job) {
  const read = job.read || card.dataset.read;
  // An "auto" job answers a number when the image holds several digits, else a digit.
  if (read === "number" || (job.result && typeof job.result.text === "string")) return renderNumber(card, job);
  card.dataset.status = job.status;
  const result = job.result || {};
  const sentUrl = card.dataset.uploadUrl;
  fill(
    card,
    thumb(sentUrl ? el("img", { class: "sent", src: sentUrl, alt: "Submitted image", width: THUMB, height: THUMB }) : null, "sent", "Sent"),
    thumb(
      result.input_png
        ? el("img", { class: "seen", src: `data:image/png;base64,${result.input_png}`, alt: "The 28 by 28 image the network saw", width: THUMB, height: THUMB })
        : null,
      "seen",
      "Seen (28×28)",
    ),
    el(
      "div",
      { class: "facts" },
      el("p", { class: "status-line" }, el("span", { class: "status", text: job.status }), " ", el("a", { href: `/jobs/${job.id}`, text: `job ${shortId(job.id)}` })),
      answer(job, result),
      result.hint === "read_as_number" ? severalDigits(result, Boolean(sentUrl)) : null,
      Number.isInteger(result.label)
        ? el("p", { class: "detail" }, el("span", { class: "confidence", text: `${percent(result.confidence)} sure` }), " · ", el("span", { class: "version", text: `model v${result.model_version}` }))
        : el("p", { class: "detail", text: "\u00a0" }), // an empty line until then: the card keeps its size
      // The row is there from the start (empty), so the card keeps its size when the answer arrives.
      job.status === "succeeded" && Number.isInteger(result.label) ? feedbackControl(job.id, result.label) : el("p", { class: "feedback" }),
    ),
    el("div", { class: "chart" }, Array.isArray(result.probabilities) ? probabilityChart(result.probabilities, result.label) : null),
  );
}

/** The number reader found several digits in an image read as one: say so, and offer to read it
 * as a number (home.js sends the card's image again, read as a number, when the button is clicked). */
function severalDigits(result, canResend) {
  return el(
    "p",
    { class: "hint", role: "note" },
    el("span", { class: "hint-reason", text: result.hint_reason || "the image seems to hold several digits" }),
    canResend ? [" ", el("button", { type: "button", class: "read-as-number", text: "Read as a number" })] : null,
  );
}

/** "right ✓" or "wrong? it is a _": kept as a correction, to train and judge later models. */
function feedbackControl(jobId, predicted) {
  const said = el("span", { class: "feedback-said", role: "status" });
  const right = el("button", { type: "button", class: "feedback-right", title: `The digit is a ${predicted}`, text: "right ✓" });
  const choose = el(
    "select",
    { class: "feedback-digit", "aria-label": "The digit it really is" },
    el("option", { value: "", text: "_" }),
    [...Array(10).keys()].filter((d) => d !== predicted).map((d) => el("option", { value: d, text: d })),
  );
  const box = el("p", { class: "feedback" }, right, " ", el("label", {}, "wrong? it is a ", choose), " ", said);
  const send = async (label) => {
    right.disabled = choose.disabled = true;
    said.textContent = "sending…";
    try {
      const kept = await sendFeedback(jobId, label);
      said.textContent = kept.corrected ? `thanks: kept as a ${kept.label}` : "thanks: confirmed";
      box.dataset.sent = String(kept.label);
    } catch (error) {
      said.textContent = `not kept: ${error.message}`;
    } finally {
      right.disabled = choose.disabled = false;
    }
  };
  right.addEventListener("click", () => send(predicted));
  choose.addEventListener("change", () => choose.value !== "" && send(Number(choose.value)));
  return box;
}

function thumb(image, kind, caption) {
  return el("figure", { class: "thumb" }, image || el("span", { class: `${kind} placeholder` }), el("figcaption", { text: caption }));
}

function answer(job, result) {
  if (Number.isInteger(result.label)) return el("p", { class: "answer" }, "Digit ", el("strong", { text: result.label }));
  if (result.reason) return el("p", { class: "answer reason", text: `No digit: ${result.reason}` });
  if (job.error) return el("p", { class: "answer reason", text: job.error.message });
  if (TERMINAL.has(job.status)) return el("p", { class: "answer reason", text: `ended ${job.status}` });
  return el("p", { class: "answer pending", text: job.status === "running" ? "reading…" : "waiting for a worker…" });
}

/** A number job: the sent image with a box per digit found, the text, and the crops the network saw. */
function renderNumber(card, job) {
  card.dataset.status = job.status;
  card.dataset.read = "number";
  card.classList.add("number");
  const result = job.result || {};
  const digits = Array.isArray(result.digits) ? result.digits : [];
  const sentUrl = card.dataset.uploadUrl;
  fill(
    card,
    el("figure", { class: "thumb wide" }, sentUrl ? boxedImage(sentUrl, digits) : el("span", { class: "sent placeholder" }), el("figcaption", { text: "Sent, each digit boxed" })),
    el(
      "div",
      { class: "facts" },
      el("p", { class: "status-line" }, el("span", { class: "status", text: job.status }), " ", el("a", { href: `/jobs/${job.id}`, text: `job ${shortId(job.id)}` })),
      numberAnswer(job, result),
      typeof result.text === "string" && result.text
        ? el("p", { class: "detail" }, el("span", { class: "confidence", text: `${percent(result.confidence)} sure of the whole` }), " · ", el("span", { class: "version", text: `model v${result.model_version}` }))
        : null,
    ),
    el(
      "figure",
      { class: "crops" },
      el(
        "ol",
        { class: "digit-crops" },
        digits.map((digit) =>
          el(
            "li",
            {},
            el("img", { class: "seen", src: `data:image/png;base64,${digit.input_png}`, alt: `The 28 by 28 image the network read as ${digit.label}`, width: CROP, height: CROP }),
            el("span", { class: "crop-label", text: `${digit.label} · ${percent(digit.confidence, 0)}` }),
          ),
        ),
      ),
      el("figcaption", { text: digits.length ? "Seen (28×28 each)" : "" }),
    ),
  );
}

function numberAnswer(job, result) {
  if (typeof result.text === "string" && result.text) return el("p", { class: "answer" }, "Number ", el("strong", { class: "number-text", text: result.text }));
  if (result.reason) return el("p", { class: "answer reason", text: `No digits: ${result.reason}` });
  if (job.error) return el("p", { class: "answer reason", text: job.error.message });
  if (TERMINAL.has(job.status)) return el("p", { class: "answer reason", text: `ended ${job.status}` });
  return el("p", { class: "answer pending", text: job.status === "running" ? "reading…" : "waiting for a worker…" });
}

/** The image with each digit's box drawn over it, in the image's own pixels (an SVG the image's size). */
function boxedImage(url, digits) {
  const image = el("img", { class: "sent", src: url, alt: "Submitted image" });
  const frame = el("div", { class: "boxed" }, image);
  const overlay = () => {
    const [width, height] = [image.naturalWidth, image.naturalHeight];
    if (!width || !height || !digits.length) return;
    const boxes = digits.map(({ box: [x0, y0, x1, y1] }) => svg("rect", { x: x0, y: y0, width: x1 - x0, height: y1 - y0 }));
    frame.append(svg("svg", { class: "boxes", viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", "aria-hidden": "true" }, boxes));
  };
  if (image.complete && image.naturalWidth) overlay();
  else image.addEventListener("load", overlay, { once: true });
  return frame;
}
