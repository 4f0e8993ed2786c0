// The web UI's boot: login, the hash router, the navigation and the refresh scheduler.
//
// Theory of operation: the UI is one HTML shell (index.html) and ES modules, no
// build step. Each page is a module listed in pages/index.js ({path, title, nav,
// tags, render(ctx)}). On every hashchange the router finds the first page whose
// path matches the hash (':x' segments are percent-decoded into ctx.params),
// stops the previous page's timers, empties <main> and calls render(ctx).
// Not logged in (no credentials in sessionStorage, or the API said they are bad),
// every route shows the login form, which checks user and password with
// GET /api/whoami and then returns to the page that was asked for. The user's
// tags decide which pages are in the navigation and which may be opened, with
// RabbitMQ's ladder (management < policymaker, monitoring < administrator); the
// API enforces the same rules on every call, the UI only hides what would be refused.
// ctx.every(ms, fn) runs fn now and then every ms while the page is shown; a run
// is skipped while the previous one is still waiting for the API, and every timer
// belongs to one "generation" that navigation ends.

import * as api from './api.js';
import { h, clear, notice, clearNotices } from './dom.js';
import pages from './pages/index.js';

/** A page is allowed when the user has any one of the levels it lists (none listed: management). */
export function allowed(user, page) {
  const tags = page.tags && page.tags.length ? page.tags : ['management'];
  return tags.some((t) => api.hasLevel(user, t));
}

const state = {
  user: null,         // {name, tags} from /api/whoami
  stats: true,        // false when /api/overview says statistics are off
  generation: 0,      // bumped on every navigation: timers of older generations stop
  timers: [],
  returnTo: '#/',
};

const main = () => document.getElementById('main');

function compile(path) {
  const segs = path.split('/').filter(Boolean);
  return (hashPath) => {
    const parts = hashPath.split('/').filter(Boolean);
    if (parts.length !== segs.length) return null;
    const params = {};
    for (let i = 0; i < segs.length; i++) {
      if (segs[i].startsWith(':')) {
        try { params[segs[i].slice(1)] = decodeURIComponent(parts[i]); } catch (e) { return null; }
      } else if (segs[i] !== parts[i]) {
        return null;
      }
    }
    return params;
  };
}

const routes = pages.map((p) => ({ page: p, match: compile(p.path) }));

function currentPath() {
  const hash = location.hash || '#/';
  return hash.startsWith('#') ? hash.slice(1).split('?')[0] || '/' : '/';
}

function stopTimers() {
  state.generation++;
  for (const t of state.timers) clearInterval(t);
  state.timers = [];
}

export function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function makeCtx(el, params) {
  const gen = state.generation;
  return {
    el,
    params,
    api,
    user: state.user,
    stats: state.stats,
    go,
    every(ms, fn) {
      let running = false;
      const tick = async () => {
        if (gen !== state.generation || running) return;
        running = true;
        try {
          await fn();
        } catch (e) {
          report(e, gen);
        } finally {
          running = false;
        }
      };
      tick();
      state.timers.push(setInterval(tick, ms));
    },
  };
}

/** An error of a page: an API refusal is shown; anything else is a bug, also logged to the console. */
function report(e, gen) {
  if (gen !== undefined && gen !== state.generation) return;
  if (e instanceof api.ApiError) {
    if (e.status === 401 && !state.user) return; // on the way to the login page
    notice(e.reason || e.message, 'error');
  } else {
    console.error(e);
    notice(`Error: ${e && e.message ? e.message : e}`, 'error');
  }
}

function renderNav() {
  const nav = document.getElementById('nav');
  clear(nav);
  const entries = pages.filter((p) => p.nav && allowed(state.user, p))
    .sort((a, b) => (a.nav.order || 0) - (b.nav.order || 0));
  const list = h('ul', {});
  for (const p of entries) {
    const hash = `#${p.path}`;
    list.appendChild(h('li', {}, h('a', { href: hash, dataset: { path: p.path } }, p.nav.label)));
  }
  nav.appendChild(list);
  nav.hidden = false;
  document.getElementById('who-name').textContent = state.user.name;
  document.getElementById('who-tags').textContent = state.user.tags.length ? `(${state.user.tags.join(', ')})` : '';
  document.getElementById('who').hidden = false;
}

