/* The bindings sections of the queue and exchange pages: a list with an Unbind button per binding,
 * and a form that adds one.
 *
 * Theory of operation: a binding is named in the API by vhost, source, destination type and name, and
 * its properties_key (from the listing); Unbind is DELETE /api/bindings/{vhost}/e/{source}/{q|e}/
 * {destination}/{properties_key}, adding is POST /api/bindings/{vhost}/e/{source}/{q|e}/{destination}
 * with {routing_key, arguments}. The default exchange's implicit binding to every queue cannot be
 * removed, as in RabbitMQ's UI.  The lists refresh with the page (liveRegion: only when they changed).
 */
import {
  el, section, table, kvTable, button, makeForm, field, input, select, kvEditor, liveRegion,
  queueHash, exchangeHash, exchangeLabel, link, statusLine,
} from './objects.js';

function bindingPath(vhost, b) {
  const t = b.destination_type === 'queue' ? 'q' : 'e';
  return `/bindings/${encodeURIComponent(vhost)}/e/${encodeURIComponent(b.source)}/${t}/${encodeURIComponent(b.destination)}/${encodeURIComponent(b.properties_key)}`;
}

function destLink(vhost, b) {
  return b.destination_type === 'queue'
    ? el('span', {}, link(queueHash(vhost, b.destination), b.destination), ' (queue)')
    : el('span', {}, link(exchangeHash(vhost, b.destination), b.destination), ' (exchange)');
}

function unbindButton(ctx, vhost, b, status, after) {
  return button('Unbind', async () => {
    try {
      await ctx.api.del(bindingPath(vhost, b));
      status.say(`Unbound ${b.source === '' ? '(AMQP default)' : b.source} -> ${b.destination} (${b.routing_key || 'empty key'}).`);
      await after();
    } catch (e) {
      status.fail(e);
    }
  }, {class: 'obj-unbind', 'aria-label': `Unbind ${exchangeLabel(b.source)} to ${b.destination} with key ${b.routing_key}`});
}

/**
 * The queue page's bindings: where the queue is the destination. Returns {el, refresh}.
 */
export function queueBindings(ctx, vhost, queue) {
  const status = statusLine();
  const list = el('div', {class: 'obj-bindings'});
  const path = `/queues/${encodeURIComponent(vhost)}/${encodeURIComponent(queue)}/bindings`;
  const show = liveRegion(list, (rows) => table([
    {label: 'From', render: (b) => (b.source === '' ? '(Default exchange binding)' : link(exchangeHash(vhost, b.source), b.source))},
    {label: 'Routing key', render: (b) => (b.source === '' ? '' : b.routing_key)},
    {label: 'Arguments', render: (b) => kvTable(b.arguments)},
    {label: '', render: (b) => (b.source === '' ? '' : unbindButton(ctx, vhost, b, status, refresh))},
  ], rows, '... no bindings ...', 'Bindings of this queue'));
  async function refresh() { show(await ctx.api.get(path)); }

  const src = input('source', {required: true, autocomplete: 'off'});
  const key = input('routing_key', {autocomplete: 'off'});
  const args = kvEditor('Arguments');
  const form = makeForm('Add binding to this queue', [
    field('From exchange', src),
    field('Routing key', key),
    args,
  ], 'Bind', async () => {
    const body = {routing_key: key.value, arguments: args.value()};
    await ctx.api.post(`/bindings/${encodeURIComponent(vhost)}/e/${encodeURIComponent(src.value)}/q/${encodeURIComponent(queue)}`, body);
    await refresh();
    const said = `Bound ${src.value} -> ${queue}${key.value ? ` with key ${key.value}` : ''}.`;
    key.value = '';
    args.reset();
    return said;
  });
  return {
    el: section('Bindings', list, status.el, el('h3', {}, 'Add binding to this queue'), form),
    refresh,
  };
}

