/* table.js: the server-side paged table every list page uses (ui-contract.md).

   Theory of operation: the browser never holds more than one page of rows.
   Each load asks the API for exactly what is shown:
     GET <endpoint>?page=&page_size=&name=&use_regex=&sort=&sort_reverse=&columns=
   (docs/management.md "Lists"), so with 10,000 queues the server filters and
   sorts and sends 100 trimmed rows, and the browser renders those.

   The table's state (page, page size, filter, regex, sort, reverse, vhost)
   lives in the hash's query (#/queues?page=2&sort=messages), written with
   history.replaceState so typing does not add history entries and does not
   re-route; a reload, a link back or the back button from an object page
   gives the same view. Refreshing (ctx.every) replaces only the body rows,
   the row count and the page links: the filter box, the header buttons and
   the focus stay where they are. A response older than the latest request
   is dropped, so a slow refresh never overwrites a newer sort.

   Columns: {key, label, sort, render(row) -> node|string, className,
   fields: [dotted keys the cell needs] (default [key]), stats: true (hidden
   when statistics are off), link: true (the cell links to rowLink(row)),
   title, vhostColumn: true (hidden when one vhost is shown)}. */
import { h } from './dom.js';

export const PAGE_SIZES = [20, 50, 100, 200, 500];
const DEFAULT_PAGE_SIZE = 100;
const DEFAULT_EVERY_MS = 5000;
const FILTER_DELAY_MS = 300;

let tableSeq = 0;

