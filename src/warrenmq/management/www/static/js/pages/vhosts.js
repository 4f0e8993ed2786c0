/* The virtual hosts list (ui-lists; administrators): depths and, with
   statistics on, rates. Forms and the page of one vhost are ui-objects':
   push (ctx, table) => {...} onto `vhosts.sections` to add to this page. */
import { h } from '../dom.js';
import { pagedTable } from '../table.js';
import { adminNav, enc, num, rateColumn } from '../cells.js';

export const vhostLink = (v) => `#/vhosts/${enc(v.name)}`;

export function vhostColumns() {
  return [
    { key: 'name', label: 'Name', sort: 'name', link: true },
    { key: 'tags', label: 'Tags', sort: 'tags',
      render: (v) => (Array.isArray(v.tags) ? v.tags.join(', ') : String(v.tags || '')) },
    { key: 'default_queue_type', label: 'Default queue type', sort: 'default_queue_type' },
    { key: 'messages_ready', label: 'Ready', sort: 'messages_ready', className: 'num',
      render: (v) => num(v.messages_ready) },
    { key: 'messages_unacknowledged', label: 'Unacked', sort: 'messages_unacknowledged', className: 'num',
      render: (v) => num(v.messages_unacknowledged) },
    { key: 'messages', label: 'Total', sort: 'messages', className: 'num', render: (v) => num(v.messages) },
    rateColumn('From client', 'recv_oct', { top: true, bytes: true }),
    rateColumn('To client', 'send_oct', { top: true, bytes: true }),
    rateColumn('Publish', 'publish'),
    rateColumn('Deliver / get', 'deliver_get'),
  ];
}

const page = {
  path: '/vhosts',
  title: 'Virtual hosts',
  nav: null,
  navPath: '/admin',  // the Admin entry is current here (app.js markNav)
  tags: ['administrator'],
  sections: [],
  async render(ctx) {
    ctx.el.append(adminNav(ctx, '#/vhosts'), h('h1', {}, 'Virtual hosts'));
    const table = pagedTable(ctx, {
      endpoint: '/vhosts',
      vhostEndpoint: null,
      columns: vhostColumns(),
      fields: ['name'],
      rowLink: vhostLink,
      label: 'Virtual hosts',
      defaultSort: 'name',
    });
    for (const add of page.sections) await add(ctx, table);
  },
};
export default page;
