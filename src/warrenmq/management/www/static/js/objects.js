/* Building blocks of the object pages and admin forms (queue, exchange, connection, user, vhost,
 * policy, definitions).
 *
 * Theory of operation: a page is a few <section>s, each built once; the parts that change (facts,
 * consumers, bindings) are re-rendered in place by a refresh that compares the new JSON with the
 * last one and touches the DOM only when it differs, so forms keep their input and focus while the
 * page polls.  Forms are plain <form> elements with a <label> per input; a submit calls the API and
 * shows the outcome in the form's own status line: RabbitMQ's reason text for an API error.
 */
import {h, fmtRate} from './dom.js';
import {ApiError, credentials} from './api.js';

export {fmtNum as num, fmtBytes as bytes} from './dom.js';

let serial = 0;
/** A document-unique id for label/input pairs. */
export function uid(prefix = 'obj') {
  serial += 1;
  return `${prefix}-${serial}`;
}

/** h() without null/false children, and with arrays flattened. */
export function el(tag, attrs, ...children) {
  const flat = [];
  const add = (c) => {
    if (c === null || c === undefined || c === false) return;
    if (Array.isArray(c)) c.forEach(add);
    else flat.push(c);
  };
  children.forEach(add);
  return h(tag, attrs || {}, ...flat);
}

/** Replace the children of node. */
export function fill(node, ...children) {
  node.replaceChildren();
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c);
  }
  return node;
}

/** A titled section: <section><h2>title</h2>...</section>. */
export function section(title, ...children) {
  const id = uid('sec');
  return el('section', {class: 'obj-section', 'aria-labelledby': id},
    el('h2', {id}, title), ...children);
}

/** The text to show for an error thrown by api.js (RabbitMQ's reason) or by a form's own check. */
export function errorText(e) {
  if (!e) return 'Error';
  if (e.reason !== undefined && e.reason !== null && e.reason !== '') {
    return typeof e.reason === 'string' ? e.reason : JSON.stringify(e.reason);
  }
  if (e.error) return typeof e.error === 'string' ? e.error : JSON.stringify(e.error);
  if (e.status) return `HTTP ${e.status}`;
  return e.message || String(e);
}

/** A status line for a form: say(text) or fail(error). Errors are role=alert, the rest role=status. */
export function statusLine() {
  const node = el('div', {class: 'obj-status'});
  return {
    el: node,
    say(text) { fill(node, el('p', {class: 'obj-ok', role: 'status'}, text)); },
    fail(e) { fill(node, el('p', {class: 'obj-error', role: 'alert'}, errorText(e))); },
    clear() { node.replaceChildren(); },
  };
}

/** A labelled control: <div class=field><label for=id>label</label>control hint</div>. */
export function field(label, control, hint) {
  if (!control.id) control.id = uid('f');
  return el('div', {class: 'field obj-field'},
    el('label', {for: control.id}, label), control,
    hint ? el('small', {class: 'help obj-hint'}, hint) : null);
}

export function input(name, attrs = {}) {
  return el('input', {name, type: 'text', ...attrs});
}

export function textarea(name, attrs = {}) {
  return el('textarea', {name, rows: 4, ...attrs});
}

/** options: [[value, label], ...] or [value, ...]. */
export function select(name, options, value) {
  const s = el('select', {name});
  for (const o of options) {
    const [v, label] = Array.isArray(o) ? o : [o, o];
    const opt = el('option', {value: v}, label);
    if (v === value) opt.selected = true;
    s.append(opt);
  }
  return s;
}

export function checkbox(name, label, checked = false) {
  const box = el('input', {type: 'checkbox', name, id: uid('cb')});
  box.checked = checked;
  return el('div', {class: 'field check obj-field obj-check'}, box, el('label', {for: box.id}, label));
}

/** A button (type=button unless given). */
export function button(text, onclick, attrs = {}) {
  const b = el('button', {type: 'button', ...attrs}, text);
  if (onclick) b.addEventListener('click', onclick);
  return b;
}

/**
 * A form: fields (elements), a submit button, a status line. onSubmit(form) may throw (an ApiError or
 * an Error): its text is shown. It returns the text to show on success (or nothing).
 */
export function makeForm(title, fields, submitLabel, onSubmit, {confirmText} = {}) {
  const status = statusLine();
  const submit = el('button', {type: 'submit', class: 'primary'}, submitLabel);
  const f = el('form', {class: 'form obj-form', 'aria-label': title}, ...fields, el('div', {class: 'actions obj-actions'}, submit), status.el);
  f.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (confirmText && !window.confirm(typeof confirmText === 'function' ? confirmText() : confirmText)) return;
    submit.disabled = true;
    status.clear();
    try {
      const said = await onSubmit(f);
      if (said) status.say(said);
    } catch (e) {
      status.fail(e);
    } finally {
      submit.disabled = false;
    }
  });
  f.status = status;
  return f;
}

