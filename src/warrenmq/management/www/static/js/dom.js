// Small DOM helpers of the web UI: an element builder, number/time formatters,
// status messages, labelled forms.
//
// Theory of operation: pages build their DOM with h() (no templates, no
// innerHTML of API data, so names from the broker are always text, never markup);
// event handlers are attached as properties (no inline handler attributes, which
// the UI's Content-Security-Policy forbids). Formatters accept undefined/null
// (a figure the API left out, e.g. with statistics off) and return ''.

/** h('button', {class: 'x', onClick: fn, 'aria-label': 'y'}, 'text', child, [more]) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2).toLowerCase(), v);
    } else if (k === 'class' || k === 'className') {
      el.className = Array.isArray(v) ? v.filter(Boolean).join(' ') : v;
    } else if (k === 'dataset') {
      Object.assign(el.dataset, v);
    } else if (k === 'value' || k === 'checked' || k === 'selected' || k === 'indeterminate') {
      el[k] = v;
    } else if (k === 'text') {
      el.textContent = v;
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

/** Remove every child of el (and return it). */
export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

const INT = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const DEC = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });
const DEC2 = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 });

const missing = (n) => n === undefined || n === null || Number.isNaN(n);

/** 1234 -> '1,234' */
export function fmtNum(n) {
  if (missing(n)) return '';
  return Number.isInteger(n) ? INT.format(n) : DEC.format(n);
}

/** 1234 -> '1,234/s', 0.45 -> '0.45/s', 12.3 -> '12.3/s' */
export function fmtRate(x) {
  if (missing(x)) return '';
  const a = Math.abs(x);
  const f = a >= 100 ? INT : a >= 1 ? DEC : DEC2;
  return `${f.format(x)}/s`;
}

/** 1536 -> '1.5 KiB' */
export function fmtBytes(n) {
  if (missing(n)) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  let v = n;
  while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return i === 0 ? `${INT.format(v)} B` : `${DEC.format(v)} ${units[i]}`;
}

/** seconds -> '3d 4h', '5h 2m', '2m 3s', '45s' */
export function fmtDuration(s) {
  if (missing(s)) return '';
  s = Math.max(0, Math.floor(s));
  const d = Math.floor(s / 86400);
  const hr = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (d) return `${d}d ${hr}h`;
  if (hr) return `${hr}h ${m}m`;
  if (m) return `${m}m ${sec}s`;
  return `${sec}s`;
}

const pad = (n) => String(n).padStart(2, '0');
/** epoch milliseconds -> '2026-12-05 19:30:00' (local time) */
export function fmtTime(ms) {
  if (missing(ms)) return '';
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/**
 * A status line in the page's message area (#notices): role="status" for info,
 * role="alert" for errors. Info lines go away after a few seconds; errors stay
 * until closed or until the next navigation. Returns the element.
 */
export function notice(text, kind = 'info') {
  const area = document.getElementById('notices');
  const close = h('button', { type: 'button', class: 'close', 'aria-label': 'Dismiss' }, '\u00d7');
  const el = h('div', { class: `notice ${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    h('span', {}, text), close);
  close.addEventListener('click', () => el.remove());
  if (area) area.appendChild(el);
  if (kind !== 'error') setTimeout(() => el.remove(), 5000);
  return el;
}

/** Remove every notice (app.js does this on navigation). */
export function clearNotices() {
  const area = document.getElementById('notices');
  if (area) clear(area);
}

let formSeq = 0;

/**
 * A labelled form. fields: [{name, label, type ('text'|'password'|'number'|'checkbox'|'select'|
 * 'textarea'|'hidden'), options ([v] or [{value, label}]), value, required, placeholder, help}].
 * onSubmit(values, formEl) may be async; while it runs the submit button is disabled; an error
 * it throws is shown in the form (role="alert"). opts: {submit: 'Add', class}.
 * values: checkbox -> boolean, number -> Number (or undefined when empty), others -> string.
 */
export function form(fields, onSubmit, opts = {}) {
  const id = `f${++formSeq}`;
  const inputs = {};
  const rows = fields.map((f) => {
    const fid = `${id}-${f.name}`;
    let input;
    if (f.type === 'select') {
      input = h('select', { id: fid, name: f.name, required: f.required },
        (f.options || []).map((o) => {
          const v = typeof o === 'object' ? o.value : o;
          const l = typeof o === 'object' ? o.label : o;
          return h('option', { value: v, selected: f.value !== undefined && String(f.value) === String(v) }, l);
        }));
    } else if (f.type === 'textarea') {
      input = h('textarea', { id: fid, name: f.name, required: f.required, placeholder: f.placeholder, rows: f.rows || 4 });
      if (f.value !== undefined) input.value = f.value;
    } else {
      input = h('input', {
        id: fid, name: f.name, type: f.type || 'text', required: f.required, placeholder: f.placeholder,
        autocomplete: f.autocomplete, min: f.min, step: f.step,
      });
      if (f.type === 'checkbox') input.checked = Boolean(f.value);
      else if (f.value !== undefined) input.value = f.value;
    }
    inputs[f.name] = { f, input };
    if (f.type === 'hidden') return input;
    const help = f.help ? h('small', { id: `${fid}-help`, class: 'help' }, f.help) : null;
    if (help) input.setAttribute('aria-describedby', help.id);
    return h('div', { class: `field ${f.type === 'checkbox' ? 'check' : ''}` },
      h('label', { for: fid }, f.label || f.name), input, help);
  });
  const submit = h('button', { type: 'submit', class: 'primary' }, opts.submit || 'Submit');
  const status = h('div', { class: 'form-status' });
  const el = h('form', { id, class: ['form', opts.class] }, rows, h('div', { class: 'actions' }, submit), status);
  el.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear(status);
    const values = {};
    for (const [name, { f, input }] of Object.entries(inputs)) {
      if (f.type === 'checkbox') values[name] = input.checked;
      else if (f.type === 'number') values[name] = input.value === '' ? undefined : Number(input.value);
      else values[name] = input.value;
    }
    submit.disabled = true;
    try {
      await onSubmit(values, el);
    } catch (e) {
      status.appendChild(h('p', { class: 'notice error', role: 'alert' }, e.reason || e.message || String(e)));
    } finally {
      submit.disabled = false;
    }
  });
  return el;
}

/** window.confirm, so tests and pages have one place to look. */
export function confirmAction(text) {
  return window.confirm(text);
}
