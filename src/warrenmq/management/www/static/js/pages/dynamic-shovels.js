/* Shovel management (Admin; policymakers and administrators, as RabbitMQ's shovel management plugin
   shows it): the `shovel` runtime parameters of /api/parameters/shovel, each with a Delete button, and
   a form that adds one (PUT /api/parameters/shovel/{vhost}/{name}) with the settings RabbitMQ's form
   offers: source and destination URIs, queue or exchange (with a routing key), prefetch, auto-delete,
   forwarding headers, reconnect delay, ack mode. A refused value shows the API's reason (RabbitMQ's
   validation text). The running state is on the Shovel status page. */
import { h } from '../dom.js';
import { adminNav, enc } from '../cells.js';
import { el, fill, table, button, statusLine, makeForm, field, input, select, checkbox } from '../objects.js';

function side(v, prefix) {
  const q = v[`${prefix}-queue`];
  const x = v[`${prefix}-exchange`];
  const key = v[`${prefix}-exchange-key`];
  const uri = Array.isArray(v[`${prefix}-uri`]) ? v[`${prefix}-uri`].join(', ') : v[`${prefix}-uri`];
  const what = q !== undefined ? `queue ${q}` : x !== undefined ? `exchange ${x}${key ? ` (${key})` : ''}` : '';
  return el('span', {}, el('code', {}, (uri || '').replace(/\/\/[^@/]*@/, '//')), what ? ` ${what}` : '');
}

function endpointFields(prefix, label) {
  const uri = input(`${prefix}-uri`, { required: true, value: 'amqp://', autocomplete: 'off' });
  const kind = select(`${prefix}-kind`, [['queue', 'Queue'], ['exchange', 'Exchange']], 'queue');
  const name = input(`${prefix}-name`, { autocomplete: 'off' });
  const key = input(`${prefix}-key`, { autocomplete: 'off' });
  return {
    fields: [field(`${label} URI`, uri), field(`${label} type`, kind), field(`${label} queue or exchange`, name),
      field(`${label} routing key`, key, 'for an exchange (optional)')],
    value(v) {
      v[`${prefix}-uri`] = uri.value;
      if (kind.value === 'queue') {
        v[`${prefix}-queue`] = name.value;
      } else {
        v[`${prefix}-exchange`] = name.value;
        if (key.value) v[`${prefix}-exchange-key`] = key.value;
      }
    },
  };
}

const page = {
  path: '/dynamic-shovels',
  title: 'Shovel management',
  nav: null,
  navPath: '/admin',
  tags: ['policymaker'],
  async render(ctx) {
    const box = el('div', { 'aria-live': 'polite' });
    const status = statusLine();
    const vhosts = (await ctx.api.get('/vhosts', { columns: 'name' })).map((v) => v.name);
    const vhost = select('vhost', vhosts, vhosts.includes('/') ? '/' : vhosts[0]);
    const name = input('name', { required: true, autocomplete: 'off' });
    const src = endpointFields('src', 'Source');
    const dest = endpointFields('dest', 'Destination');
    const prefetch = input('src-prefetch-count', { type: 'number', min: '0', value: '1000' });
    const deleteAfter = select('src-delete-after', [['never', 'Never'], ['queue-length', 'After initial length transferred']], 'never');
    const forward = checkbox('add-forward-headers', 'Add forwarding headers');
    const delay = input('reconnect-delay', { type: 'number', min: '0', value: '5' });
    const ackMode = select('ack-mode', [['on-confirm', 'On confirm'], ['on-publish', 'On publish'], ['no-ack', 'No ack']], 'on-confirm');

    const refresh = async () => {
      const params = await ctx.api.get('/parameters/shovel');
      fill(box, table([
        { label: 'Name', render: (p) => p.name },
        { label: 'Virtual host', render: (p) => p.vhost },
        { label: 'Source', render: (p) => side(p.value, 'src') },
        { label: 'Destination', render: (p) => side(p.value, 'dest') },
        { label: 'Ack mode', render: (p) => p.value['ack-mode'] || 'on-confirm' },
        { label: '', render: (p) => button('Delete', async () => {
          if (!window.confirm(`Delete shovel '${p.name}' in virtual host '${p.vhost}'?`)) return;
          status.clear();
          try {
            await ctx.api.del(`/parameters/shovel/${enc(p.vhost)}/${enc(p.name)}`);
            status.say(`Shovel ${p.name} deleted`);
            await refresh();
          } catch (e) {
            status.fail(e);
          }
        }, { 'aria-label': `Delete ${p.name}` }) },
      ], params, 'No shovels', 'Shovels'));
    };

    const form = makeForm('Add a new shovel', [
      field('Virtual host', vhost), field('Name', name), ...src.fields, field('Prefetch count', prefetch),
      field('Auto-delete', deleteAfter), ...dest.fields, forward, field('Reconnect delay (s)', delay),
      field('Acknowledgement mode', ackMode),
    ], 'Add shovel', async () => {
      const value = {
        'src-prefetch-count': Number(prefetch.value), 'src-delete-after': deleteAfter.value,
        'add-forward-headers': forward.querySelector('input').checked, 'reconnect-delay': Number(delay.value),
        'ack-mode': ackMode.value,
      };
      src.value(value);
      dest.value(value);
      await ctx.api.put(`/parameters/shovel/${enc(vhost.value)}/${enc(name.value)}`,
        { component: 'shovel', vhost: vhost.value, name: name.value, value });
      await refresh();
      return `Shovel ${name.value} added`;
    });

    ctx.el.append(adminNav(ctx, '#/dynamic-shovels'), h('h1', {}, 'Shovel management'),
      h('section', { 'aria-label': 'Shovels' }, box), status.el, h('section', { 'aria-label': 'Add a new shovel' }, h('h2', {}, 'Add a new shovel'), form));
    await refresh();
  },
};
export default page;
