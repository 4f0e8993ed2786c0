/* The page of one queue: #/queues/{vhost}/{name}.
 *
 * Theory of operation: GET /api/queues/{vhost}/{name} every second feeds the facts, the depth and rate
 * charts and the consumers table (consumer_details); the bindings list every 5 s. The
 * actions are forms, each through the HTTP API as RabbitMQ's UI does them: get messages (POST .../get),
 * publish (POST /api/exchanges/{vhost}/amq.default/publish with the queue's name as routing key),
 * purge (DELETE .../contents) and delete (DELETE with if-empty/if-unused), both confirmed first, and
 * move messages: the temporary shovel RabbitMQ's queue page creates (PUT /api/parameters/shovel/{vhost}/
 * Move from {name}: this queue to another of the vhost, on-confirm, deleting itself after the queue's
 * length at the start), then back to the queues list as RabbitMQ's does.
 * A 404 shows "Queue not found" instead of the page (and a deleted queue's page says so).
 * With statistics off the API sends no *_details: the rate chart and rate facts are left out.
 */
import {
  el, fill, section, facts, table, kvTable, field, input, select, checkbox, makeForm,
  liveRegion, notFound, features, num, bytes, rate, link, pollObject,
} from '../objects.js';
import {queueBindings} from '../bindings.js';
import {publishForm} from '../publish.js';
import {charts} from '../charts.js';

export default {
  path: '/queues/:vhost/:name',
  title: 'Queue',
  nav: null,
  tags: ['management'],
  async render(ctx) {
    const {vhost, name} = ctx.params;
    const path = `/queues/${encodeURIComponent(vhost)}/${encodeURIComponent(name)}`;
    let q;
    try {
      q = await ctx.api.get(path);
    } catch (e) {
      if (e.status === 404) {
        fill(ctx.el, notFound('Queue', name, vhost, '#/queues', 'queues'));
        return;
      }
      throw e;
    }
    document.title = `Queue ${name} - WarrenMQ`;
    const head = el('h1', {}, 'Queue ', el('span', {class: 'obj-name'}, name), vhost === '/' ? null : el('span', {class: 'obj-vhost'}, ` in ${vhost}`));
    const gone = el('div', {class: 'obj-gone'});
    const factsBox = el('div', {class: 'obj-facts-box'});
    const showFacts = liveRegion(factsBox, (x) => queueFacts(x, ctx.stats));
    const consumersBox = el('div');
    const showConsumers = liveRegion(consumersBox, (rows) => table([
      {label: 'Channel', render: (c) => (c.channel_details ? c.channel_details.name : '')},
      {label: 'Consumer tag', render: (c) => c.consumer_tag},
      {label: 'Ack required', render: (c) => (c.ack_required ? '\u25CF' : '\u25CB')},
      {label: 'Exclusive', render: (c) => (c.exclusive ? '\u25CF' : '\u25CB')},
      {label: 'Prefetch count', render: (c) => num(c.prefetch_count), className: 'num'},
      {label: 'Active', render: (c) => (c.active ? '\u25CF' : '\u25CB')},
      {label: 'Activity status', render: (c) => c.activity_status},
      {label: 'Arguments', render: (c) => kvTable(c.arguments)},
    ], rows, '... no consumers ...', 'Consumers'));

    const chartBox = el('div', {class: 'charts obj-charts'});
    const chart = charts(chartBox, ctx.stats, {
      depth: [{label: 'Ready', key: 'messages_ready'}, {label: 'Unacked', key: 'messages_unacknowledged'}, {label: 'Total', key: 'messages'}],
      rates: [{label: 'Publish', key: 'publish'}, {label: 'Deliver / get', key: 'deliver_get'}, {label: 'Ack', key: 'ack'}, {label: 'Redelivered', key: 'redeliver'}],
    });

    const bindings = queueBindings(ctx, vhost, name);

    fill(ctx.el,
      el('p', {class: 'obj-crumbs'}, link('#/queues', 'Queues'), ' / ', vhost, ' / ', name),
      head, gone,
      section('Overview', chartBox, factsBox),
      section('Consumers', consumersBox),
      bindings.el,
      section('Publish message', el('p', {class: 'obj-hint'},
        'Message will be published to the default exchange with routing key ', el('code', {}, name), ', routing it to this queue.'),
      publishForm(ctx, vhost, 'amq.default', {routingKey: name})),
      section('Get messages', getMessages(ctx, path)),
      section('Move messages', moveForm(ctx, vhost, name)),
      section('Purge', purgeForm(ctx, path, name)),
      section('Delete', deleteForm(ctx, path, name, vhost)),
    );

    const update = (x) => {
      showFacts(x);
      showConsumers(x.consumer_details || []);
      chart.push(x);
    };
    update(q);
    await pollObject(ctx, path, update, bindings, gone, `queue '${name}'`);
  },
};