/** A two-column facts table: rows [[label, value], ...]; rows whose value is undefined are left out. */
export function facts(rows) {
  const body = el('tbody');
  for (const [label, value] of rows) {
    if (value === undefined) continue;
    body.append(el('tr', {}, el('th', {scope: 'row'}, label), el('td', {}, value === null ? '' : value)));
  }
  return el('table', {class: 'obj-facts'}, body);
}

/**
 * A table of rows: columns [{label, render: row => node|string, className}].
 * Wrapped in a div that scrolls horizontally on a narrow screen.
 */
export function table(columns, rows, emptyText = '... no items ...', caption) {
  if (!rows.length) return el('p', {class: 'obj-empty'}, emptyText);
  const head = el('tr', {}, columns.map((c) => el('th', {scope: 'col', class: c.className || null}, c.label)));
  const body = el('tbody', {}, rows.map((r) => el('tr', {},
    columns.map((c) => el('td', {class: c.className || null}, valueNode(c.render(r)))))));
  return el('div', {class: 'table-wrap obj-table-wrap'},
    el('table', {class: 'obj-table'}, caption ? el('caption', {}, caption) : null, el('thead', {}, head), body));
}

function valueNode(v) {
  if (v === null || v === undefined) return '';
  if (typeof v === 'object' && v.nodeType) return v;
  return String(v);
}

/** Key/value table of an object (arguments, client properties, headers); nested objects nest. */
export function kvTable(obj) {
  if (obj === null || obj === undefined) return '';
  if (typeof obj !== 'object') return String(obj);
  if (Array.isArray(obj)) {
    if (!obj.length) return '';
    return obj.map((x) => (typeof x === 'object' ? JSON.stringify(x) : String(x))).join(', ');
  }
  const keys = Object.keys(obj);
  if (!keys.length) return '';
  return el('table', {class: 'obj-kv'}, el('tbody', {}, keys.map((k) =>
    el('tr', {}, el('th', {scope: 'row'}, k), el('td', {}, kvTable(obj[k]))))));
}

/**
 * Rows of key / value / type inputs, as RabbitMQ's UI edits arguments and headers: a new empty row
 * appears when the last one is filled. value() gives the object (numbers and booleans typed) or throws.
 */
export function kvEditor(label, {types = true} = {}) {
  const rows = el('div', {class: 'obj-kv-rows'});
  const id = uid('kv');
  const wrap = el('fieldset', {class: 'obj-kv-editor', id}, el('legend', {}, label), rows);
  let n = 0;
  const addRow = () => {
    n += 1;
    const k = el('input', {type: 'text', class: 'obj-kv-key', 'aria-label': `${label} ${n}: key`});
    const v = el('input', {type: 'text', class: 'obj-kv-value', 'aria-label': `${label} ${n}: value`});
    const t = types ? select('type', [['string', 'String'], ['number', 'Number'], ['boolean', 'Boolean'], ['list', 'List']], 'string') : null;
    if (t) t.setAttribute('aria-label', `${label} ${n}: type`);
    const row = el('div', {class: 'obj-kv-row'}, k, ' = ', v, t);
    const grow = () => { if (row === rows.lastElementChild && (k.value || v.value)) addRow(); };
    k.addEventListener('input', grow);
    v.addEventListener('input', grow);
    rows.append(row);
  };
  addRow();
  wrap.value = () => {
    const out = {};
    for (const row of rows.children) {
      const key = row.querySelector('.obj-kv-key').value.trim();
      const raw = row.querySelector('.obj-kv-value').value;
      const t = row.querySelector('select');
      if (!key) continue;
      out[key] = typed(key, raw, t ? t.value : 'string');
    }
    return out;
  };
  wrap.reset = () => { rows.replaceChildren(); n = 0; addRow(); };
  return wrap;
}

function typed(key, raw, type) {
  if (type === 'number') {
    const x = Number(raw);
    if (raw.trim() === '' || Number.isNaN(x)) throw new Error(`${key}: "${raw}" is not a number`);
    return x;
  }
  if (type === 'boolean') {
    if (!['true', 'false'].includes(raw.trim().toLowerCase())) throw new Error(`${key}: "${raw}" is not true or false`);
    return raw.trim().toLowerCase() === 'true';
  }
  if (type === 'list') return raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
  return raw;
}

/**
 * Keeps a container up to date: render(data) is called only when the JSON differs from the last
 * one, so a poll that changes nothing leaves the DOM (and the focus) alone.
 */
export function liveRegion(container, render) {
  let last = null;
  return (data) => {
    const json = JSON.stringify(data);
    if (json === last) return;
    last = json;
    fill(container, render(data));
  };
}

