// The API token for training and model management: typed once, kept in this tab's sessionStorage
// (gone when the tab closes), sent as "Authorization: Bearer <token>".

const KEY = "digits.apiToken";

/** Bind the #token field to sessionStorage; returns a function that reads the current token. */
export function tokenField() {
  const input = document.getElementById("token");
  input.value = sessionStorage.getItem(KEY) || "";
  input.addEventListener("input", () => {
    const value = input.value.trim();
    if (value) sessionStorage.setItem(KEY, value);
    else sessionStorage.removeItem(KEY);
  });
  return () => input.value.trim();
}

/** A message for a refused token, or null if the error is something else. */
export function tokenProblem(error) {
  if (error.status === 401) return "Enter the API token first.";
  if (error.status === 403) return `The token was refused: ${error.message}`;
  return null;
}