function markNav(page) {
  for (const a of document.querySelectorAll('#nav a')) {
    // a list page is current for its object pages too: #/queues for #/queues/%2F/q; a page without
    // a nav entry of its own may name the entry it belongs under (navPath: '/admin' for the admin lists)
    const p = a.dataset.path;
    const own = page && (page.navPath || page.path);
    const current = page && (own === p || (p !== '/' && own.startsWith(`${p}/`)));
    if (current) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

function hideShell() {
  document.getElementById('nav').hidden = true;
  document.getElementById('who').hidden = true;
  clear(document.getElementById('nav'));
}

function showLogin(message) {
  stopTimers();
  state.user = null;
  hideShell();
  markNav(null);
  document.title = 'Login - WarrenMQ';
  const el = clear(main());
  const err = h('div', { class: 'login-error', role: 'alert' }, message || '');
  const user = h('input', { id: 'login-user', name: 'username', type: 'text', autocomplete: 'username', required: true });
  const pass = h('input', { id: 'login-pass', name: 'password', type: 'password', autocomplete: 'current-password' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Log in');
  const f = h('form', { class: 'login', id: 'login-form' },
    h('h1', {}, 'Log in'),
    h('div', { class: 'field' }, h('label', { for: 'login-user' }, 'Username'), user),
    h('div', { class: 'field' }, h('label', { for: 'login-pass' }, 'Password'), pass),
    h('div', { class: 'actions' }, submit),
    err);
  f.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    err.textContent = '';
    try {
      const me = await api.login(user.value, pass.value);
      await start(me);
      const back = state.returnTo && state.returnTo !== '#/login' ? state.returnTo : '#/';
      go(back);
    } catch (e) {
      err.textContent = e instanceof api.ApiError ? loginMessage(e) : `Error: ${e.message || e}`;
      if (!(e instanceof api.ApiError)) console.error(e);
    } finally {
      submit.disabled = false;
    }
  });
  el.appendChild(f);
  user.focus();
}

/** RabbitMQ's words for a refused login ("Not management user" for a user without a management tag). */
function loginMessage(e) {
  if (e.status === 401) return e.reason && e.reason !== 'Not_Authorized' ? e.reason : 'Login failed';
  return e.reason || e.message;
}

/** After a login (or a reload with credentials): the user, whether statistics are on, the shell. */
async function start(me) {
  state.user = { name: me.name, tags: me.tags || [] };
  try {
    const ov = await api.get('/overview', { columns: 'rates_mode,disable_stats,cluster_name' });
    state.stats = !(ov.disable_stats || ov.rates_mode === 'none');
    document.getElementById('cluster').textContent = ov.cluster_name || '';
  } catch (e) {
    if (!(e instanceof api.ApiError) || e.status === 401) throw e;
    state.stats = true;
  }
  renderNav();
}

async function route() {
  const path = currentPath();
  clearNotices();
  if (!state.user) {
    if (path !== '/login') state.returnTo = location.hash || `#${path}`;  // with its query: a list's view
    showLogin();
    return;
  }
  if (path === '/login') { go('#/'); return; }
  stopTimers();
  let found = null;
  let params = null;
  for (const r of routes) {
    params = r.match(path);
    if (params) { found = r.page; break; }
  }
  markNav(found);
  const el = clear(main());
  if (!found) {
    document.title = 'Not found - WarrenMQ';
    el.appendChild(h('h1', {}, 'Not found'));
    el.appendChild(h('p', {}, 'No page here. ', h('a', { href: '#/' }, 'Overview')));
    return;
  }
  document.title = `${found.title} - WarrenMQ`;
  if (!allowed(state.user, found)) {
    el.appendChild(h('h1', {}, found.title));
    el.appendChild(h('p', { role: 'alert' }, 'Your user tags do not allow this page.'));
    return;
  }
  const gen = state.generation;
  try {
    await found.render(makeCtx(el, params));
  } catch (e) {
    report(e, gen);
  }
}

async function boot() {
  document.querySelector('.skip').addEventListener('click', (ev) => {
    ev.preventDefault();
    main().focus();
  });
  document.getElementById('logout').addEventListener('click', () => {
    api.logout();
    state.returnTo = '#/';
    state.user = null;
    if (location.hash === '#/login') showLogin();
    else location.hash = '#/login';
  });
  api.onUnauthorized(() => {
    if (!state.user) return;
    state.returnTo = location.hash || '#/';
    state.user = null;
    showLogin('Login failed');
  });
  window.addEventListener('hashchange', route);
  if (api.credentials()) {
    try {
      await start(await api.get('/whoami'));
    } catch (e) {
      api.logout();
      state.user = null;
    }
  }
  route();
}

boot();
