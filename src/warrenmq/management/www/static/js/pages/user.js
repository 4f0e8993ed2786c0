/* The page of one user (#/users/{name}) and the "Add a user" form of the users list.
 *
 * Theory of operation: the user page reads GET /api/users/{name} and shows its tags and whether it
 * has a password; its permissions and topic permissions per vhost and its limits are perms.js's
 * sections. "Update this user" is PUT /api/users/{name} with the tags and, when a new password is
 * typed, the password; otherwise the user's current password_hash and hashing_algorithm go back
 * unchanged (a PUT without either would leave the user without a password). "Delete this user" is
 * DELETE (confirmed); the API closes its connections. The add form on #/users is pushed onto the
 * users list's sections (ui-lists' users.js) by admin-forms.js.
 */
import {
  el, fill, section, facts, field, input, makeForm, notFound, link, button,
} from '../objects.js';
import {permissionSections, limitsSection} from '../perms.js';

const enc = encodeURIComponent;
const TAGS = ['administrator', 'monitoring', 'policymaker', 'management', 'impersonator'];

/** A tags input with RabbitMQ's quick-pick buttons ("Set: Admin | Monitoring | ..."). */
export function tagsField(value = '') {
  const tags = input('tags', {value, autocomplete: 'off', placeholder: 'administrator, management'});
  const picks = el('span', {class: 'obj-tag-picks'}, 'Set: ', TAGS.map((t) => button(t, () => {
    const have = tags.value.split(',').map((s) => s.trim()).filter(Boolean);
    if (!have.includes(t)) have.push(t);
    tags.value = have.join(', ');
  }, {class: 'obj-link-button', 'aria-label': `Add tag ${t}`})), ' ', button('none', () => { tags.value = ''; }, {class: 'obj-link-button', 'aria-label': 'Clear the tags'}));
  return {input: tags, el: el('div', {}, field('Tags', tags, 'comma-separated'), picks)};
}

const splitTags = (s) => s.split(',').map((t) => t.trim()).filter(Boolean).join(',');

export function addUserSection(ctx, table) {
  const name = input('username', {required: true, autocomplete: 'off'});
  const pass = input('password', {type: 'password', autocomplete: 'new-password'});
  const pass2 = input('password2', {type: 'password', autocomplete: 'new-password'});
  const tags = tagsField();
  const f = makeForm('Add a user', [
    field('Username', name), field('Password', pass), field('Password (confirm)', pass2), tags.el,
  ], 'Add user', async () => {
    if (pass.value !== pass2.value) throw new Error('Passwords do not match.');
    const body = {tags: splitTags(tags.input.value)};
    if (pass.value) body.password = pass.value;
    const path = `/users/${enc(name.value)}`;
    await ctx.api.put(path, body);
    const said = `User ${name.value} added.`;
    for (const i of [name, pass, pass2, tags.input]) i.value = '';
    if (table && table.reload) await table.reload();
    return said;
  });
  ctx.el.append(section('Add a user', f));
}

export default {
  path: '/users/:name',
  title: 'User',
  nav: null,
  tags: ['administrator'],
  async render(ctx) {
    const {name} = ctx.params;
    const path = `/users/${enc(name)}`;
    let u;
    try {
      u = await ctx.api.get(path);
    } catch (e) {
      if (e.status === 404) {
        fill(ctx.el, notFound('User', name, undefined, '#/users', 'users'));
        return;
      }
      throw e;
    }
    document.title = `User ${name} - WarrenMQ`;
    const tagList = (x) => (Array.isArray(x.tags) ? x.tags : String(x.tags || '').split(',').filter(Boolean));
    const factsBox = el('div');
    const showFacts = (x) => fill(factsBox, facts([
      ['Tags', tagList(x).join(', ')],
      ['Can log in with password', x.password_hash ? '\u25CF' : '\u25CB'],
      ['Hashing algorithm', x.hashing_algorithm],
    ]));
    showFacts(u);
    const perms = permissionSections(ctx, 'user', name);
    const limits = limitsSection(ctx, 'user', name);

    const pass = input('password', {type: 'password', autocomplete: 'new-password'});
    const pass2 = input('password2', {type: 'password', autocomplete: 'new-password'});
    const tags = tagsField(tagList(u).join(', '));
    const update = makeForm('Update this user', [
      field('Password', pass, 'leave empty to keep the current one'), field('Password (confirm)', pass2), tags.el,
    ], 'Update user', async () => {
      if (pass.value !== pass2.value) throw new Error('Passwords do not match.');
      const body = {tags: splitTags(tags.input.value)};
      if (pass.value) {
        body.password = pass.value;
      } else {
        const now = await ctx.api.get(path);
        if (now.password_hash) {
          body.password_hash = now.password_hash;
          body.hashing_algorithm = now.hashing_algorithm;
        }
      }
      await ctx.api.put(path, body);
      pass.value = '';
      pass2.value = '';
      showFacts(await ctx.api.get(path));
      return `User ${name} updated.`;
    });
    const del = makeForm('Delete this user', [], 'Delete user', async () => {
      await ctx.api.del(path);
      ctx.go('#/users');
      return '';
    }, {confirmText: `Are you sure? This will delete user '${name}' and close its connections.`});

    fill(ctx.el,
      el('p', {class: 'obj-crumbs'}, link('#/users', 'Users'), ' / ', name),
      el('h1', {}, 'User ', el('span', {class: 'obj-name'}, name)),
      section('Overview', factsBox),
      perms.el,
      limits.el,
      section('Update this user', update),
      section('Delete this user', del),
    );
    await Promise.all([perms.load(), limits.load()]);
  },
};
