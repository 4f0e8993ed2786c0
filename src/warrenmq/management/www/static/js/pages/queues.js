/* The queues list (ui-lists): every queue the user sees, paged by the server.
   Columns as RabbitMQ's queues page; rate columns only with statistics on. */
import { h } from '../dom.js';
import { pagedTable } from '../table.js';
import { enc, features, FEATURE_FIELDS, num, rateColumn, state, STATE_FIELDS, vhostColumn } from '../cells.js';

export const queueLink = (q) => `#/queues/${enc(q.vhost)}/${enc(q.name)}`;

export function queueColumns() {
  return [
    vhostColumn(),
    { key: 'name', label: 'Name', sort: 'name', link: true },
    { key: 'type', label: 'Type', sort: 'type' },
    { key: 'features', label: 'Features', fields: FEATURE_FIELDS, render: features,
      title: 'D durable, AD auto-delete, Excl exclusive, TTL message TTL, DLX/DLK dead lettering, Lim/Lim B length limits, Pri priorities, Args other arguments; then the policy' },
    { key: 'state', label: 'State', sort: 'state', fields: STATE_FIELDS, render: state },
    { key: 'messages_ready', label: 'Ready', sort: 'messages_ready', className: 'num',
      render: (q) => num(q.messages_ready) },
    { key: 'messages_unacknowledged', label: 'Unacked', sort: 'messages_unacknowledged', className: 'num',
      render: (q) => num(q.messages_unacknowledged) },
    { key: 'messages', label: 'Total', sort: 'messages', className: 'num', render: (q) => num(q.messages) },
    rateColumn('Incoming', 'publish', { title: 'Messages published to the queue per second' }),
    rateColumn('Deliver / get', 'deliver_get', { title: 'Messages delivered or fetched per second' }),
    rateColumn('Ack', 'ack', { title: 'Messages acknowledged per second' }),
    { key: 'consumers', label: 'Consumers', sort: 'consumers', className: 'num', render: (q) => num(q.consumers) },
  ];
}

export default {
  path: '/queues',
  title: 'Queues',
  nav: { label: 'Queues', order: 40 },
  tags: ['management'],
  async render(ctx) {
    ctx.el.append(h('h1', {}, 'Queues'));
    pagedTable(ctx, {
      endpoint: '/queues',
      columns: queueColumns(),
      fields: ['vhost', 'name'],
      rowLink: queueLink,
      label: 'Queues',
      empty: 'No queues',
    });
  },
};
