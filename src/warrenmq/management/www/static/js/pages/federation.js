/* Federation status (Admin; monitoring users and administrators, as RabbitMQ's federation
   management plugin shows it): every federation link this broker runs as a downstream, from
   /api/federation-links, with its upstream, what it federates, its state and, for a link in
   error, why. */
import { h } from '../dom.js';
import { pagedTable } from '../table.js';
import { adminNav, enc, vhostColumn } from '../cells.js';

function linkState(l) {
  const s = h('span', { class: `state state-${l.status}` }, String(l.status));
  return l.error ? h('span', {}, s, ' ', h('code', {}, l.error)) : s;
}

export function federationColumns() {
  return [
    { key: 'upstream', label: 'Upstream', sort: 'upstream' },
    { key: 'uri', label: 'URI', sort: 'uri', render: (l) => h('code', {}, l.uri || '') },
    vhostColumn(),
    { key: 'name', label: 'Exchange / queue', fields: ['type', 'exchange', 'queue'],
      render: (l) => `${l.type === 'queue' ? l.queue : l.exchange} (${l.type})` },
    { key: 'upstream_name', label: 'Upstream exchange / queue', fields: ['upstream_exchange', 'upstream_queue'],
      render: (l) => l.upstream_queue || l.upstream_exchange || '' },
    { key: 'status', label: 'State', sort: 'status', fields: ['status', 'error'], render: linkState },
    { key: 'timestamp', label: 'Last changed', sort: 'timestamp' },
  ];
}

const page = {
  path: '/federation',
  title: 'Federation status',
  nav: null,
  navPath: '/admin',  // the Admin entry is current here (app.js markNav)
  tags: ['monitoring'],
  async render(ctx) {
    ctx.el.append(adminNav(ctx, '#/federation'), h('h1', {}, 'Federation status'));
    pagedTable(ctx, {
      endpoint: '/federation-links',
      vhostEndpoint: (v) => `/federation-links/${enc(v)}`,
      columns: federationColumns(),
      fields: ['id', 'vhost'],
      label: 'Federation links',
      empty: 'No links',
      filter: false,
    });
  },
};
export default page;
