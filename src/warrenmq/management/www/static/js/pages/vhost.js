/* The page of one virtual host (#/vhosts/{name}) and the "Add a new virtual host" form of the
 * vhosts list.
 *
 * Theory of operation: GET /api/vhosts/{name} (every 5 s) for its facts and depths; permissions,
 * topic permissions and limits are perms.js's sections; "Delete this vhost" is DELETE, confirmed
 * (everything in it goes, its connections are closed). The add form (PUT /api/vhosts/{name} with
 * description, tags, default queue type) is pushed onto the vhosts list's sections (ui-lists) by admin-forms.js.
 */
import {
  el, fill, section, facts, field, input, select, makeForm, notFound, link, liveRegion, num, rate,
} from '../objects.js';
import {permissionSections, limitsSection} from '../perms.js';

const enc = encodeURIComponent;

export function addVhostSection(ctx, table) {
  const name = input('name', {required: true, autocomplete: 'off'});
  const description = input('description', {autocomplete: 'off'});
  const tags = input('tags', {autocomplete: 'off'});
  const dqt = select('defaultqueuetype', [['', '(none: classic)'], ['classic', 'classic'], ['quorum', 'quorum'], ['stream', 'stream']], '');
  const f = makeForm('Add a new virtual host', [
    field('Name', name), field('Description', description), field('Tags', tags, 'comma-separated'),
    field('Default queue type', dqt),
  ], 'Add virtual host', async () => {
    const body = {description: description.value, tags: tags.value};
    if (dqt.value) body.defaultqueuetype = dqt.value;
    await ctx.api.put(`/vhosts/${enc(name.value)}`, body);
    const said = `Virtual host ${name.value} added.`;
    for (const i of [name, description, tags]) i.value = '';
    dqt.value = '';
    if (table && table.reload) await table.reload();
    return said;
  });
  ctx.el.append(section('Add a new virtual host', f));
}

export default {
  path: '/vhosts/:name',
  title: 'Virtual host',
  nav: null,
  tags: ['administrator'],
  async render(ctx) {
    const {name} = ctx.params;
    const path = `/vhosts/${enc(name)}`;
    let v;
    try {
      v = await ctx.api.get(path);
    } catch (e) {
      if (e.status === 404) {
        fill(ctx.el, notFound('Virtual host', name, undefined, '#/vhosts', 'virtual hosts'));
        return;
      }
      throw e;
    }
    document.title = `Virtual host ${name} - WarrenMQ`;
    const factsBox = el('div');
    const showFacts = liveRegion(factsBox, (x) => facts([
      ['Description', x.description || ''],
      ['Tags', Array.isArray(x.tags) ? x.tags.join(', ') : String(x.tags || '')],
      ['Default queue type', x.default_queue_type],
      ['Ready', num(x.messages_ready)],
      ['Unacked', num(x.messages_unacknowledged)],
      ['Total', num(x.messages)],
      ...(ctx.stats ? [
        ['Publish', rate(x.message_stats, 'publish')],
        ['Deliver / get', rate(x.message_stats, 'deliver_get')],
      ] : []),
    ]));
    const perms = permissionSections(ctx, 'vhost', name);
    const limits = limitsSection(ctx, 'vhost', name);
    const del = makeForm('Delete this vhost', [], 'Delete this virtual host', async () => {
      await ctx.api.del(path);
      ctx.go('#/vhosts');
      return '';
    }, {confirmText: `Are you sure? This will delete virtual host '${name}' with every queue, exchange and message in it, and close its connections.`});
    fill(ctx.el,
      el('p', {class: 'obj-crumbs'}, link('#/vhosts', 'Virtual hosts'), ' / ', name),
      el('h1', {}, 'Virtual host ', el('span', {class: 'obj-name'}, name)),
      section('Overview', factsBox),
      perms.el,
      limits.el,
      section('Delete this vhost', del),
    );
    showFacts(v);
    await Promise.all([perms.load(), limits.load()]);
    let deleted = false;
    ctx.every(5000, async () => {
      if (deleted) return;
      try {
        showFacts(await ctx.api.get(path));
      } catch (e) {
        if (e.status === 404) { deleted = true; return; }
        throw e;
      }
    });
  },
};
