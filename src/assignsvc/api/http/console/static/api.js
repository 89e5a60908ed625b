// The public /v1 API, called with the key kept in sessionStorage (never a cookie, never a URL).
const STORE = "assignsvc.console.credentials";
const REASON = "assignsvc.console.reason";

export function credentials() {
  try {
    return JSON.parse(sessionStorage.getItem(STORE) || "null");
  } catch {
    return null;
  }
}

export function signIn(datasource, apiKey) {
  sessionStorage.setItem(STORE, JSON.stringify({ datasource, apiKey }));
  sessionStorage.removeItem(REASON);
}

/** Forget the key; the sign-in page shows `reason` (if any). */
export function signOut(reason) {
  sessionStorage.removeItem(STORE);
  if (reason) sessionStorage.setItem(REASON, reason);
  else sessionStorage.removeItem(REASON);
  if (location.hash === "#/signin") window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = "#/signin";
}

export function signOutReason() {
  return sessionStorage.getItem(REASON) || "";
}

/** A refused call: the google.rpc.Status JSON's message and field violations. */
export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.violations = [];
    for (const detail of (body && body.details) || []) {
      if (String(detail["@type"]).endsWith("google.rpc.BadRequest")) this.violations.push(...(detail.fieldViolations || []));
    }
    this.signedOut = status === 401 || status === 403;
  }
}

/** The segment of a path for an id (ids may hold any character the API allows). */
export function seg(id) {
  return encodeURIComponent(id);
}

async function readJson(response) {
  const text = await response.text();
  try {
    return text ? JSON.parse(text) : {};
  } catch {
    return { message: text.slice(0, 200) };
  }
}

async function send(method, path, { body, query, accept } = {}) {
  const c = credentials() || {};
  const headers = {};
  if (c.apiKey) headers["X-API-Key"] = c.apiKey;
  if (c.datasource) headers["Datasource-ID"] = c.datasource;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (accept) headers["Accept"] = accept;
  const url = path + (query ? `?${new URLSearchParams(query)}` : "");
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
  } catch (error) {
    throw new ApiError(0, { message: `the server cannot be reached (${error.message})` });
  }
  if (!response.ok) {
    const error = new ApiError(response.status, await readJson(response));
    if (error.signedOut) signOut(`${response.status === 401 ? "Signed out" : "Not allowed"}: ${error.message}`);
    throw error;
  }
  return response;
}

/** One call; the reply's JSON. */
export async function api(method, path, options) {
  return readJson(await send(method, path, options));
}

/** A streamed call's NDJSON replies (`result` of each line; a final `error` line throws). */
export async function stream(path, options) {
  const text = await (await send("GET", path, options)).text();
  const results = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const item = JSON.parse(line);
    if (item.error) throw new ApiError(500, item.error);
    results.push(item.result);
  }
  return results;
}

/** A call's body as text (the CSV export). */
export async function text(path, options) {
  return (await send("GET", path, options)).text();
}

/** Every page of a list call, concatenated (`field` is the reply's list). */
export async function all(path, field) {
  const out = [];
  let pageToken = "";
  do {
    const reply = await api("GET", path, { query: pageToken ? { pageSize: "100", pageToken } : { pageSize: "100" } });
    out.push(...(reply[field] || []));
    pageToken = reply.nextPageToken || "";
  } while (pageToken);
  return out;
}