/* The hash's path and its query. */
export function hashQuery() {
  const raw = location.hash.replace(/^#/, '');
  const i = raw.indexOf('?');
  return {
    path: i < 0 ? raw : raw.slice(0, i),
    params: new URLSearchParams(i < 0 ? '' : raw.slice(i + 1)),
  };
}

function writeHashQuery(params) {
  const { path } = hashQuery();
  const qs = params.toString();
  const url = `${location.pathname}${location.search}#${path || '/'}${qs ? `?${qs}` : ''}`;
  if (url !== `${location.pathname}${location.search}${location.hash}`) {
    history.replaceState(history.state, '', url);
  }
}

function lookup(row, key) {
  let v = row;
  for (const part of key.split('.')) {
    if (v == null || typeof v !== 'object') return undefined;
    v = v[part];
  }
  return v;
}

function cellContent(col, row) {
  if (col.render) return col.render(row);
  const v = lookup(row, col.key);
  if (v === undefined || v === null) return '';
  if (typeof v === 'boolean') return v ? '\u25cf' : '\u25cb';
  if (typeof v === 'number') return v.toLocaleString('en');
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

function validRegex(text) {
  try {
    new RegExp(text, 'i');
    return true;
  } catch (e) {
    return false;
  }
}

/* Build the table into opts.into (default ctx.el) and start refreshing it.
   Returns {el, reload()}.

   opts: endpoint ('/queues'), vhostEndpoint(vhost) (default
   `${endpoint}/${enc(vhost)}`; null: no vhost selector), columns, rowLink(row)
   -> '#/...', defaultSort ('name' or {sort, reverse}), filter (false: no name
   filter, for lists without names), fields (extra columns= keys, e.g. what
   rowLink needs), actions ([{label, run(row, table)}], one button each per
   row), every (ms), hashState (false: keep state in memory, for a second
   table on a page), label (the table's accessible name), empty (text). */
export function pagedTable(ctx, opts) {
  const id = `t${++tableSeq}`;
  const api = ctx.api;
  const enc = api.enc || encodeURIComponent;
  const useHash = opts.hashState !== false;
  const defaultSort = typeof opts.defaultSort === 'string'
    ? { sort: opts.defaultSort, reverse: false } : (opts.defaultSort || { sort: '', reverse: false });
  const vhostEndpoint = opts.vhostEndpoint === null ? null
    : (opts.vhostEndpoint || ((v) => `${opts.endpoint}/${enc(v)}`));

  const initial = useHash ? hashQuery().params : new URLSearchParams();
  const state = {
    page: Math.max(1, parseInt(initial.get('page') || '1', 10) || 1),
    pageSize: PAGE_SIZES.includes(parseInt(initial.get('page_size'), 10))
      ? parseInt(initial.get('page_size'), 10) : DEFAULT_PAGE_SIZE,
    name: initial.get('name') || '',
    regex: initial.get('use_regex') === 'true',
    sort: initial.has('sort') ? initial.get('sort') : defaultSort.sort,
    reverse: initial.has('sort_reverse') ? initial.get('sort_reverse') === 'true' : defaultSort.reverse,
    vhost: initial.get('vhost') || '',
  };
  let vhostCount = 0;  // how many vhosts the user sees (the vhost column is shown only when > 1)

  function saveState() {
    if (!useHash) return;
    const p = hashQuery().params;
    const set = (k, v, dflt) => { if (v === dflt) p.delete(k); else p.set(k, String(v)); };
    set('page', state.page, 1);
    set('page_size', state.pageSize, DEFAULT_PAGE_SIZE);
    set('name', state.name, '');
    set('use_regex', state.regex, false);
    set('sort', state.sort, defaultSort.sort);
    set('sort_reverse', state.reverse, defaultSort.reverse);
    set('vhost', state.vhost, '');
    writeHashQuery(p);
  }

  function visibleColumns() {
    const oneVhost = !!state.vhost || (vhostCount === 1);
    return opts.columns.filter((c) => !(c.stats && !ctx.stats) && !(c.vhostColumn && oneVhost));
  }

  // ---- controls: vhost selector, filter with regex checkbox, page size
  const controls = h('div', { class: 'table-controls' });
  let vhostSelect = null;
  if (vhostEndpoint) {
    vhostSelect = h('select', { id: `${id}-vhost`, class: 'table-vhost' },
      h('option', { value: '' }, 'All virtual hosts'));
    if (state.vhost) vhostSelect.append(h('option', { value: state.vhost }, state.vhost));
    vhostSelect.value = state.vhost;
    vhostSelect.addEventListener('change', () => {
      state.vhost = vhostSelect.value;
      state.page = 1;
      buildHead();
      reload();
    });
    controls.append(h('span', { class: 'control' },
      h('label', { for: `${id}-vhost` }, 'Virtual host'), vhostSelect));
  }
  let filterInput = null;
  let regexBox = null;
  let filterMsg = null;
  if (opts.filter !== false) {
    filterInput = h('input', { type: 'search', id: `${id}-filter`, class: 'table-filter',
      value: state.name, autocomplete: 'off', spellcheck: 'false' });
    regexBox = h('input', { type: 'checkbox', id: `${id}-regex`, class: 'table-regex' });
    regexBox.checked = state.regex;
    filterMsg = h('span', { class: 'table-filter-error', role: 'alert' });
    let timer = null;
    const apply = () => {
      clearTimeout(timer);
      timer = null;
      if (state.name === filterInput.value && state.regex === regexBox.checked) return;
      state.name = filterInput.value;
      state.regex = regexBox.checked;
      state.page = 1;
      reload();
    };
    filterInput.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(apply, FILTER_DELAY_MS);
    });
    filterInput.addEventListener('keydown', (e) => { if (e.key === 'Enter') apply(); });
    regexBox.addEventListener('change', apply);
    controls.append(
      h('span', { class: 'control' }, h('label', { for: `${id}-filter` }, 'Filter'), filterInput),
      h('span', { class: 'control' }, regexBox,
        h('label', { for: `${id}-regex`, title: 'Filter by a regular expression (case-insensitive)' }, 'Regex')),
      filterMsg);
  }
  const sizeSelect = h('select', { id: `${id}-size`, class: 'table-size' },
    ...PAGE_SIZES.map((n) => h('option', { value: String(n) }, String(n))));
  sizeSelect.value = String(state.pageSize);
  sizeSelect.addEventListener('change', () => {
    state.pageSize = parseInt(sizeSelect.value, 10);
    state.page = 1;
    reload();
  });
  controls.append(h('span', { class: 'control' },
    h('label', { for: `${id}-size` }, 'Page size'), sizeSelect));
  const count = h('span', { class: 'table-count', 'aria-live': 'polite' });
  controls.append(count);

  // ---- the table
  const table = h('table', { class: 'list', id });
  if (opts.label) table.setAttribute('aria-label', opts.label);
  const thead = h('thead');
  const tbody = h('tbody');
  table.append(thead, tbody);
  const wrap = h('div', { class: 'table-wrap', tabindex: '0', role: 'region',
    'aria-label': opts.label || 'Table' }, table);
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' });
  const error = h('p', { class: 'table-error', role: 'alert' });
  error.hidden = true;
  const el = h('section', { class: 'paged-table' }, controls, wrap, pager, error);
  (opts.into || ctx.el).append(el);

  function buildHead() {
    const cols = visibleColumns();
    const focused = document.activeElement && thead.contains(document.activeElement)
      ? document.activeElement.dataset.sort : null;
    const tr = h('tr');
    for (const col of cols) {
      const th = h('th', { scope: 'col', class: col.className || '' });
      if (col.title) th.title = col.title;
      if (col.sort) {
        const active = state.sort === col.sort;
        th.setAttribute('aria-sort', active ? (state.reverse ? 'descending' : 'ascending') : 'none');
        const btn = h('button', { type: 'button', class: 'sort', 'data-sort': col.sort },
          col.label, h('span', { class: 'sort-mark', 'aria-hidden': 'true' },
            active ? (state.reverse ? ' \u25bc' : ' \u25b2') : ''));
        btn.addEventListener('click', () => {
          if (state.sort === col.sort) state.reverse = !state.reverse;
          else { state.sort = col.sort; state.reverse = false; }
          state.page = 1;
          buildHead();
          reload();
        });
        th.append(btn);
      } else {
        th.append(col.label);
      }
      tr.append(th);
    }
    if (opts.actions && opts.actions.length) tr.append(h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')));
    thead.replaceChildren(tr);
    if (focused) {
      const again = thead.querySelector(`button[data-sort="${CSS.escape(focused)}"]`);
      if (again) again.focus();
    }
  }

  function fieldsFor(cols) {
    const set = new Set(opts.fields || []);
    for (const c of cols) for (const f of (c.fields || [c.key])) set.add(f);
    return [...set].join(',');
  }

  function renderRows(items, cols) {
    const rows = items.map((row) => {
      const tr = h('tr');
      for (const col of cols) {
        let content = cellContent(col, row);
        if (col.link && opts.rowLink) {
          content = h('a', { href: opts.rowLink(row) }, content);
        }
        const td = h('td', { class: col.className || '' });
        if (content !== '' && content != null) td.append(content);
        tr.append(td);
      }
      if (opts.actions && opts.actions.length) {
        const td = h('td', { class: 'actions' });
        for (const a of opts.actions) {
          if (a.show && !a.show(row)) continue;
          const b = h('button', { type: 'button' }, a.label);
          b.addEventListener('click', () => a.run(row, handle));
          td.append(b);
        }
        tr.append(td);
      }
      return tr;
    });
    if (!rows.length) {
      const colspan = String(cols.length + (opts.actions && opts.actions.length ? 1 : 0));
      rows.push(h('tr', { class: 'empty' },
        h('td', { colspan }, state.name ? 'No items match the filter' : (opts.empty || 'No items'))));
    }
    tbody.replaceChildren(...rows);
  }

  function pageButton(label, page, current, aria) {
    const b = h('button', { type: 'button', class: 'page', 'data-page': String(page) }, label);
    if (aria) b.setAttribute('aria-label', aria);
    if (current) b.setAttribute('aria-current', 'page');
    if (current || page < 1) b.disabled = true;
    b.addEventListener('click', () => {
      state.page = page;
      reload(`button.page[data-page="${page}"]`);
    });
    return b;
  }

  function renderPager(res) {
    const last = Math.max(1, res.page_count);
    const p = res.page;
    const parts = [];
    if (last > 1) {
      parts.push(pageButton('\u2039', p > 1 ? p - 1 : 0, false, 'Previous page'));
      const shown = new Set([1, last]);
      for (let i = p - 2; i <= p + 2; i++) if (i >= 1 && i <= last) shown.add(i);
      let prev = 0;
      for (const i of [...shown].sort((a, b) => a - b)) {
        if (i > prev + 1) parts.push(h('span', { class: 'gap', 'aria-hidden': 'true' }, '\u2026'));
        parts.push(pageButton(String(i), i, i === p, `Page ${i}`));
        prev = i;
      }
      parts.push(pageButton('\u203a', p < last ? p + 1 : 0, false, 'Next page'));
    }
    pager.replaceChildren(...parts);
    const n = res.filtered_count;
    let text = `${n.toLocaleString('en')} item${n === 1 ? '' : 's'}`;
    if (n !== res.total_count) text += ` (filtered from ${res.total_count.toLocaleString('en')})`;
    if (last > 1) text += `, page ${p} of ${last}`;
    count.textContent = text;
  }

  let loadSeq = 0;
  let vhostsLoaded = false;

  async function loadVhosts() {
    if (!vhostEndpoint || vhostsLoaded) return;
    vhostsLoaded = true;
    try {
      const vhosts = await api.get('/vhosts', { columns: 'name' });
      vhostCount = vhosts.length;
      const names = vhosts.map((v) => v.name);
      if (state.vhost && !names.includes(state.vhost)) names.push(state.vhost);
      vhostSelect.replaceChildren(h('option', { value: '' }, 'All virtual hosts'),
        ...names.map((n) => h('option', { value: n }, n)));
      vhostSelect.value = state.vhost;
      buildHead();
    } catch (e) {
      vhostsLoaded = false;
    }
  }

  /* Fetch the current page and render it; focusSel: what to focus afterwards (a page link). */
  async function reload(focusSel) {
    const seq = ++loadSeq;
    saveState();
    sizeSelect.value = String(state.pageSize);
    if (filterInput && state.regex && state.name && !validRegex(state.name)) {
      // do not send what the server would refuse (a 400 is a console error in the browser)
      filterMsg.textContent = 'Invalid regular expression';
      filterInput.setAttribute('aria-invalid', 'true');
      return;
    }
    if (filterInput) {
      filterMsg.textContent = '';
      filterInput.removeAttribute('aria-invalid');
    }
    const cols = visibleColumns();
    const query = { page: state.page, page_size: state.pageSize, columns: fieldsFor(cols) };
    if (state.name) query.name = state.name;
    if (state.name && state.regex) query.use_regex = 'true';
    if (state.sort) query.sort = state.sort;
    if (state.reverse) query.sort_reverse = 'true';
    const path = state.vhost && vhostEndpoint ? vhostEndpoint(state.vhost) : opts.endpoint;
    let res;
    try {
      res = await api.get(path, query);
    } catch (e) {
      if (seq !== loadSeq) return;
      if (e && e.status === 400 && state.page > 1) {  // rows went away: back to the first page
        state.page = 1;
        reload();
        return;
      }
      error.textContent = (e && (e.reason || e.message)) || String(e);
      error.hidden = false;
      return;
    }
    if (seq !== loadSeq) return;
    error.hidden = true;
    if (state.page > Math.max(1, res.page_count)) {
      state.page = Math.max(1, res.page_count);
      reload();
      return;
    }
    const headCols = thead.querySelectorAll('th').length
      - (opts.actions && opts.actions.length ? 1 : 0);
    if (headCols !== cols.length) buildHead();
    renderRows(res.items, cols);
    renderPager(res);
    el.dataset.loaded = String(seq);
    if (typeof focusSel === 'string') {
      const target = pager.querySelector(focusSel) || pager.querySelector('button:not([disabled])');
      if (target) target.focus();
    }
  }

  const handle = { el, reload: () => reload(), state };
  buildHead();
  ctx.every(opts.every || DEFAULT_EVERY_MS, async () => {
    await loadVhosts();
    await reload();
  });
  return handle;
}
