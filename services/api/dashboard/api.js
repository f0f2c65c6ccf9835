// Calls to the API: every one sends the key as a header, never in a URL.

export const KEY = "infrawatch.apiKey";

export class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.message || (typeof body.detail === "string" ? body.detail : null))) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

let refused = () => {};
/** What a refused key (401) does: the page signs out. */
export function whenRefused(fn) { refused = fn; }

export function headers() { return { Authorization: `Bearer ${sessionStorage.getItem(KEY)}`, Accept: "application/json" }; }

/** GET an API path; a 401 signs out. */
export async function api(path, signal) {
  const r = await fetch(path, { headers: headers(), signal });
  const body = await r.json().catch(() => null);
  if (r.status === 401) { refused("The key was refused."); throw new ApiError(401, body); }
  if (!r.ok) throw new ApiError(r.status, body);
  return body;
}

export const q = (params) => new URLSearchParams(Object.entries(params).filter(([, v]) => v !== null && v !== undefined));
export const dev = (name) => `/devices/${encodeURIComponent(name)}`;
