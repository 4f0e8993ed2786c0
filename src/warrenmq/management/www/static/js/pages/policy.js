/* Policies and operator policies: the "Add / update a policy" form of the policies list, and the page
 * of one policy (#/policies/{vhost}/{name}, #/operator-policies/{vhost}/{name}) with its delete button.
 *
 * Theory of operation: PUT /api/policies/{vhost}/{name} {pattern, apply-to, priority, definition}
 * (operator policies: /api/operator-policies, administrators only). The definition is typed
 * key/value rows (numbers for max-length, message-ttl, ...) or, switched, a JSON object. Errors
 * are the API's validation text ("Validation failed ... is not a valid maximum length"). The form is
 * pushed onto ui-lists' policies page by admin-forms.js; a policy page shows one and deletes it (confirmed).
 */
import {
  el, fill, section, facts, field, input, select, textarea, makeForm, notFound, link, kvEditor, kvTable,
  table, button, statusLine, hasTag,
} from '../objects.js';

const enc = encodeURIComponent;

/** The add/update form; kind 'policies' or 'operator-policies'. */
export function policyForm(ctx, kind, after, initial = {}) {
  const vhost = select('vhost', [], undefined);
  const name = input('name', {required: true, autocomplete: 'off', value: initial.name || ''});
  const pattern = input('pattern', {required: true, autocomplete: 'off', value: initial.pattern || '', placeholder: '^amq\\.'});
  const applyTo = select('apply-to', kind === 'policies'
    ? [['all', 'Exchanges and queues'], ['exchanges', 'Exchanges'], ['queues', 'Queues']]
    : [['queues', 'Queues']], initial['apply-to'] || (kind === 'policies' ? 'all' : 'queues'));
  const priority = input('priority', {type: 'number', value: String(initial.priority ?? 0)});
  const mode = select('definition_mode', [['rows', 'Key / value rows'], ['json', 'JSON']], 'rows');
  const rows = kvEditor('Definition');
  const json = textarea('definition_json', {rows: 4, placeholder: '{"max-length": 10}'});
  const jsonField = field('Definition (JSON)', json);
  jsonField.hidden = true;
  mode.addEventListener('change', () => {
    const asJson = mode.value === 'json';
    jsonField.hidden = !asJson;
    rows.hidden = asJson;
    if (asJson && !json.value) {
      try { json.value = JSON.stringify(rows.value(), null, 1); } catch (e) { /* typed later */ }
    }
  });
  if (initial.definition) {
    mode.value = 'json';
    json.value = JSON.stringify(initial.definition, null, 1);
    jsonField.hidden = false;
    rows.hidden = true;
  }
  const keys = kind === 'policies'
    ? 'max-length, max-length-bytes, overflow, message-ttl, expires, dead-letter-exchange, dead-letter-routing-key, queue-mode, alternate-exchange, delivery-limit'
    : 'expires, message-ttl, max-length, max-length-bytes, max-in-memory-length, max-in-memory-bytes, delivery-limit';
  const f = makeForm(kind === 'policies' ? 'Add / update a policy' : 'Add / update an operator policy', [
    field('Virtual host', vhost), field('Name', name), field('Pattern', pattern, 'regular expression'),
    field('Apply to', applyTo), field('Priority', priority),
    field('Definition as', mode), rows, jsonField,
    el('p', {class: 'obj-hint'}, `Keys: ${keys}.`),
  ], kind === 'policies' ? 'Add / update policy' : 'Add / update operator policy', async () => {
    let definition;
    if (mode.value === 'json') {
      try { definition = JSON.parse(json.value || '{}'); } catch (e) { throw new Error(`Definition is not JSON: ${e.message}`); }
    } else {
      definition = rows.value();
    }
    const body = {pattern: pattern.value, definition, 'apply-to': applyTo.value, priority: Number(priority.value || 0)};
    await ctx.api.put(`/${kind}/${enc(vhost.value)}/${enc(name.value)}`, body);
    if (after) await after();
    return `Policy ${name.value} set in ${vhost.value}.`;
  });
  f.load = async () => {
    const vs = await ctx.api.get('/vhosts', {columns: 'name'});
    vhost.replaceChildren(...vs.map((v) => el('option', {value: v.name}, v.name)));
    vhost.value = initial.vhost || (vs.some((v) => v.name === '/') ? '/' : (vs[0] || {}).name);
  };
  return f;
}

