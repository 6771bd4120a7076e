// The customer's home: astrologers with live presence, filters, the birth details to send along,
// and the request button on each card.

import { call, on } from '../api.js';
import * as nav from '../nav.js';
import { state, reloadChats, canAfford, MIN_MINUTES } from '../state.js';
import { toast } from '../toast.js';
import { avatar, errorText, h, icon, lastSeen, money, plural, ratingText } from '../util.js';
import { openProfileDialog } from './profile-dialog.js';

const filters = { text: '', language: '', onlineOnly: false };

const STATUS_WORDS = { online: 'Online', busy: 'Busy, in a consultation', offline: 'Offline' };

export function guidesScreen() {
  const offs = [];
  const cards = new Map(); // guide id → {el, update}
  let loaded = false;
  let requesting = false;

  const search = h('input', {
    type: 'search',
    class: 'search-input',
    placeholder: 'Search by name or skill',
    'aria-label': 'Search astrologers by name or skill',
    '.value': filters.text,
    on: { input: () => ((filters.text = search.value), applyFilters()) },
  });
  const language = h('select', {
    'aria-label': 'Language',
    on: { change: () => ((filters.language = language.value), applyFilters()) },
  });
  const onlineOnly = h('input', {
    type: 'checkbox',
    id: 'online-only',
    '.checked': filters.onlineOnly,
    on: { change: () => ((filters.onlineOnly = onlineOnly.checked), applyFilters()) },
  });
  const profileSelect = h('select', {
    id: 'birth-details',
    on: { change: () => (state.profileId = profileSelect.value) },
  });
  const summary = h('p', { class: 'muted screen-sub' });
  const grid = h('div', { class: 'guide-grid', role: 'list' });
  const empty = h('div', { class: 'empty', hidden: true });

  const el = h(
    'section',
    { class: 'screen screen-guides', 'data-testid': 'screen-guides', 'aria-labelledby': 'guides-title' },
    h(
      'header',
      { class: 'screen-head' },
      h('div', null, h('h1', { id: 'guides-title', tabindex: '-1', text: 'Astrologers' }), summary),
    ),
    h(
      'div',
      { class: 'birth-bar' },
      h('label', { for: 'birth-details', class: 'label-inline', text: 'Birth details:' }),
      profileSelect,
      h(
        'button',
        { type: 'button', class: 'btn ghost small', on: { click: addProfile } },
        icon('plus'),
        h('span', { text: 'Add birth details' }),
      ),
    ),
    h(
      'div',
      { class: 'filters' },
      h('div', { class: 'search-box' }, icon('search'), search),
      language,
      h('label', { class: 'check', for: 'online-only' }, onlineOnly, h('span', { text: 'Online only' })),
    ),
    grid,
    empty,
  );

  function fillProfiles() {
    const keep = state.profileId;
    profileSelect.replaceChildren(
      h('option', { value: '', text: 'None' }),
      ...state.profiles.map((p) => h('option', { value: String(p.profile_id), text: p.name })),
    );
    profileSelect.value = state.profiles.some((p) => String(p.profile_id) === keep) ? keep : '';
    state.profileId = profileSelect.value;
  }

  function fillLanguages() {
    const all = new Set();
    for (const g of state.guides.values()) for (const l of g.languages || []) all.add(l);
    language.replaceChildren(
      h('option', { value: '', text: 'All languages' }),
      ...[...all].sort().map((l) => h('option', { value: l, text: l })),
    );
    language.value = all.has(filters.language) ? filters.language : '';
  }

  function card(g) {
    const dot = h('span', { class: 'status-dot' });
    const status = h('span', { class: 'status-text' });
    const btn = h('button', {
      type: 'button',
      class: 'btn primary',
      'data-testid': 'guide-request',
      on: { click: () => request(g.id) },
    });
    // Too little money for five minutes: say so, and offer the recharge instead of a request
    // the server would refuse.
    const low = h('p', { class: 'low-balance', 'data-testid': 'low-balance', hidden: true });
    const topUp = h('button', {
      type: 'button',
      class: 'btn primary',
      'data-testid': 'guide-recharge',
      hidden: true,
      on: { click: () => nav.go('wallet', { suggest: shortfall(g) }) },
    });
    const el = h(
      'article',
      { class: 'guide-card', 'data-testid': 'guide-card', 'data-guide-id': String(g.id), role: 'listitem' },
      h(
        'div',
        { class: 'guide-top' },
        h('div', { class: 'avatar-wrap' }, avatar(g.display_name, g.id, 'lg'), dot),
        h(
          'div',
          { class: 'guide-id' },
          h('h2', { class: 'guide-name', text: g.display_name }),
          h('p', { class: 'status-line' }, status),
        ),
        h(
          'p',
          { class: 'price' },
          h('strong', { text: `₹${g.rate_per_minute}` }),
          h('span', { class: 'muted', text: '/min' }),
        ),
      ),
      h(
        'p',
        { class: 'rating-line' },
        h('span', { class: 'star', 'aria-hidden': 'true', text: '★' }),
        h('strong', { text: ratingText(g.rating_avg, g.rating_count) }),
        h('span', { class: 'muted', text: g.rating_count ? ` (${plural(g.rating_count, 'rating')})` : ' (no ratings yet)' }),
        g.languages && g.languages.length ? h('span', { class: 'muted', text: ` · ${g.languages.join(', ')}` }) : null,
      ),
      g.skills && g.skills.length
        ? h('ul', { class: 'chips', 'aria-label': 'Skills' }, g.skills.map((s) => h('li', { class: 'chip', text: s })))
        : null,
      low,
      h('div', { class: 'card-actions' }, btn, topUp),
    );
    const update = () => {
      const s = state.guides.get(g.id).status || 'offline';
      el.dataset.status = s;
      dot.className = `status-dot ${s}`;
      status.textContent = s === 'offline' ? `Offline · ${lastSeen(state.guides.get(g.id).last_seen)}` : STATUS_WORDS[s];
      btn.disabled = s !== 'online' || requesting;
      btn.textContent = s === 'online' ? 'Request chat' : s === 'busy' ? 'Busy' : 'Unavailable';
      btn.setAttribute('aria-label', s === 'online' ? `Request a chat with ${g.display_name}` : `${g.display_name} is not available`);
      const poor = s === 'online' && !canAfford(g);
      low.hidden = !poor;
      topUp.hidden = !poor;
      btn.hidden = poor;
      if (poor) {
        const w = state.wallet;
        low.textContent = `${MIN_MINUTES} minutes need ${money(MIN_MINUTES * g.rate_per_minute, w.currency)}; your balance is ${money(w.balance, w.currency)}.`;
        topUp.textContent = 'Recharge to chat';
        topUp.setAttribute('aria-label', `Recharge to chat with ${g.display_name}`);
      }
    };
    update();
    return { el, update, guide: g };
  }

  function matches(g) {
    if (filters.onlineOnly && g.status !== 'online') return false;
    if (filters.language && !(g.languages || []).includes(filters.language)) return false;
    const q = filters.text.trim().toLowerCase();
    if (q) {
      const hay = [g.display_name, ...(g.skills || [])].join(' ').toLowerCase();
      if (!q.split(/\s+/).every((w) => hay.includes(w))) return false;
    }
    return true;
  }

  function applyFilters() {
    let shown = 0;
    let online = 0;
    for (const [id, c] of cards) {
      const g = state.guides.get(id);
      const ok = matches(g);
      c.el.hidden = !ok;
      if (ok) shown++;
      if (g.status === 'online') online++;
    }
    summary.textContent = loaded ? `${online} online now · ${plural(cards.size, 'astrologer')}` : 'Loading…';
    empty.hidden = !loaded || shown > 0;
    if (!empty.hidden) {
      empty.replaceChildren(
        ...(cards.size === 0
          ? [h('p', { class: 'empty-title', text: 'No astrologers yet' }), h('p', { text: 'Astrologers appear here as they join. Check back soon.' })]
          : [
              h('p', { class: 'empty-title', text: 'Nobody matches' }),
              h('p', {
                text: filters.onlineOnly && !filters.text && !filters.language
                  ? 'No astrologer is online right now. They come and go through the day; untick "Online only" to see everyone.'
                  : 'Try another word or language, or clear the filters.',
              }),
              h('button', { type: 'button', class: 'btn ghost', text: 'Clear filters', on: { click: clearFilters } }),
            ]),
      );
    }
  }

  function clearFilters() {
    filters.text = '';
    filters.language = '';
    filters.onlineOnly = false;
    search.value = '';
    language.value = '';
    onlineOnly.checked = false;
    applyFilters();
  }

  function renderAll() {
    const order = { online: 0, busy: 1, offline: 2 };
    const list = [...state.guides.values()].sort(
      (a, b) =>
        (order[a.status] ?? 3) - (order[b.status] ?? 3) ||
        b.rating_avg - a.rating_avg ||
        a.display_name.localeCompare(b.display_name),
    );
    cards.clear();
    for (const g of list) cards.set(g.id, card(g));
    grid.replaceChildren(...[...cards.values()].map((c) => c.el));
    fillLanguages();
    applyFilters();
  }

  async function load() {
    applyFilters();
    const asked = Date.now();
    try {
      const list = await call('guides');
      // The watch starts before the list is read: a change that arrived while it was on its
      // way is newer than the list, so it wins.
      for (const g of list) {
        const p = state.presence.get(g.id);
        if (p && p.at >= asked) {
          g.status = p.status;
          if (p.last_seen) g.last_seen = p.last_seen;
        }
      }
      state.guides = new Map(list.map((g) => [g.id, g]));
      loaded = true;
      renderAll();
    } catch (err) {
      loaded = true;
      empty.hidden = false;
      empty.replaceChildren(
        h('p', { class: 'empty-title', text: "Couldn't load the astrologers" }),
        h('p', { text: errorText(err) }),
        h('button', { type: 'button', class: 'btn ghost', text: 'Try again', on: { click: load } }),
      );
    }
  }

  async function loadProfiles() {
    try {
      state.profiles = await call('profiles');
    } catch {
      /* birth details are optional; the select keeps "None" */
    }
    fillProfiles();
  }

  async function addProfile() {
    const created = await openProfileDialog(state.guides);
    if (!created) return;
    state.profiles = [...state.profiles.filter((p) => p.profile_id !== created.profile_id), created];
    state.profileId = String(created.profile_id);
    fillProfiles();
    toast(`Birth details for ${created.name} saved`);
  }

  async function request(guideId) {
    if (requesting) return;
    requesting = true;
    for (const c of cards.values()) c.update();
    const g = state.guides.get(guideId);
    try {
      const args = { guideId };
      if (state.profileId) args.profileId = Number(state.profileId);
      const c = await call('consultation_request', args);
      reloadChats();
      nav.go('waiting', { id: c.consultation_id, createdAt: Date.now(), guideName: g.display_name });
    } catch (err) {
      requesting = false;
      for (const c of cards.values()) c.update();
      if (err.code === 'CONSULTATION_ACTIVE') toast('You already have a consultation going. Finish it first.', 'error');
      else if (err.code === 'GUIDE_UNAVAILABLE') toast(`${g.display_name} is not available right now`, 'error');
      else if (err.code === 'INSUFFICIENT_BALANCE') {
        toast(`Your balance is too low for ${MIN_MINUTES} minutes with ${g.display_name}. Recharge to chat.`, 'error');
        nav.go('wallet', { suggest: shortfall(g) });
      }
      else toast(err);
    }
  }

  /** A recharge that brings the balance to five minutes with `g` (rounded up to 100). */
  function shortfall(g) {
    const need = MIN_MINUTES * g.rate_per_minute - ((state.wallet && state.wallet.balance) || 0);
    return Math.max(100, Math.ceil(need / 100) * 100);
  }

  offs.push(on('ui.wallet', () => cards.forEach((c) => c.update())));
  offs.push(
    on('ui.presence', (e) => {
      const c = cards.get(e.detail);
      if (c) {
        c.update();
        applyFilters();
      }
    }),
  );
  fillProfiles();
  load();
  loadProfiles();

  return { el, destroy: () => offs.forEach((off) => off()) };
}
