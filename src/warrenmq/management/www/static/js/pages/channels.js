/* The channels list (ui-lists): a channel's name links to its connection's
   page (there is no page per channel); mode C is confirm, T transactional. */
import { h } from '../dom.js';
import { pagedTable } from '../table.js';
import { enc, num, rateColumn, state, STATE_FIELDS, vhostColumn } from '../cells.js';

function mode(ch) {
  if (ch.transactional) return h('abbr', { title: 'Transactional' }, 'T');
  if (ch.confirm) return h('abbr', { title: 'Confirm' }, 'C');
  return '';
}

function prefetch(ch) {
  const parts = [];
  if (ch.prefetch_count) parts.push(num(ch.prefetch_count));
  if (ch.global_prefetch_count) parts.push(`${num(ch.global_prefetch_count)} (global)`);
  return parts.join(' ');
}

export function channelColumns() {
  return [
    vhostColumn(),
    { key: 'name', label: 'Channel', sort: 'name', link: true },
    { key: 'user', label: 'User', sort: 'user' },
    { key: 'mode', label: 'Mode', sort: 'confirm', fields: ['confirm', 'transactional'], render: mode,
      title: 'C: confirm mode, T: transactional' },
    { key: 'state', label: 'State', sort: 'state', fields: STATE_FIELDS, render: state },
    { key: 'messages_unconfirmed', label: 'Unconfirmed', sort: 'messages_unconfirmed', className: 'num',
      render: (c) => num(c.messages_unconfirmed) },
    { key: 'prefetch_count', label: 'Prefetch', sort: 'prefetch_count', className: 'num',
      fields: ['prefetch_count', 'global_prefetch_count'], render: prefetch },
    { key: 'messages_unacknowledged', label: 'Unacked', sort: 'messages_unacknowledged', className: 'num',
      render: (c) => num(c.messages_unacknowledged) },
    rateColumn('Publish', 'publish'),
    rateColumn('Confirm', 'confirm'),
    rateColumn('Deliver / get', 'deliver_get'),
    rateColumn('Ack', 'ack'),
  ];
}

export default {
  path: '/channels',
  title: 'Channels',
  nav: { label: 'Channels', order: 30 },
  tags: ['management'],
  async render(ctx) {
    ctx.el.append(h('h1', {}, 'Channels'));
    pagedTable(ctx, {
      endpoint: '/channels',
      vhostEndpoint: (v) => `/vhosts/${enc(v)}/channels`,
      columns: channelColumns(),
      fields: ['connection_details.name'],
      rowLink: (c) => `#/connections/${enc(c.connection_details.name)}`,
      label: 'Channels',
      empty: 'No channels',
    });
  },
};
