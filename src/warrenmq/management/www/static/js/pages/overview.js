// The overview page: live charts of message rates and queued messages, object
// totals, the node's facts (memory, disk, alarms, descriptors, uptime) and listeners.
//
// Theory of operation: /api/overview is polled every second; its message_stats
// counts (publish, confirm, deliver_get, redeliver, ack, unroutable) are pushed to
// a counter chart, which turns them into per-second rates between polls, and its
// queue_totals to a depth chart. With statistics off (the overview says
// disable_stats / rates_mode "none") the rate chart is not built and a line says
// why; depths and totals still show. /api/nodes (monitoring or administrator tag,
// as RabbitMQ) is polled every five seconds for the node's facts.

import { h, clear, fmtNum, fmtBytes, fmtDuration } from '../dom.js';
import { rateChart } from '../chart.js';
import { hasLevel } from '../api.js';

const RATES = [
  { label: 'Publish', key: 'publish', counter: true },
  { label: 'Publisher confirm', key: 'confirm', counter: true },
  { label: 'Deliver / get', key: 'deliver_get', counter: true },
  { label: 'Redelivered', key: 'redeliver', counter: true },
  { label: 'Consumer ack', key: 'ack', counter: true },
  { label: 'Unroutable', key: 'unroutable', counter: true },
];
const DEPTHS = [
  { label: 'Ready', key: 'messages_ready' },
  { label: 'Unacked', key: 'messages_unacknowledged' },
  { label: 'Total', key: 'messages' },
];
const TOTALS = [
  ['Connections', 'connections', '#/connections'], ['Channels', 'channels', '#/channels'],
  ['Exchanges', 'exchanges', '#/exchanges'], ['Queues', 'queues', '#/queues'],
  ['Consumers', 'consumers', '#/consumers'],
];

function fact(dl, label, ...value) {
  dl.append(h('dt', {}, label), h('dd', {}, ...value));
}

function bar(used, limit, alarm) {
  if (!limit || used === undefined || used === null) return null;
  const fill = h('span', {});
  fill.style.width = `${Math.min(100, (100 * used) / limit).toFixed(1)}%`;
  return h('span', { class: ['bar', alarm && 'alarm'], 'aria-hidden': 'true' }, fill);
}

function renderNode(dl, n) {
  clear(dl);
  fact(dl, 'Node', n.name);
  fact(dl, 'Uptime', fmtDuration(n.uptime / 1000));
  fact(dl, 'Memory', `${fmtBytes(n.mem_used)} of ${fmtBytes(n.mem_limit)} high watermark`,
    bar(n.mem_used, n.mem_limit, n.mem_alarm), n.mem_alarm ? h('span', { class: 'alarm-on' }, ' memory alarm') : null);
  const disk = n.disk_free === null || n.disk_free === undefined
    ? `no data directory (in memory); limit ${fmtBytes(n.disk_free_limit)}`
    : `${fmtBytes(n.disk_free)} free, limit ${fmtBytes(n.disk_free_limit)}`;
  fact(dl, 'Disk', disk, n.disk_free_alarm ? h('span', { class: 'alarm-on' }, ' disk alarm') : null);
  const alarms = [n.mem_alarm && 'memory', n.disk_free_alarm && 'disk'].filter(Boolean);
  fact(dl, 'Alarms', alarms.length ? h('span', { class: 'alarm-on', id: 'alarms' }, alarms.join(', '))
    : h('span', { class: 'ok', id: 'alarms' }, 'none'));
  if (n.fd_total) {
    fact(dl, 'File descriptors', `${fmtNum(n.fd_used)} of ${fmtNum(n.fd_total)}`, bar(n.fd_used, n.fd_total, false));
  }
  fact(dl, 'Processors', fmtNum(n.processors));
  if (n.os) fact(dl, 'System', `${n.os}${n.python_version ? `, Python ${n.python_version}` : ''}`);
}

function listenerTable(listeners) {
  return h('div', { class: 'table-wrap' }, h('table', { id: 'listeners' },
    h('caption', { class: 'visually-hidden' }, 'Listeners'),
    h('thead', {}, h('tr', {}, ['Protocol', 'Bound to', 'Port'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, (listeners || []).map((l) => h('tr', {},
      h('td', {}, l.protocol), h('td', {}, l.ip_address), h('td', { class: 'num' }, String(l.port)))))));
}

export default {
  path: '/',
  title: 'Overview',
  nav: { label: 'Overview', order: 10 },
  tags: ['management'],
  async render(ctx) {
    const totals = h('dl', { class: 'totals', id: 'totals' });
    const charts = h('div', { class: 'charts' });
    const version = h('p', { class: 'muted', id: 'version' });
    const listeners = h('div', {});
    ctx.el.append(
      h('h1', {}, 'Overview'), version,
      h('section', { 'aria-labelledby': 'totals-h' }, h('h2', { id: 'totals-h' }, 'Totals'), totals),
      h('section', { 'aria-labelledby': 'charts-h' }, h('h2', { id: 'charts-h' }, 'Messages'), charts),
    );
    const depthsBox = h('div', { id: 'depths' });
    charts.append(depthsBox);
    const depth = rateChart(depthsBox, DEPTHS, { title: 'Queued messages' });
    let rates = null;
    if (ctx.stats) {
      const el = h('div', { id: 'rates' });
      charts.append(el);
      rates = rateChart(el, RATES, { title: 'Message rates' });
    } else {
      charts.append(h('p', { class: 'muted', id: 'stats-off' },
        'Statistics collection is off on this broker (statistics_enabled = false): message rates are not shown; ' +
        'queue depths and listings are.'));
    }

    let nodeFacts = null;
    if (hasLevel(ctx.user, 'monitoring')) {
      nodeFacts = h('dl', { class: 'facts', id: 'node' });
      ctx.el.append(h('section', { 'aria-labelledby': 'node-h' }, h('h2', { id: 'node-h' }, 'Node'), nodeFacts));
    }
    ctx.el.append(h('section', { 'aria-labelledby': 'listeners-h' }, h('h2', { id: 'listeners-h' }, 'Listeners'), listeners));

    let listenersKey = '';
    ctx.every(1000, async () => {
      const ov = await ctx.api.get('/overview');
      const now = Date.now();
      const o = ov.object_totals || {};
      const q = ov.queue_totals || {};
      clear(totals).append(...TOTALS.map(([label, key, href]) => h('div', { class: 'stat' },
        h('dt', {}, h('a', { href }, label)), h('dd', { dataset: { key } }, fmtNum(o[key])))));
      depth.push(now, q);
      if (rates && ov.message_stats) {
        const m = ov.message_stats;
        rates.push(now, {
          publish: m.publish || 0, confirm: m.confirm || 0, deliver_get: m.deliver_get || 0,
          redeliver: m.redeliver || 0, ack: m.ack || 0,
          unroutable: (m.return_unroutable || 0) + (m.drop_unroutable || 0),
        });
      }
      version.textContent = `WarrenMQ ${ov.warrenmq_version || ''} (RabbitMQ ${ov.rabbitmq_version} compatible)` +
        ` on ${ov.node}${ov.cluster_name && ov.cluster_name !== ov.node ? `, cluster ${ov.cluster_name}` : ''}`;
      const key = JSON.stringify(ov.listeners);
      if (key !== listenersKey) {
        listenersKey = key;
        clear(listeners).append(listenerTable(ov.listeners));
      }
    });
    if (nodeFacts) {
      ctx.every(5000, async () => {
        const nodes = await ctx.api.get('/nodes');
        if (nodes.length) renderNode(nodeFacts, nodes[0]);
      });
    }
  },
};
