// How numbers and times read on every page.

export function percent(fraction, digits = 1) {
  return `${(fraction * 100).toFixed(digits)} %`;
}

export function seconds(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "";
  if (value < 10) return `${value.toFixed(2)} s`;
  if (value < 120) return `${value.toFixed(1)} s`;
  return `${Math.floor(value / 60)} min ${Math.round(value % 60)} s`;
}

/** Seconds from submission to the end of a job (what the person waited), or null while it runs. */
export function tookSeconds(job) {
  if (!job.finished_at) return null;
  return (Date.parse(job.finished_at) - Date.parse(job.created_at)) / 1000;
}

export function clockTime(iso) {
  return iso ? new Date(iso).toLocaleTimeString([], { hour12: false }) : "";
}

export function dateTime(iso) {
  return iso ? new Date(iso).toLocaleString([], { hour12: false }) : "";
}

export function shortId(id) {
  return id.slice(0, 8);
}