function queueFacts(q, stats) {
  const policy = [q.policy, q.operator_policy ? `operator: ${q.operator_policy}` : null].filter(Boolean).join(', ');
  const ms = q.message_stats || {};
  return el('div', {class: 'obj-facts-cols'},
    facts([
      ['Type', q.type],
      ['Features', features(q)],
      ['Arguments', kvTable(q.arguments)],
      ['Policy', policy],
      ['Effective policy definition', kvTable(q.effective_policy_definition)],
      ['State', el('span', {class: `obj-state obj-state-${q.state}`}, q.state || '')],
      ['Consumers', num(q.consumers)],
      ['Consumer utilisation', q.consumer_utilisation === undefined || q.consumer_utilisation === null
        ? '' : `${Math.round(q.consumer_utilisation * 100)}%`],
      ['Memory', bytes(q.memory)],
      ['Exclusive owner', q.owner_pid_details ? q.owner_pid_details.name : undefined],
    ]),
    facts([
      ['Ready', el('span', {class: 'num', 'data-fact': 'ready'}, num(q.messages_ready))],
      ['Unacked', el('span', {class: 'num', 'data-fact': 'unacked'}, num(q.messages_unacknowledged))],
      ['Total', el('span', {class: 'num', 'data-fact': 'total'}, num(q.messages))],
      ...(stats ? [
        ['Publish', rate(ms, 'publish')],
        ['Deliver / get', rate(ms, 'deliver_get')],
        ['Ack', rate(ms, 'ack')],
        ['Redelivered', rate(ms, 'redeliver')],
      ] : []),
    ]));
}

function getMessages(ctx, path) {
  const count = input('count', {type: 'number', min: '1', value: '1', required: true});
  const ackmode = select('ackmode', [
    ['ack_requeue_true', 'Nack message requeue true'],
    ['ack_requeue_false', 'Automatic ack'],
    ['reject_requeue_true', 'Reject requeue true'],
    ['reject_requeue_false', 'Reject requeue false'],
  ], 'ack_requeue_true');
  const encoding = select('encoding', [['auto', 'Automatic string/base64'], ['base64', 'base64']], 'auto');
  const truncate = input('truncate', {type: 'number', min: '1', value: '50000'});
  const out = el('div', {class: 'obj-messages', 'aria-live': 'polite'});
  const f = makeForm('Get messages', [
    el('p', {class: 'obj-hint'}, 'Getting messages from a queue is a destructive action: with a requeue mode they come back redelivered, at the head of the queue.'),
    field('Ack mode', ackmode),
    field('Encoding', encoding),
    field('Messages', count),
    field('Truncate at (bytes)', truncate),
  ], 'Get message(s)', async () => {
    const body = {count: Number(count.value), ackmode: ackmode.value, encoding: encoding.value};
    if (truncate.value) body.truncate = Number(truncate.value);
    const msgs = await ctx.api.post(`${path}/get`, body);
    fill(out, msgs.length ? msgs.map((m, i) => messageView(m, i + 1)) : el('p', {class: 'obj-empty', role: 'status'}, 'Queue is empty'));
    return msgs.length ? `${msgs.length} message${msgs.length > 1 ? 's' : ''}.` : '';
  });
  return el('div', {}, f, out);
}

function messageView(m, n) {
  return el('article', {class: 'obj-message', 'aria-label': `Message ${n}`},
    el('h3', {}, `Message ${n}`),
    el('p', {}, `The server reported ${num(m.message_count)} messages remaining.`),
    facts([
      ['Exchange', m.exchange === '' ? '(AMQP default)' : m.exchange],
      ['Routing Key', m.routing_key],
      ['Redelivered', m.redelivered ? '\u25CF' : '\u25CB'],
      ['Properties', propsView(m.properties)],
      ['Payload', el('div', {},
        el('p', {class: 'obj-hint'}, `${num(m.payload_bytes)} bytes, Encoding: ${m.payload_encoding}`),
        el('pre', {class: 'obj-payload'}, m.payload))],
    ]));
}

function propsView(p) {
  if (!p || Array.isArray(p) || !Object.keys(p).length) return '';
  return kvTable(p);
}

function moveForm(ctx, vhost, name) {
  const dest = input('dest-queue', {required: true, autocomplete: 'off'});
  const f = makeForm('Move messages', [
    el('p', {class: 'obj-hint'}, 'The shovel plugin can be used to move messages from this queue to another one. ' +
      'The form below will create a temporary shovel to move messages to another queue on the same virtual host, ' +
      'with default settings.'),
    field('Destination queue', dest),
  ], 'Move messages', async () => {
    const uri = `amqp:///${encodeURIComponent(vhost)}`;
    await ctx.api.put(`/parameters/shovel/${encodeURIComponent(vhost)}/${encodeURIComponent(`Move from ${name}`)}`, {
      component: 'shovel', vhost, name: `Move from ${name}`,
      value: {
        'src-uri': uri, 'src-queue': name, 'src-protocol': 'amqp091', 'src-prefetch-count': 1000,
        'src-delete-after': 'queue-length', 'dest-protocol': 'amqp091', 'dest-uri': uri,
        'dest-add-forward-headers': false, 'ack-mode': 'on-confirm', 'dest-queue': dest.value,
        'src-consumer-args': {},
      },
    });
    ctx.go('#/queues');
    return '';
  });
  return f;
}

function purgeForm(ctx, path, name) {
  return makeForm('Purge', [], 'Purge Messages', async () => {
    await ctx.api.del(`${path}/contents`);
    return 'Queue purged';
  }, {confirmText: `Are you sure? This will purge all messages from queue '${name}'.`});
}

function deleteForm(ctx, path, name, vhost) {
  const ifEmpty = checkbox('if-empty', 'Only if empty');
  const ifUnused = checkbox('if-unused', 'Only if unused (no consumers)');
  return makeForm('Delete', [ifEmpty, ifUnused], 'Delete Queue', async () => {
    const q = {};
    if (ifEmpty.querySelector('input').checked) q['if-empty'] = 'true';
    if (ifUnused.querySelector('input').checked) q['if-unused'] = 'true';
    await ctx.api.del(path, q);
    ctx.go(`#/queues`);
    return `Queue ${name} deleted`;
  }, {confirmText: `Are you sure? This will delete queue '${name}' in virtual host '${vhost}' and every message in it.`});
}

