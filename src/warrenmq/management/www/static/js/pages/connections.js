/* The connections list (ui-lists): name (linked to the connection page),
   user, state, client, channels, TLS and octet rates. */
import { h } from '../dom.js';
import { pagedTable } from '../table.js';
import { bool, enc, num, rateColumn, state, STATE_FIELDS, vhostColumn } from '../cells.js';

export const connectionLink = (c) => `#/connections/${enc(c.name)}`;

function client(c) {
  const p = c.client_properties || {};
  const name = [p.product, p.platform].filter((x) => x !== undefined && x !== null).join(' / ');
  const out = h('span', { class: 'client' }, name);
  if (p.version !== undefined && p.version !== null) out.append(' ', h('small', {}, String(p.version)));
  return out;
}

function connName(c) {
  const given = c.client_properties && c.client_properties.connection_name;
  if (!given) return c.name;
  return h('span', {}, c.name, h('br'), h('small', {}, String(given)));
}

export function connectionColumns() {
  return [
    vhostColumn(),
    { key: 'name', label: 'Name', sort: 'name', link: true, fields: ['name', 'client_properties'], render: connName },
    { key: 'user', label: 'User', sort: 'user' },
    { key: 'state', label: 'State', sort: 'state', fields: STATE_FIELDS, render: state },
    { key: 'protocol', label: 'Protocol', sort: 'protocol' },
    { key: 'ssl', label: 'TLS', sort: 'ssl', render: (c) => bool(c.ssl), title: 'Connected over TLS' },
    { key: 'client_properties', label: 'Client', sort: 'client_properties.product', render: client },
    { key: 'channels', label: 'Channels', sort: 'channels', className: 'num', render: (c) => num(c.channels) },
    rateColumn('From client', 'recv_oct', { top: true, bytes: true, title: 'Bytes received from the client per second' }),
    rateColumn('To client', 'send_oct', { top: true, bytes: true, title: 'Bytes sent to the client per second' }),
  ];
}

export default {
  path: '/connections',
  title: 'Connections',
  nav: { label: 'Connections', order: 20 },
  tags: ['management'],
  async render(ctx) {
    ctx.el.append(h('h1', {}, 'Connections'));
    pagedTable(ctx, {
      endpoint: '/connections',
      vhostEndpoint: (v) => `/vhosts/${enc(v)}/connections`,
      columns: connectionColumns(),
      fields: ['name'],
      rowLink: connectionLink,
      label: 'Connections',
      empty: 'No connections',
    });
  },
};
