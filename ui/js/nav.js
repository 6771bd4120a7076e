// Which screen is on show, the way back, and the two-column/stacked layout.
// A screen is a function `(params) => {el, destroy?, focus?}`; one is mounted in <main> at a time.
// The chat list lives in the sidebar: beside the screen on a wide window, a screen of its own
// ("chats") on a narrow one.

import { emit } from './api.js';

const screens = new Map();
const stack = []; // [{name, params}]
let view = null;
let homeName = 'login';

const main = () => document.getElementById('main');
const sidebar = () => document.getElementById('sidebar');
const narrowQuery = window.matchMedia('(max-width: 760px)');

export function isNarrow() {
  return narrowQuery.matches;
}

export function register(name, render) {
  screens.set(name, render);
}

export function current() {
  return stack.length ? stack[stack.length - 1] : null;
}

/** The screen "home" leads to: login, the guide list or the requests. */
export function setHome(name) {
  homeName = name;
}

/** Shows a screen. `replace` swaps the current one; `reset` makes it the only one. */
export function go(name, params = {}, { replace = false, reset = false } = {}) {
  if (reset) stack.length = 0;
  else if (replace && stack.length) stack.pop();
  if (name === 'chats' && !isNarrow()) name = homeName;
  // Coming back to a screen already in the stack drops what was above it.
  const at = stack.findIndex((s) => s.name === name && sameParams(s.params, params));
  if (at >= 0) stack.length = at;
  stack.push({ name, params });
  mount();
}

function sameParams(a, b) {
  return JSON.stringify(a || {}) === JSON.stringify(b || {});
}

export function back() {
  if (stack.length > 1) stack.pop();
  else {
    stack.length = 0;
    stack.push({ name: homeName, params: {} });
  }
  mount();
}

export function home() {
  go(homeName, {}, { reset: true });
}

/** Re-renders the current screen (after sign-in, or when its data must be rebuilt). */
export function refresh() {
  mount();
}

function mount() {
  const top = current();
  if (view && view.destroy) {
    try {
      view.destroy();
    } catch (err) {
      console.error('closing a screen failed', err);
    }
  }
  view = null;
  const render = screens.get(top.name);
  const box = main();
  if (render) {
    view = render(top.params || {}) || null;
    box.replaceChildren(view && view.el ? view.el : '');
  } else {
    box.replaceChildren();
  }
  layout();
  if (view && view.focus) view.focus();
  else if (top.name === 'chats') sidebar().querySelector('h2')?.focus();
  else box.querySelector('h1, h2')?.focus({ preventScroll: true });
  emit({ type: 'ui.nav', detail: top });
}

/** Shows or hides the sidebar and main for the current screen and window width. */
export function layout() {
  const top = current();
  if (!top) return;
  const name = top.name;
  const app = document.getElementById('app');
  app.dataset.screen = name;
  const signedOut = name === 'login' || (homeName === 'login' && name === 'settings');
  const narrow = isNarrow();
  sidebar().hidden = signedOut || (narrow && name !== 'chats');
  main().hidden = narrow && name === 'chats';
  const backBtn = document.querySelector('[data-testid=back]');
  backBtn.hidden = !(stack.length > 1 || (top.name !== homeName && top.name !== 'login'));
  for (const b of document.querySelectorAll('[data-nav]')) {
    const target = b.dataset.nav;
    const active = target === 'home' ? name === homeName : target === name;
    if (active) b.setAttribute('aria-current', 'page');
    else b.removeAttribute('aria-current');
    b.hidden = signedOut && target !== 'settings';
    if (target === 'chats') b.hidden = b.hidden || !narrow;
  }
}

narrowQuery.addEventListener('change', () => {
  const top = current();
  if (top && top.name === 'chats' && !isNarrow()) go(homeName, {}, { replace: true });
  else layout();
});