/**
 * The exchange page's bindings: where it is the source, and where it is the destination, with a
 * form for each direction. Returns {el, refresh}.
 */
export function exchangeBindings(ctx, vhost, exchange) {
  const status = statusLine();
  const base = `/exchanges/${encodeURIComponent(vhost)}/${encodeURIComponent(exchange)}/bindings`;
  const asSource = el('div', {class: 'obj-bindings'});
  const asDest = el('div', {class: 'obj-bindings'});
  const isDefault = exchange === 'amq.default' || exchange === '';
  const showSource = liveRegion(asSource, (rows) => table([
    {label: 'To', render: (b) => destLink(vhost, b)},
    {label: 'Routing key', render: (b) => b.routing_key},
    {label: 'Arguments', render: (b) => kvTable(b.arguments)},
    {label: '', render: (b) => (b.source === '' ? '' : unbindButton(ctx, vhost, b, status, refresh))},
  ], rows, '... no bindings ...', 'Bindings from this exchange'));
  const showDest = liveRegion(asDest, (rows) => table([
    {label: 'From', render: (b) => link(exchangeHash(vhost, b.source), exchangeLabel(b.source))},
    {label: 'Routing key', render: (b) => b.routing_key},
    {label: 'Arguments', render: (b) => kvTable(b.arguments)},
    {label: '', render: (b) => unbindButton(ctx, vhost, b, status, refresh)},
  ], rows, '... no bindings ...', 'Bindings to this exchange'));

  async function refresh() {
    if (isDefault) {
      fill0(asSource, 'Default exchange: every queue is bound to it with its own name as the routing key; no other binding can be added.');
      return;
    }
    const [src, dst] = await Promise.all([ctx.api.get(`${base}/source`), ctx.api.get(`${base}/destination`)]);
    showSource(src);
    showDest(dst);
  }

  if (isDefault) return {el: section('Bindings', asSource), refresh};

  const dtype = select('destination_type', [['q', 'To queue'], ['e', 'To exchange']], 'q');
  const dest = input('destination', {required: true, autocomplete: 'off'});
  const key = input('routing_key', {autocomplete: 'off'});
  const args = kvEditor('Arguments');
  const fromThis = makeForm('Add binding from this exchange', [
    field('Destination type', dtype),
    field('Destination', dest),
    field('Routing key', key),
    args,
  ], 'Bind', async () => {
    const body = {routing_key: key.value, arguments: args.value()};
    await ctx.api.post(`/bindings/${encodeURIComponent(vhost)}/e/${encodeURIComponent(exchange)}/${dtype.value}/${encodeURIComponent(dest.value)}`, body);
    await refresh();
    const said = `Bound ${exchange} -> ${dest.value}.`;
    key.value = '';
    args.reset();
    return said;
  });

  const src = input('source', {required: true, autocomplete: 'off'});
  const key2 = input('routing_key', {autocomplete: 'off'});
  const args2 = kvEditor('Arguments');
  const toThis = makeForm('Add binding to this exchange', [
    field('From exchange', src),
    field('Routing key', key2),
    args2,
  ], 'Bind', async () => {
    const body = {routing_key: key2.value, arguments: args2.value()};
    await ctx.api.post(`/bindings/${encodeURIComponent(vhost)}/e/${encodeURIComponent(src.value)}/e/${encodeURIComponent(exchange)}`, body);
    await refresh();
    const said = `Bound ${src.value} -> ${exchange}.`;
    key2.value = '';
    args2.reset();
    return said;
  });

  return {
    el: section('Bindings',
      el('h3', {}, 'From this exchange'), asSource,
      el('h3', {}, 'To this exchange'), asDest,
      status.el,
      el('h3', {}, 'Add binding from this exchange'), fromThis,
      el('h3', {}, 'Add binding to this exchange'), toThis),
    refresh,
  };
}

function fill0(node, text) {
  if (node.textContent !== text) node.replaceChildren(el('p', {}, text));
}