/** A link to an object page. */
export function link(hash, text) {
  return el('a', {href: hash}, text);
}

export function queueHash(vhost, name) {
  return `#/queues/${encodeURIComponent(vhost)}/${encodeURIComponent(name)}`;
}

export function exchangeHash(vhost, name) {
  return `#/exchanges/${encodeURIComponent(vhost)}/${encodeURIComponent(name === '' ? 'amq.default' : name)}`;
}

/** "(AMQP default)" for the default exchange's empty name, as RabbitMQ's UI shows it. */
export function exchangeLabel(name) {
  return name === '' ? '(AMQP default)' : name;
}

/** A message for an object that is not there (a 404), with a link back to its list. */
export function notFound(what, name, vhost, listHash, listLabel) {
  return el('div', {class: 'obj-notfound', role: 'alert'},
    el('h1', {}, `${what} not found`),
    el('p', {}, vhost === undefined
      ? `The ${what.toLowerCase()} '${name}' does not exist (it may have been deleted).`
      : `The ${what.toLowerCase()} '${name}' in virtual host '${vhost}' does not exist (it may have been deleted).`),
    el('p', {}, link(listHash, `All ${listLabel}`)));
}

/** Feature letters of a queue or exchange, with titles explaining them (RabbitMQ's abbreviations). */
export function features(obj) {
  const out = [];
  const tag = (abbr, title) => out.push(el('abbr', {class: 'obj-feature', title}, abbr), ' ');
  if (obj.durable) tag('D', 'durable: true');
  if (obj.auto_delete) tag('AD', 'auto-delete: true');
  if (obj.exclusive) tag('Excl', 'exclusive: true');
  if (obj.internal) tag('I', 'internal: true');
  const args = obj.arguments || {};
  for (const [k, v] of Object.entries(args)) tag(ARG_ABBR[k] || k, `${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`);
  return out.length ? el('span', {}, out) : '';
}

const ARG_ABBR = {
  'x-message-ttl': 'TTL',
  'x-expires': 'Exp',
  'x-max-length': 'Lim',
  'x-max-length-bytes': 'Lim B',
  'x-dead-letter-exchange': 'DLX',
  'x-dead-letter-routing-key': 'DLK',
  'x-max-priority': 'Pri',
  'x-overflow': 'Ovfl',
  'x-single-active-consumer': 'SAC',
  'x-queue-type': 'Type',
  'x-queue-mode': 'Mode',
  'alternate-exchange': 'AE',
};

/** A rate from a *_details object, '' when statistics are off. */
export function rate(stats, key) {
  const d = stats && stats[`${key}_details`];
  if (!d || d.rate === undefined) return '';
  return fmtRate(d.rate);
}

/** Has the user one of these tags (administrator implies every other)? */
export function hasTag(user, ...tags) {
  const mine = (user && user.tags) || [];
  return mine.includes('administrator') || tags.some((t) => mine.includes(t));
}

/**
 * A request api.js does not make: extra headers (X-Reason) or a body that is not JSON (a multipart
 * upload). Same credentials and errors (ApiError with RabbitMQ's reason) as api.js; resolves to the
 * Response.
 */
export async function send(method, path, {headers = {}, body} = {}) {
  const c = credentials();
  const all = {Accept: 'application/json', ...headers};
  if (c) all.Authorization = `Basic ${c.token}`;
  const r = await fetch(`api${path}`, {method, headers: all, body, credentials: 'omit', cache: 'no-store'});
  if (r.ok) return r;
  let data = null;
  try { data = JSON.parse(await r.text()); } catch (e) { data = null; }
  const error = data && typeof data === 'object' ? data.error : r.statusText;
  let reason = data && typeof data === 'object' ? data.reason : r.statusText;
  if (reason !== undefined && typeof reason !== 'string') reason = JSON.stringify(reason);
  throw new ApiError(r.status, error, reason);
}

/* Keep an object's page live: GET `path` every second into `update`, `bindings` (bindings.js) every 5 s.
 * Once the object is gone (404), polling stops and `gone` says so ("The queue 'q' no longer exists."). */
export async function pollObject(ctx, path, update, bindings, gone, what) {
  await bindings.refresh();
  let deleted = false;
  let ticks = 0;
  ctx.every(1000, async () => {
    if (deleted) return;
    try {
      update(await ctx.api.get(path));
      ticks += 1;
      if (ticks % 5 === 0) await bindings.refresh();
    } catch (e) {
      if (e.status === 404) {
        deleted = true;
        fill(gone, el('p', {class: 'obj-error', role: 'alert'}, `The ${what} no longer exists.`));
        return;
      }
      throw e;
    }
  });
}
