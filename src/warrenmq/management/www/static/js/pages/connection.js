/* The page of one connection: #/connections/{name}.
 *
 * Theory of operation: GET /api/connections/{name} and .../channels every 2 s feed the facts (user,
 * vhost, client properties, peer, state, TLS, octets and their rates) and the channels table.
 * "Force close" asks for a reason and sends DELETE /api/connections/{name} with it in X-Reason (the
 * client sees 320 CONNECTION_FORCED - <reason>); then, or whenever the connection is gone (404), the
 * page says it is closed and stops polling.
 */
import {
  el, fill, section, facts, table, kvTable, field, input, makeForm, liveRegion, notFound, num, bytes,
  rate, link, send,
} from '../objects.js';
import {fmtTime} from '../dom.js';

export default {
  path: '/connections/:name',
  title: 'Connection',
  nav: null,
  tags: ['management'],
  async render(ctx) {
    const {name} = ctx.params;
    const path = `/connections/${encodeURIComponent(name)}`;
    let c;
    try {
      c = await ctx.api.get(path);
    } catch (e) {
      if (e.status === 404) {
        fill(ctx.el, notFound('Connection', name, undefined, '#/connections', 'connections'));
        return;
      }
      throw e;
    }
    const closed = el('div', {class: 'obj-gone'});
    const factsBox = el('div', {class: 'obj-facts-box'});
    const showFacts = liveRegion(factsBox, (x) => connectionFacts(x, ctx.stats));
    const chBox = el('div');
    const showChannels = liveRegion(chBox, (rows) => table([
      {label: 'Channel', render: (ch) => ch.name},
      {label: 'Mode', render: (ch) => [ch.confirm ? 'C' : '', ch.transactional ? 'T' : ''].join(' ').trim()},
      {label: 'State', render: (ch) => ch.state},
      {label: 'Unconfirmed', render: (ch) => num(ch.messages_unconfirmed), className: 'num'},
      {label: 'Prefetch', render: (ch) => num(ch.prefetch_count), className: 'num'},
      {label: 'Unacked', render: (ch) => num(ch.messages_unacknowledged), className: 'num'},
      {label: 'Consumers', render: (ch) => num(ch.consumer_count), className: 'num'},
      ...(ctx.stats ? [
        {label: 'Publish', render: (ch) => rate(ch.message_stats, 'publish'), className: 'num'},
        {label: 'Deliver / get', render: (ch) => rate(ch.message_stats, 'deliver_get'), className: 'num'},
        {label: 'Ack', render: (ch) => rate(ch.message_stats, 'ack'), className: 'num'},
      ] : []),
    ], rows, '... no channels ...', 'Channels'));

    let gone = false;
    const sayClosed = (text) => {
      gone = true;
      fill(closed, el('p', {class: 'obj-error', role: 'alert'}, text));
      closeSection.hidden = true;
    };
    const reason = input('reason', {value: 'Closed via management plugin', size: 50});
    const closeSection = section('Close this connection', makeForm('Close this connection', [
      field('Reason', reason),
    ], 'Force Close', async () => {
      await send('DELETE', path, {headers: {'X-Reason': reason.value}});
      sayClosed(`Connection closed: ${reason.value}`);
      return '';
    }, {confirmText: () => `Are you sure? This will close the connection ${name}.`}));

    fill(ctx.el,
      el('p', {class: 'obj-crumbs'}, link('#/connections', 'Connections'), ' / ', name),
      el('h1', {}, 'Connection ', el('span', {class: 'obj-name'}, name)),
      closed,
      section('Overview', factsBox),
      section('Channels', chBox),
      closeSection,
    );
    showFacts(c);
    ctx.every(2000, async () => {
      if (gone) return;
      try {
        const [x, chans] = await Promise.all([ctx.api.get(path), ctx.api.get(`${path}/channels`)]);
        showFacts(x);
        showChannels(chans);
      } catch (e) {
        if (e.status === 404) {
          if (!gone) sayClosed('This connection is closed.');
          return;
        }
        throw e;
      }
    });
  },
};

function connectionFacts(c, stats) {
  const tls = c.ssl
    ? [c.ssl_protocol, c.ssl_cipher, c.peer_cert_subject ? `client certificate: ${c.peer_cert_subject}` : null].filter(Boolean).join(', ') || 'yes'
    : 'no';
  const client = c.client_properties || {};
  return el('div', {class: 'obj-facts-cols'},
    facts([
      ['Username', c.user],
      ['Virtual host', c.vhost],
      ['Client', [client.product, client.version, client.platform].filter(Boolean).join(' ')],
      ['Connection name', c.user_provided_name],
      ['Peer', `${c.peer_host}:${c.peer_port}`],
      ['Local', `${c.host}:${c.port}`],
      ['State', el('span', {class: `obj-state obj-state-${c.state}`}, c.state || '')],
      ['Protocol', c.protocol],
      ['TLS', tls],
      ['Channels', num(c.channels)],
      ['Channel limit', num(c.channel_max)],
      ['Frame max', c.frame_max === undefined ? undefined : `${num(c.frame_max)} bytes`],
      ['Heartbeat', c.timeout === undefined ? undefined : `${c.timeout} s`],
      ['Connected at', c.connected_at ? fmtTime(c.connected_at) : undefined],
    ]),
    facts([
      ['Received', `${bytes(c.recv_oct)} (${num(c.recv_cnt)} reads)`],
      ['Sent', `${bytes(c.send_oct)} (${num(c.send_cnt)} writes)`],
      ...(stats ? [
        ['From client', rate(c, 'recv_oct').replace('/s', ' B/s')],
        ['To client', rate(c, 'send_oct').replace('/s', ' B/s')],
      ] : []),
    ]),
    el('div', {class: 'obj-client-props'}, el('h3', {}, 'Client properties'), kvTable(c.client_properties)),
  );
}
