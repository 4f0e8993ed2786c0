/* The users list (ui-lists; administrators). Forms to add a user and the
   page of one user are ui-objects': a module adds its part to this page by
   pushing a function onto `users.sections` (see docs/ui.md, "Lists"):
     sections.push((ctx, table) => { ... })  // table: {el, reload()} */
import { h } from '../dom.js';
import { pagedTable } from '../table.js';
import { adminNav, enc } from '../cells.js';

function tags(u) {
  const t = Array.isArray(u.tags) ? u.tags : String(u.tags || '').split(',').filter(Boolean);
  return t.join(', ');
}

export const userLink = (u) => `#/users/${enc(u.name)}`;

export function userColumns(access) {
  return [
    { key: 'name', label: 'Name', sort: 'name', link: true },
    { key: 'tags', label: 'Tags', sort: 'tags', render: tags },
    { key: 'vhosts', label: 'Can access virtual hosts', fields: [],
      render: (u) => (access.get(u.name) || []).join(', ') || 'No access' },
    { key: 'password_hash', label: 'Has password', sort: 'password_hash',
      render: (u) => (u.password_hash ? '\u25cf' : '\u25cb') },
  ];
}

const page = {
  path: '/users',
  title: 'Users',
  nav: null,
  navPath: '/admin',  // the Admin entry is current here (app.js markNav)
  tags: ['administrator'],
  sections: [],
  async render(ctx) {
    ctx.el.append(adminNav(ctx, '#/users'), h('h1', {}, 'Users'));
    // who may open which vhost: one small listing, refreshed with the table
    const access = new Map();
    const loadAccess = async () => {
      const perms = await ctx.api.get('/permissions', { columns: 'user,vhost' });
      access.clear();
      for (const p of perms) {
        if (!access.has(p.user)) access.set(p.user, []);
        access.get(p.user).push(p.vhost);
      }
    };
    await loadAccess();
    ctx.every(15000, loadAccess);
    const table = pagedTable(ctx, {
      endpoint: '/users',
      vhostEndpoint: null,
      columns: userColumns(access),
      fields: ['name'],
      rowLink: userLink,
      label: 'Users',
      defaultSort: 'name',
    });
    for (const add of page.sections) await add(ctx, table);
  },
};
export default page;
