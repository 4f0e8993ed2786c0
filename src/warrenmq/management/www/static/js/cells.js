/* cells.js: what the list pages put in their cells (ui-lists).

   Theory of operation: small pure functions from one row of the API's JSON
   to a DOM node or a string, shared by the list pages and by anyone showing
   the same facts (the queue page may use queueFeatures). Abbreviations are
   RabbitMQ's (D, AD, Excl, TTL, DLX, ...), each in an <abbr> whose title
   says what it stands for and its value. Rates come from the `*_details.rate`
   the server samples every second; a row without them shows nothing, as
   RabbitMQ's lists do (and rate columns are left out entirely when
   statistics are off: see table.js). */
import { h, fmtRate, fmtBytes } from './dom.js';

/* Arguments shown by a short name, as RabbitMQ's UI (global.js KNOWN_ARGS). */
export const KNOWN_ARGS = {
  'alternate-exchange': ['AE', 'Alternate exchange'],
  'x-message-ttl': ['TTL', 'Message TTL (ms)'],
  'x-expires': ['Exp', 'Queue expires after idle (ms)'],
  'x-max-length': ['Lim', 'Maximum length (messages)'],
  'x-max-length-bytes': ['Lim B', 'Maximum length (bytes)'],
  'x-delivery-limit': ['DlL', 'Delivery limit'],
  'x-overflow': ['Ovfl', 'Overflow behaviour'],
  'x-dead-letter-exchange': ['DLX', 'Dead letter exchange'],
  'x-dead-letter-routing-key': ['DLK', 'Dead letter routing key'],
  'x-queue-master-locator': ['ML', 'Master locator'],
  'x-max-priority': ['Pri', 'Maximum priority'],
  'x-single-active-consumer': ['SAC', 'Single active consumer'],
};

function fmtValue(v) {
  if (typeof v === 'object' && v !== null) return JSON.stringify(v);
  return String(v);
}

function abbr(short, title) {
  return h('abbr', { title }, short);
}

/* The features cell of a queue or an exchange: D AD Excl I, known arguments,
   Args (the rest), then the policy and operator policy names. */
export function features(row) {
  const out = h('span', { class: 'features' });
  const add = (node) => { out.append(node, ' '); };
  if (row.durable) add(abbr('D', 'Durable: survives a broker restart'));
  if (row.auto_delete) add(abbr('AD', 'Auto-delete: deleted when its last consumer (or binding) goes'));
  if (row.exclusive) add(abbr('Excl', 'Exclusive: used by one connection only, deleted when it closes'));
  if (row.internal) add(abbr('I', 'Internal: clients cannot publish to it, only other exchanges'));
  const args = row.arguments || {};
  const other = [];
  for (const [k, v] of Object.entries(args)) {
    if (k in KNOWN_ARGS) continue;
    other.push(`${k}: ${fmtValue(v)}`);
  }
  for (const [k, [short, what]] of Object.entries(KNOWN_ARGS)) {
    if (k in args) add(abbr(short, `${what}: ${k} = ${fmtValue(args[k])}`));
  }
  if (other.length) add(abbr('Args', `Other arguments: ${other.join(', ')}`));
  if (row.policy) {
    add(h('abbr', { class: 'policy', title: `Policy: ${row.policy}` },
      row.vhost !== undefined ? h('a', { href: `#/policies/${enc(row.vhost)}/${enc(row.policy)}` }, row.policy)
        : row.policy));
  }
  if (row.operator_policy) {
    add(h('abbr', { class: 'policy', title: `Operator policy: ${row.operator_policy}` }, row.operator_policy));
  }
  return out;
}

/* The columns= keys features() reads. */
export const FEATURE_FIELDS = ['vhost', 'durable', 'auto_delete', 'exclusive', 'internal', 'arguments', 'policy',
  'operator_policy'];

/* A message rate: stats[`${name}_details`].rate under row.message_stats (or row itself when top). */
export function rate(name, top = false) {
  return (row) => {
    const stats = top ? row : row.message_stats;
    const d = stats && stats[`${name}_details`];
    return d && typeof d.rate === 'number' ? fmtRate(d.rate) : '';
  };
}

/* A byte rate such as a connection's recv_oct_details. */
export function byteRate(name) {
  return (row) => {
    const d = row[`${name}_details`];
    return d && typeof d.rate === 'number' ? `${fmtBytes(d.rate)}/s` : '';
  };
}

/* A rate column: sorted by the server on the same key. */
export function rateColumn(label, name, { top = false, bytes = false, title } = {}) {
  const key = top ? `${name}_details.rate` : `message_stats.${name}_details.rate`;
  return { key, label, sort: key, stats: true, className: 'num', title,
    render: bytes ? byteRate(name) : rate(name, top) };
}

export function num(v) {
  return typeof v === 'number' ? v.toLocaleString('en') : '';
}

export function bool(v) {
  if (v === undefined || v === null) return '';
  return h('span', { class: v ? 'yes' : 'no', title: v ? 'yes' : 'no' }, v ? '\u25cf' : '\u25cb');
}

/* A state; "idle" (with the time in its title) while the object has idle_since, as RabbitMQ shows it. */
export function state(row) {
  if (!row.state) return '';
  if (row.idle_since && row.state === 'running') {
    return h('span', { class: 'state state-idle', title: `Idle since ${row.idle_since}` }, 'idle');
  }
  return h('span', { class: `state state-${row.state}` }, String(row.state).replace('_', ' '));
}

/* The columns= keys state() reads. */
export const STATE_FIELDS = ['state', 'idle_since'];

/* The vhost column every list shares (hidden when one vhost is shown). */
export function vhostColumn(key = 'vhost') {
  return { key, label: 'Virtual host', sort: key, vhostColumn: true };
}

export function enc(s) {
  return encodeURIComponent(s);
}

/* The sub-navigation of the admin pages, filtered by the user's tags. */
export function adminNav(ctx, current) {
  const tags = (ctx.user && ctx.user.tags) || [];
  const admin = tags.includes('administrator');
  const items = [
    ['#/users', 'Users', admin],
    ['#/vhosts', 'Virtual hosts', admin],
    ['#/policies', 'Policies', admin || tags.includes('policymaker')],
    ['#/federation', 'Federation status', admin || tags.includes('monitoring')],
    ['#/shovels', 'Shovel status', admin || tags.includes('monitoring')],
    ['#/dynamic-shovels', 'Shovel management', admin || tags.includes('policymaker')],
  ].filter(([, , ok]) => ok);
  return h('nav', { class: 'subnav', 'aria-label': 'Admin' },
    ...items.map(([href, label]) => {
      const a = h('a', { href }, label);
      if (href === current) a.setAttribute('aria-current', 'page');
      return a;
    }));
}
