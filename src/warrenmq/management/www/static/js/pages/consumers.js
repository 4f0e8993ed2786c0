/* The consumers list (ui-lists): queue (linked), channel (linked to its
   connection), tag, ack mode, exclusivity, prefetch and arguments. Consumers
   have no name, so there is no name filter (the API filters on `name`). */
import { h } from '../dom.js';
import { pagedTable } from '../table.js';
import { bool, enc, num, vhostColumn } from '../cells.js';

function queueCell(c) {
  return h('a', { href: `#/queues/${enc(c.queue.vhost)}/${enc(c.queue.name)}` }, c.queue.name);
}

function channelCell(c) {
  const d = c.channel_details || {};
  if (!d.connection_name) return d.name || '';
  return h('a', { href: `#/connections/${enc(d.connection_name)}` }, d.name);
}

function args(c) {
  const a = c.arguments || {};
  const keys = Object.keys(a);
  return keys.length ? keys.map((k) => `${k}: ${JSON.stringify(a[k])}`).join(', ') : '';
}

export function consumerColumns() {
  return [
    vhostColumn('queue.vhost'),
    { key: 'queue', label: 'Queue', sort: 'queue.name', render: queueCell },
    { key: 'channel_details', label: 'Channel', sort: 'channel_details.name',
      fields: ['channel_details.name', 'channel_details.connection_name'], render: channelCell },
    { key: 'consumer_tag', label: 'Consumer tag', sort: 'consumer_tag' },
    { key: 'ack_required', label: 'Ack required', sort: 'ack_required', render: (c) => bool(c.ack_required) },
    { key: 'exclusive', label: 'Exclusive', sort: 'exclusive', render: (c) => bool(c.exclusive) },
    { key: 'prefetch_count', label: 'Prefetch', sort: 'prefetch_count', className: 'num',
      render: (c) => num(c.prefetch_count) },
    { key: 'arguments', label: 'Arguments', render: args },
  ];
}

export default {
  path: '/consumers',
  title: 'Consumers',
  nav: { label: 'Consumers', order: 50 },
  tags: ['management'],
  async render(ctx) {
    ctx.el.append(h('h1', {}, 'Consumers'));
    pagedTable(ctx, {
      endpoint: '/consumers',
      columns: consumerColumns(),
      filter: false,
      label: 'Consumers',
      empty: 'No consumers',
    });
  },
};
