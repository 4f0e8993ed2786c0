// The overview page: totals of the broker's objects and messages.
import { h, clear, fmtNum } from '../dom.js';

export default {
  path: '/',
  title: 'Overview',
  nav: { label: 'Overview', order: 10 },
  tags: ['management'],
  async render(ctx) {
    const totals = h('dl', { class: 'totals', id: 'totals' });
    ctx.el.append(h('h1', {}, 'Overview'), h('section', { 'aria-labelledby': 'totals-h' },
      h('h2', { id: 'totals-h' }, 'Totals'), totals));
    ctx.every(2000, async () => {
      const ov = await ctx.api.get('/overview');
      const o = ov.object_totals || {};
      const q = ov.queue_totals || {};
      clear(totals).append(...[
        ['Connections', o.connections], ['Channels', o.channels], ['Exchanges', o.exchanges],
        ['Queues', o.queues], ['Consumers', o.consumers], ['Ready', q.messages_ready],
        ['Unacked', q.messages_unacknowledged], ['Total', q.messages],
      ].map(([k, v]) => h('div', { class: 'stat' }, h('dt', {}, k), h('dd', {}, fmtNum(v)))));
    });
  },
};
