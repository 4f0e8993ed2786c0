/* Permissions, topic permissions and limits, as the user and vhost pages show and edit them.
 *
 * Theory of operation: the same tables and forms serve both pages, seen from one side: on a user's
 * page the other side is a vhost (a select of /api/vhosts), on a vhost's page a user (a select of
 * /api/users). Set is PUT /api/permissions/{vhost}/{user} {configure, write, read} (topic:
 * PUT /api/topic-permissions/{vhost}/{user} {exchange, write, read}); Clear is DELETE of the same
 * path (topic: ?exchange=x for one). Each change reloads the tables.
 */
import {
  el, fill, section, table, field, input, select, makeForm, button, statusLine, link,
} from './objects.js';

const enc = encodeURIComponent;

/** Permissions and topic permissions of one user (side 'user') or one vhost (side 'vhost'). */
export function permissionSections(ctx, side, name) {
  const status = statusLine();
  const permBox = el('div');
  const topicBox = el('div');
  const other = side === 'user' ? 'vhost' : 'user';
  const otherLabel = side === 'user' ? 'Virtual host' : 'User';
  const otherLink = (p) => (other === 'vhost' ? link(`#/vhosts/${enc(p.vhost)}`, p.vhost) : link(`#/users/${enc(p.user)}`, p.user));
  const listPath = side === 'user' ? `/users/${enc(name)}` : `/vhosts/${enc(name)}`;

  async function reload() {
    const [perms, topics] = await Promise.all([
      ctx.api.get(`${listPath}/permissions`), ctx.api.get(`${listPath}/topic-permissions`)]);
    fill(permBox, table([
      {label: otherLabel, render: otherLink},
      {label: 'Configure regexp', render: (p) => el('code', {}, p.configure)},
      {label: 'Write regexp', render: (p) => el('code', {}, p.write)},
      {label: 'Read regexp', render: (p) => el('code', {}, p.read)},
      {label: '', render: (p) => button('Clear', async () => {
        try {
          await ctx.api.del(`/permissions/${enc(p.vhost)}/${enc(p.user)}`);
          status.say(`Permissions of ${p.user} in ${p.vhost} cleared.`);
          await reload();
        } catch (e) { status.fail(e); }
      }, {'aria-label': `Clear permissions of ${p.user} in ${p.vhost}`})},
    ], perms, '... no permissions ...', 'Permissions'));
    fill(topicBox, table([
      {label: otherLabel, render: otherLink},
      {label: 'Exchange', render: (p) => p.exchange},
      {label: 'Write regexp', render: (p) => el('code', {}, p.write)},
      {label: 'Read regexp', render: (p) => el('code', {}, p.read)},
      {label: '', render: (p) => button('Clear', async () => {
        try {
          await ctx.api.del(`/topic-permissions/${enc(p.vhost)}/${enc(p.user)}`, {exchange: p.exchange});
          status.say(`Topic permissions of ${p.user} in ${p.vhost} on ${p.exchange} cleared.`);
          await reload();
        } catch (e) { status.fail(e); }
      }, {'aria-label': `Clear topic permissions of ${p.user} in ${p.vhost} on ${p.exchange}`})},
    ], topics, '... no topic permissions ...', 'Topic permissions'));
  }

  // the other side's names, for the forms' selects
  const otherSelect = () => select(other, [], undefined);
  const sel1 = otherSelect();
  const sel2 = otherSelect();
  async function loadNames() {
    const rows = await ctx.api.get(other === 'vhost' ? '/vhosts' : '/users', {columns: 'name'});
    for (const s of [sel1, sel2]) {
      const keep = s.value;
      s.replaceChildren(...rows.map((r) => el('option', {value: r.name}, r.name)));
      if (keep) s.value = keep;
    }
  }
  const pair = (v) => (other === 'vhost' ? {vhost: v, user: name} : {vhost: name, user: v});

  const configure = input('configure', {value: '.*'});
  const write = input('write', {value: '.*'});
  const read = input('read', {value: '.*'});
  const setForm = makeForm('Set permission', [
    field(otherLabel, sel1), field('Configure regexp', configure), field('Write regexp', write), field('Read regexp', read),
  ], 'Set permission', async () => {
    const {vhost, user} = pair(sel1.value);
    await ctx.api.put(`/permissions/${enc(vhost)}/${enc(user)}`, {configure: configure.value, write: write.value, read: read.value});
    await reload();
    return `Permissions of ${user} in ${vhost} set.`;
  });

  const exchange = input('exchange', {value: 'amq.topic'});
  const twrite = input('write', {value: '.*'});
  const tread = input('read', {value: '.*'});
  const topicForm = makeForm('Set topic permission', [
    field(otherLabel, sel2), field('Exchange', exchange), field('Write regexp', twrite), field('Read regexp', tread),
  ], 'Set topic permission', async () => {
    const {vhost, user} = pair(sel2.value);
    await ctx.api.put(`/topic-permissions/${enc(vhost)}/${enc(user)}`, {exchange: exchange.value, write: twrite.value, read: tread.value});
    await reload();
    return `Topic permissions of ${user} in ${vhost} on ${exchange.value} set.`;
  });

  return {
    el: [
      section('Permissions', permBox, status.el, el('h3', {}, 'Set permission'), setForm),
      section('Topic permissions', topicBox, el('h3', {}, 'Set topic permission'), topicForm),
    ],
    async load() { await Promise.all([reload(), loadNames()]); },
  };
}

/**
 * Limits of one vhost (max-connections, max-queues) or user (max-connections, max-channels):
 * GET /api/{vhost,user}-limits/{name}, PUT/DELETE .../{name}/{limit}.
 */
export function limitsSection(ctx, side, name) {
  const base = side === 'vhost' ? '/vhost-limits' : '/user-limits';
  const names = side === 'vhost' ? ['max-connections', 'max-queues'] : ['max-connections', 'max-channels'];
  const box = el('div');
  const status = statusLine();
  async function reload() {
    const rows = await ctx.api.get(`${base}/${enc(name)}`);
    const value = (rows[0] && rows[0].value) || {};
    fill(box, table([
      {label: 'Limit', render: (r) => r[0]},
      {label: 'Value', render: (r) => String(r[1]), className: 'num'},
      {label: '', render: (r) => button('Clear', async () => {
        try {
          await ctx.api.del(`${base}/${enc(name)}/${enc(r[0])}`);
          status.say(`Limit ${r[0]} cleared.`);
          await reload();
        } catch (e) { status.fail(e); }
      }, {'aria-label': `Clear limit ${r[0]}`})},
    ], Object.entries(value), '... no limits ...', 'Limits'));
  }
  const which = select('limit', names, names[0]);
  const value = input('value', {type: 'number', required: true});
  const f = makeForm('Set limit', [field('Limit', which), field('Value', value)], 'Set limit', async () => {
    await ctx.api.put(`${base}/${enc(name)}/${enc(which.value)}`, {value: Number(value.value)});
    await reload();
    return `Limit ${which.value} set to ${value.value}.`;
  });
  return {el: section('Limits', box, status.el, el('h3', {}, 'Set limit'), f), load: reload};
}