export async function addPolicySection(ctx, tbl) {
  const f = policyForm(ctx, 'policies', () => (tbl && tbl.reload ? tbl.reload() : null));
  ctx.el.append(section('Add / update a policy', el('p', {class: 'obj-hint'},
    'Open a policy (its name in the table) to delete it.'), f));
  await f.load();
  if (hasTag(ctx.user, 'administrator')) await operatorSection(ctx);
}

/** Operator policies (administrators): their own list, form and delete buttons. */
async function operatorSection(ctx) {
  const box = el('div');
  const status = statusLine();
  async function reload() {
    const rows = await ctx.api.get('/operator-policies');
    fill(box, table([
      {label: 'Virtual host', render: (p) => p.vhost},
      {label: 'Name', render: (p) => link(`#/operator-policies/${enc(p.vhost)}/${enc(p.name)}`, p.name)},
      {label: 'Pattern', render: (p) => el('code', {}, p.pattern)},
      {label: 'Apply to', render: (p) => p['apply-to']},
      {label: 'Definition', render: (p) => kvTable(p.definition)},
      {label: 'Priority', render: (p) => String(p.priority), className: 'num'},
      {label: '', render: (p) => button('Delete', async () => {
        if (!window.confirm(`Delete operator policy '${p.name}' in '${p.vhost}'?`)) return;
        try {
          await ctx.api.del(`/operator-policies/${enc(p.vhost)}/${enc(p.name)}`);
          status.say(`Operator policy ${p.name} deleted.`);
          await reload();
        } catch (e) { status.fail(e); }
      }, {'aria-label': `Delete operator policy ${p.name} in ${p.vhost}`})},
    ], rows, '... no operator policies ...', 'Operator policies'));
  }
  const f = policyForm(ctx, 'operator-policies', reload);
  ctx.el.append(section('Operator policies', box, status.el, el('h3', {}, 'Add / update an operator policy'), f));
  await Promise.all([reload(), f.load()]);
}

function policyPage(kind, path, title) {
  return {
    path,
    title,
    nav: null,
    tags: kind === 'policies' ? ['policymaker'] : ['administrator'],
    async render(ctx) {
      const {vhost, name} = ctx.params;
      const api = `/${kind}/${enc(vhost)}/${enc(name)}`;
      let p;
      try {
        p = await ctx.api.get(api);
      } catch (e) {
        if (e.status === 404) {
          fill(ctx.el, notFound(title, name, vhost, '#/policies', 'policies'));
          return;
        }
        throw e;
      }
      const update = policyForm(ctx, kind, async () => ctx.go(`#/${kind}/${enc(vhost)}/${enc(name)}`), p);
      const del = makeForm(`Delete this ${title.toLowerCase()}`, [], 'Delete', async () => {
        await ctx.api.del(api);
        ctx.go('#/policies');
        return '';
      }, {confirmText: `Are you sure? This will delete the ${title.toLowerCase()} '${name}' in '${vhost}'.`});
      fill(ctx.el,
        el('p', {class: 'obj-crumbs'}, link('#/policies', 'Policies'), ' / ', vhost, ' / ', name),
        el('h1', {}, `${title} `, el('span', {class: 'obj-name'}, name)),
        section('Overview', facts([
          ['Virtual host', vhost],
          ['Pattern', el('code', {}, p.pattern)],
          ['Apply to', p['apply-to']],
          ['Definition', kvTable(p.definition)],
          ['Priority', String(p.priority)],
        ])),
        section(`Update this ${title.toLowerCase()}`, update),
        section(`Delete this ${title.toLowerCase()}`, del),
      );
      await update.load();
    },
  };
}

export const operatorPolicyPage = policyPage('operator-policies', '/operator-policies/:vhost/:name', 'Operator policy');
export default policyPage('policies', '/policies/:vhost/:name', 'Policy');
