/* Shovel status (Admin; monitoring users and administrators, as RabbitMQ's shovel management plugin
   shows it): every dynamic shovel from /api/shovels with its state, source and destination (URIs
   without credentials), the reason of a terminated one and the last change; refreshed every 5 s.
   /api/shovels is a plain list in RabbitMQ (no pagination), so this is a plain table. Each row can be
   restarted (DELETE /api/shovels/vhost/{vhost}/{name}/restart). */
import { h } from '../dom.js';
import { adminNav, enc } from '../cells.js';
import { el, fill, table, button, statusLine } from '../objects.js';

function endpoint(s, side) {
  const uri = s[`${side}_uri`];
  const what = s[`${side}_queue`] !== undefined ? `queue ${s[`${side}_queue`]}`
    : s[`${side}_exchange`] !== undefined
      ? `exchange ${s[`${side}_exchange`]}${s[`${side}_exchange_key`] ? ` (${s[`${side}_exchange_key`]})` : ''}` : '';
  if (uri === undefined) return '';
  return el('span', {}, el('code', {}, uri), what ? ` ${what}` : '');
}

function state(s) {
  const badge = el('span', { class: `state state-${s.state}` }, s.state);
  return s.reason ? el('span', {}, badge, ' ', el('code', {}, s.reason)) : badge;
}

const page = {
  path: '/shovels',
  title: 'Shovel status',
  nav: null,
  navPath: '/admin',  // the Admin entry is current here (app.js markNav)
  tags: ['monitoring'],
  async render(ctx) {
    const box = el('div', { 'aria-live': 'polite' });
    const status = statusLine();
    ctx.el.append(adminNav(ctx, '#/shovels'), h('h1', {}, 'Shovel status'), box, status.el);
    const columns = [
      { label: 'Name', render: (s) => s.name },
      { label: 'Virtual host', render: (s) => s.vhost },
      { label: 'State', render: state },
      { label: 'Source', render: (s) => endpoint(s, 'src') },
      { label: 'Destination', render: (s) => endpoint(s, 'dest') },
      { label: 'Last changed', render: (s) => s.timestamp },
      { label: '', render: (s) => button('Restart', async () => {
        status.clear();
        try {
          await ctx.api.del(`/shovels/vhost/${enc(s.vhost)}/${enc(s.name)}/restart`);
          status.say(`Shovel ${s.name} restarted`);
        } catch (e) {
          status.fail(e);
        }
      }, { 'aria-label': `Restart ${s.name}` }) },
    ];
    ctx.every(5000, async () => {
      const shovels = await ctx.api.get('/shovels');
      fill(box, table(columns, shovels, 'No shovels', 'Shovels'));
    });
  },
};
export default page;
