/* The page of one exchange: #/exchanges/{vhost}/{name} (amq.default for the default exchange).
 *
 * Theory of operation: GET /api/exchanges/{vhost}/{name} every second feeds the facts and the chart of
 * its rates in and out (message_stats publish_in/publish_out); the bindings where it is source and
 * where it is destination are listed and can be added or removed (bindings.js); a message can be
 * published to it (publish.js: shows "routed" or "not routed"); it can be deleted (confirmed,
 * optionally if-unused; the default and amq.* exchanges are refused by the API with its reason).
 */
import {
  el, fill, section, facts, kvTable, makeForm, checkbox, liveRegion, notFound, features, rate, link,
  exchangeLabel, pollObject,
} from '../objects.js';
import {exchangeBindings} from '../bindings.js';
import {publishForm} from '../publish.js';
import {charts} from '../charts.js';

export default {
  path: '/exchanges/:vhost/:name',
  title: 'Exchange',
  nav: null,
  tags: ['management'],
  async render(ctx) {
    const {vhost} = ctx.params;
    const name = ctx.params.name === '' ? 'amq.default' : ctx.params.name;
    const path = `/exchanges/${encodeURIComponent(vhost)}/${encodeURIComponent(name)}`;
    let x;
    try {
      x = await ctx.api.get(path);
    } catch (e) {
      if (e.status === 404) {
        fill(ctx.el, notFound('Exchange', name, vhost, '#/exchanges', 'exchanges'));
        return;
      }
      throw e;
    }
    const shown = exchangeLabel(x.name);
    document.title = `Exchange ${shown} - WarrenMQ`;
    const gone = el('div', {class: 'obj-gone'});
    const factsBox = el('div', {class: 'obj-facts-box'});
    const showFacts = liveRegion(factsBox, (e) => facts([
      ['Type', e.type],
      ['Features', features(e)],
      ['Arguments', kvTable(e.arguments)],
      ['Policy', e.policy || ''],
      ...(ctx.stats ? [
        ['Message rate in', rate(e.message_stats, 'publish_in')],
        ['Message rate out', rate(e.message_stats, 'publish_out')],
      ] : []),
    ]));
    const chartBox = el('div', {class: 'charts obj-charts'});
    const chart = charts(chartBox, ctx.stats, {
      rates: [{label: 'Publish (in)', key: 'publish_in'}, {label: 'Publish (out)', key: 'publish_out'}],
    });
    const bindings = exchangeBindings(ctx, vhost, name);
    const isDefault = name === 'amq.default';
    const ifUnused = checkbox('if-unused', 'Only if unused (no bindings from it)');
    fill(ctx.el,
      el('p', {class: 'obj-crumbs'}, link('#/exchanges', 'Exchanges'), ' / ', vhost, ' / ', shown),
      el('h1', {}, 'Exchange ', el('span', {class: 'obj-name'}, shown), vhost === '/' ? null : el('span', {class: 'obj-vhost'}, ` in ${vhost}`)),
      gone,
      section('Overview', chartBox, factsBox),
      bindings.el,
      section('Publish message', publishForm(ctx, vhost, name)),
      isDefault || name.startsWith('amq.') ? null : section('Delete this exchange', makeForm('Delete', [ifUnused], 'Delete', async () => {
        const q = ifUnused.querySelector('input').checked ? {'if-unused': 'true'} : {};
        await ctx.api.del(path, q);
        ctx.go('#/exchanges');
        return `Exchange ${name} deleted`;
      }, {confirmText: `Are you sure? This will delete exchange '${name}' in virtual host '${vhost}'.`})),
    );
    const update = (e) => { showFacts(e); chart.push(e); };
    update(x);
    await pollObject(ctx, path, update, bindings, gone, `exchange '${name}'`);
  },
};
