// The JSON API, the only way the pages talk to the server.

export const TERMINAL = new Set(["succeeded", "failed", "cancelled", "expired"]);

/** A refused request, with the API's error code and message; `images`: a refused submission's every
 * bad image, each {index, name, status, code, message}. */
export class ApiError extends Error {
  constructor(status, code, message, images = []) {
    super(message);
    this.status = status;
    this.code = code;
    this.images = images;
  }
}

/** fetch() a JSON endpoint; resolves to the parsed body, rejects with ApiError (or a network TypeError). */
export async function request(path, { method = "GET", json, form, token, signal } = {}) {
  const headers = { Accept: "application/json" };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form; // the browser sets the multipart boundary
  }
  // The token typed on the Train or Models page also opens predictions when the server asks for it.
  const bearer = token || sessionStorage.getItem("digits.apiToken");
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  const response = await fetch(path, { method, headers, body, signal, credentials: "same-origin" });
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = (data && data.error) || {};
    const images = Array.isArray(error.images) ? error.images : [];
    throw new ApiError(response.status, error.code || "http_error", error.message || `HTTP ${response.status}`, images);
  }
  return data;
}

/**
 * Submit images (File or Blob objects) as one request, each read as a "digit" or a "number",
 * waiting up to `wait` seconds for their answers.
 * Resolves to {done, jobs}: with done, the jobs' records in order; without, [{job_id, status_url}] to poll.
 */
export async function submitImages(images, { wait = 0, read = "digit" } = {}) {
  if (!images.length) return { done: true, jobs: [] };
  const form = new FormData();
  form.append("read", read);
  images.forEach((image, index) => form.append("image", image, image.name || `drawing-${index + 1}.png`));
  const query = wait ? `?wait=${wait}` : "";
  const body = await request(`/api/v1/predictions${query}`, { method: "POST", form });
  return { done: Boolean(body.done), jobs: body.jobs };
}

/** Say which digit a prediction job's image shows (a correction, or a confirmation); resolves to it as kept. */
export function sendFeedback(id, label) {
  return request(`/api/v1/jobs/${encodeURIComponent(id)}/feedback`, { method: "POST", json: { label } });
}

/** A job's record; `wait` seconds of long polling (the server answers early when the job ends). */
export function getJob(id, { wait = 0, signal } = {}) {
  const query = wait ? `?wait=${wait}` : "";
  return request(`/api/v1/jobs/${encodeURIComponent(id)}${query}`, { signal });
}

/** A signal that aborts when the page goes away, so in-flight polls end quietly. */
export const pageSignal = (() => {
  const controller = new AbortController();
  window.addEventListener("pagehide", () => controller.abort());
  // Back from the back-forward cache the polls are gone: start afresh.
  window.addEventListener("pageshow", (event) => event.persisted && window.location.reload());
  return controller.signal;
})();

export function isAbort(error) {
  return error && error.name === "AbortError";
}
