// The HTTP API client of the web UI: every figure the UI shows comes through here.
//
// Theory of operation: one fetch wrapper, `request`, adds HTTP Basic credentials
// (kept in sessionStorage, so they live as long as the tab and are never sent by
// the browser on its own: fetch runs with credentials 'omit', which also keeps the
// browser's own Basic-auth dialog from popping up on a 401), sends JSON, and turns
// a non-2xx answer into an ApiError carrying RabbitMQ's {error, reason}. A 401 that
// says the credentials themselves are bad (empty body or "not_authorized") forgets
// them and calls the handler app.js registers, which shows the login page; a 401
// "not_authorised" (an authenticated user refused an operation, RabbitMQ's spelling)
// is thrown like any other error, so the page can say so.
// URLs are relative ('api/...'), so the UI also works behind a path prefix.

const KEY = 'warrenmq.credentials';

export class ApiError extends Error {
  constructor(status, error, reason) {
    super(reason ? `${error}: ${reason}` : String(error || status));
    this.name = 'ApiError';
    this.status = status;
    this.error = error;
    this.reason = reason;
  }
}

let unauthorized = () => {};
/** app.js: what to do when the stored credentials stop working (show the login page). */
export function onUnauthorized(fn) { unauthorized = fn; }

/** encodeURIComponent for path segments ('/' -> '%2F'). */
export function enc(s) { return encodeURIComponent(s); }

function token(user, pass) {
  const bytes = new TextEncoder().encode(`${user}:${pass}`);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

/** {user, token} of the logged-in user, or null. */
export function credentials() {
  try {
    const v = JSON.parse(sessionStorage.getItem(KEY) || 'null');
    return v && v.user && v.token ? v : null;
  } catch (e) {
    return null;
  }
}

function query(q) {
  const parts = [];
  for (const [k, v] of Object.entries(q || {})) {
    if (v === undefined || v === null || v === '') continue;
    parts.push(`${encodeURIComponent(k)}=${encodeURIComponent(v)}`);
  }
  return parts.length ? `?${parts.join('&')}` : '';
}

async function request(method, path, { q, body, auth, quiet401 } = {}) {
  const headers = { Accept: 'application/json' };
  const tok = auth || (credentials() || {}).token;
  if (tok) headers.Authorization = `Basic ${tok}`;
  const init = { method, headers, credentials: 'omit', cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const r = await fetch(`api${path}${query(q)}`, init);
  const text = await r.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch (e) { data = text; }
  }
  if (r.ok) return data;
  const error = data && typeof data === 'object' ? data.error : undefined;
  let reason = data && typeof data === 'object' ? data.reason : (data || r.statusText);
  if (reason !== undefined && typeof reason !== 'string') reason = JSON.stringify(reason);
  const err = new ApiError(r.status, error || r.statusText, reason);
  if (r.status === 401 && !quiet401 && (error === undefined || error === 'not_authorized')) {
    sessionStorage.removeItem(KEY);
    unauthorized(err);
  }
  throw err;
}

/** GET api{path}{?query}: the parsed JSON. */
export function get(path, q = {}) { return request('GET', path, { q }); }
/** PUT with a JSON body; resolves (to the body, if any) on 2xx. */
export function put(path, body = {}) { return request('PUT', path, { body }); }
/** POST with a JSON body. */
export function post(path, body = {}) { return request('POST', path, { body }); }
/** DELETE, e.g. del('/queues/%2F/q', {'if-empty': true}). */
export function del(path, q = {}) { return request('DELETE', path, { q }); }

/** Check user/password with GET /api/whoami; keep them for this tab on success. Resolves to {name, tags}. */
export async function login(user, pass) {
  const tok = token(user, pass);
  const me = await request('GET', '/whoami', { auth: tok, quiet401: true });
  sessionStorage.setItem(KEY, JSON.stringify({ user, token: tok }));
  return me;
}

/** Forget the credentials of this tab. */
export function logout() { sessionStorage.removeItem(KEY); }

/** RabbitMQ's tag ladder: the tags that grant each level (management < policymaker, monitoring < administrator). */
const LEVELS = {
  management: ['management', 'policymaker', 'monitoring', 'administrator'],
  policymaker: ['policymaker', 'administrator'],
  monitoring: ['monitoring', 'administrator'],
  administrator: ['administrator'],
};

/** Whether user ({name, tags}) has the level ('management', 'policymaker', 'monitoring', 'administrator'). */
export function hasLevel(user, level) {
  const grant = LEVELS[level] || [level];
  return Boolean(user) && (user.tags || []).some((t) => grant.includes(t));
}
