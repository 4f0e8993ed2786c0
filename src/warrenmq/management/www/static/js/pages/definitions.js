/* The definitions page (#/definitions, administrators): export and import, as on RabbitMQ's overview.
 *
 * Theory of operation: download is a plain link to GET /api/definitions[/{vhost}]?download=FILE&auth=
 * TOKEN, as RabbitMQ's UI builds it (a link cannot send an Authorization header, so the API takes the
 * Basic token as ?auth= on this path only; the answer's Content-Disposition makes it a download).
 * Upload posts the chosen file as multipart/form-data (field "file") to /api/definitions[/{vhost}]
 * and shows the outcome: the API's reason when it refuses (a file that is not JSON, a definition
 * that cannot be applied).
 */
import {el, section, field, input, select, makeForm, send} from '../objects.js';
import {credentials} from '../api.js';

const enc = encodeURIComponent;

function today() {
  const d = new Date();
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
}

export default {
  path: '/definitions',
  title: 'Definitions',
  nav: {label: 'Definitions', order: 70},
  tags: ['administrator'],
  async render(ctx) {
    const vhosts = (await ctx.api.get('/vhosts', {columns: 'name'})).map((v) => v.name);
    const options = [['', 'All virtual hosts'], ...vhosts.map((v) => [v, v])];

    const dlVhost = select('vhost', options, '');
    const filename = input('filename', {value: `rabbit_${location.hostname || 'localhost'}_${today()}.json`});
    const link = el('a', {class: 'obj-download button', href: '#'}, 'Download broker definitions');
    const update = () => {
      const c = credentials();
      const target = dlVhost.value ? `/definitions/${enc(dlVhost.value)}` : '/definitions';
      link.href = `api${target}?download=${enc(filename.value)}&auth=${enc(c ? c.token : '')}`;
      link.textContent = dlVhost.value ? `Download definitions of ${dlVhost.value}` : 'Download broker definitions';
    };
    dlVhost.addEventListener('change', update);
    filename.addEventListener('input', update);
    update();

    const file = el('input', {type: 'file', name: 'file', accept: '.json,application/json', required: true});
    const upVhost = select('vhost', options, '');
    const result = el('div', {class: 'obj-upload-result', 'aria-live': 'polite'});
    const upload = makeForm('Import definitions', [
      field('Definitions file', file), field('Virtual host', upVhost),
    ], 'Upload broker definitions', async () => {
      if (!file.files.length) throw new Error('Choose a file first.');
      const body = new FormData();
      body.append('file', file.files[0]);
      await send('POST', upVhost.value ? `/definitions/${enc(upVhost.value)}` : '/definitions', {body});
      return `Your definitions were imported successfully${upVhost.value ? ` into ${upVhost.value}` : ''}.`;
    }, {confirmText: 'Are you sure you want to import a definitions file? Some entities (vhosts, users, queues, etc) may be overwritten!'});

    ctx.el.append(
      el('h1', {}, 'Definitions'),
      section('Export definitions',
        el('p', {class: 'obj-hint'}, 'Users, virtual hosts, permissions, parameters, policies, queues, exchanges and bindings, as JSON.'),
        field('Virtual host', dlVhost), field('Filename for download', filename),
        el('p', {}, link)),
      section('Import definitions', upload, result),
    );
  },
};
