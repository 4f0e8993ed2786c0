/* The exchanges list (ui-lists). The default exchange "" is shown as
   "(AMQP default)" and linked as amq.default, as in RabbitMQ's UI. */
import { h } from '../dom.js';
import { pagedTable } from '../table.js';
import { enc, features, FEATURE_FIELDS, rateColumn, vhostColumn } from '../cells.js';

export const exchangeLink = (x) => `#/exchanges/${enc(x.vhost)}/${enc(x.name || 'amq.default')}`;

export function exchangeColumns() {
  return [
    vhostColumn(),
    { key: 'name', label: 'Name', sort: 'name', link: true,
      render: (x) => (x.name === '' ? '(AMQP default)' : x.name) },
    { key: 'type', label: 'Type', sort: 'type' },
    { key: 'features', label: 'Features', fields: FEATURE_FIELDS, render: features,
      title: 'D durable, AD auto-delete, I internal, AE alternate exchange, Args other arguments; then the policy' },
    rateColumn('Rate in', 'publish_in', { title: 'Messages published to the exchange per second' }),
    rateColumn('Rate out', 'publish_out', { title: 'Messages routed to queues per second' }),
  ];
}

export default {
  path: '/exchanges',
  title: 'Exchanges',
  nav: { label: 'Exchanges', order: 35 },
  tags: ['management'],
  async render(ctx) {
    ctx.el.append(h('h1', {}, 'Exchanges'));
    pagedTable(ctx, {
      endpoint: '/exchanges',
      columns: exchangeColumns(),
      fields: ['vhost', 'name'],
      rowLink: exchangeLink,
      label: 'Exchanges',
      empty: 'No exchanges',
    });
  },
};
