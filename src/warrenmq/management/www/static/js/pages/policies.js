/* The policies list (ui-lists; policymakers and administrators). The form
   to add or update a policy is ui-objects': push (ctx, table) => {...} onto
   `policies.sections` to add to this page. */
import { h } from '../dom.js';
import { pagedTable } from '../table.js';
import { adminNav, enc, vhostColumn } from '../cells.js';

function definition(p) {
  const d = p.definition || {};
  const out = h('dl', { class: 'definition' });
  for (const [k, v] of Object.entries(d)) {
    out.append(h('dt', {}, k), h('dd', {}, typeof v === 'object' ? JSON.stringify(v) : String(v)));
  }
  return out;
}

export function policyColumns() {
  return [
    vhostColumn(),
    { key: 'name', label: 'Name', sort: 'name', link: true },
    { key: 'pattern', label: 'Pattern', sort: 'pattern', render: (p) => h('code', {}, p.pattern) },
    { key: 'apply-to', label: 'Apply to', sort: 'apply-to' },
    { key: 'definition', label: 'Definition', render: definition },
    { key: 'priority', label: 'Priority', sort: 'priority', className: 'num' },
  ];
}

const page = {
  path: '/policies',
  title: 'Policies',
  nav: null,
  navPath: '/admin',  // the Admin entry is current here (app.js markNav)
  tags: ['policymaker'],
  sections: [],
  async render(ctx) {
    ctx.el.append(adminNav(ctx, '#/policies'), h('h1', {}, 'Policies'));
    const table = pagedTable(ctx, {
      endpoint: '/policies',
      vhostEndpoint: (v) => `/policies/${enc(v)}`,
      columns: policyColumns(),
      fields: ['vhost', 'name'],
      rowLink: (p) => `#/policies/${enc(p.vhost)}/${enc(p.name)}`,
      label: 'Policies',
      empty: 'No policies',
    });
    for (const add of page.sections) await add(ctx, table);
  },
};
export default page;
