// The astrologer's home: the online switch, incoming requests with the customer's birth details,
// and the ratings received.

import { call, on } from '../api.js';
import * as nav from '../nav.js';
import { state, myId, reloadChats, updateConsultation } from '../state.js';
import { toast } from '../toast.js';
import { ago, avatar, errorText, h, mmss, money, plural, ratingText, shortWhen, toMs } from '../util.js';
import { intakeCard } from './intake.js';

const REQUEST_TIMEOUT_MS = 120000;

export function requestsScreen() {
  const offs = [];
  let online = state.guideMe ? state.guideMe.status !== 'offline' : false;
  let switching = false;
  let ticker = 0;

  // ---- the switch
  const toggle = h(
    'button',
    {
      type: 'button',
      role: 'switch',
      class: 'switch',
      'data-testid': 'online-toggle',
      'aria-labelledby': 'online-title',
      on: { click: flip },
    },
    h('span', { class: 'switch-knob', 'aria-hidden': 'true' }),
  );
  const onlineTitle = h('strong', { id: 'online-title' });
  const onlineHint = h('span', { class: 'muted small' });
  const onlineCard = h('div', { class: 'online-card' }, h('div', { class: 'online-text' }, onlineTitle, onlineHint), toggle);

  // ---- what the guide earned
  const earnedToday = h('strong', { 'data-testid': 'earnings-summary-today', text: '…' });
  const earnedTotal = h('strong', { 'data-testid': 'earnings-summary-total', text: '…' });
  const earningsCard = h(
    'div',
    { class: 'card earnings-summary', 'data-testid': 'earnings-summary' },
    h('div', null, h('span', { class: 'muted small', text: 'Earned today ' }), earnedToday),
    h('div', null, h('span', { class: 'muted small', text: 'In total ' }), earnedTotal),
    h('button', { type: 'button', class: 'btn ghost small', 'data-testid': 'open-earnings', text: 'See earnings', on: { click: () => nav.go('earnings') } }),
  );
  async function loadEarnings() {
    try {
      const e = await call('guide_earnings', { limit: 1 });
      earnedToday.textContent = money(e.today, e.currency);
      earnedTotal.textContent = money(e.total, e.currency);
    } catch {
      /* the card keeps its last figures */
    }
  }

  const list = h('div', { class: 'request-list', 'aria-live': 'polite' });
  const ratingsBox = h('div', { class: 'ratings-box' }, h('p', { class: 'muted', text: 'Loading your ratings…' }));

  const el = h(
    'section',
    { class: 'screen screen-requests', 'data-testid': 'screen-requests', 'aria-labelledby': 'requests-title' },
    h('header', { class: 'screen-head' }, h('h1', { id: 'requests-title', tabindex: '-1', text: 'Requests' })),
    onlineCard,
    earningsCard,
    list,
    h('h2', { class: 'section-title', text: 'Ratings received' }),
    ratingsBox,
  );

  function showSwitch() {
    toggle.setAttribute('aria-checked', String(online));
    toggle.disabled = switching;
    const s = state.guideMe && state.guideMe.status;
    if (!online) {
      onlineTitle.textContent = "You're offline";
      onlineHint.textContent = 'Go online to receive chat requests.';
    } else if (s === 'busy') {
      onlineTitle.textContent = "You're busy";
      onlineHint.textContent = 'In a consultation; new requests wait until it ends.';
    } else {
      onlineTitle.textContent = "You're online";
      onlineHint.textContent = 'Customers can request a chat with you.';
    }
  }

  async function flip() {
    if (switching) return;
    switching = true;
    const want = !online;
    showSwitch();
    try {
      state.guideMe = await call('guide_set_online', { online: want });
      online = want;
    } catch (err) {
      toast(err);
    } finally {
      switching = false;
      showSwitch();
    }
  }

  // ---- the requests
  function requestCard(c) {
    const left = h('span', { class: 'expires' });
    const accept = h('button', { type: 'button', class: 'btn primary', 'data-testid': 'request-accept', text: 'Accept' });
    const reject = h('button', { type: 'button', class: 'btn ghost', 'data-testid': 'request-reject', text: 'Reject' });
    const card = h(
      'article',
      { class: 'request-card', 'data-testid': 'request-card', 'data-consultation-id': c.consultation_id },
      h(
        'div',
        { class: 'request-top' },
        avatar(c.customer_name, c.customer_id),
        h(
          'div',
          { class: 'request-who' },
          h('h3', { text: c.customer_name || 'Customer' }),
          h('p', { class: 'muted small' }, `Requested ${ago(c.created_at)} · ₹${c.rate_per_minute}/min`),
        ),
        left,
      ),
      intakeCard(c.intake),
      h('div', { class: 'card-actions' }, reject, accept),
    );
    card.tick = () => {
      const ms = (toMs(c.created_at) || Date.now()) + REQUEST_TIMEOUT_MS - Date.now();
      left.textContent = ms > 0 ? `${mmss(ms / 1000)} left` : 'expiring';
    };
    card.tick();
    accept.addEventListener('click', async () => {
      accept.disabled = reject.disabled = true;
      try {
        updateConsultation(await call('consultation_accept', { id: c.consultation_id }));
        state.requests.delete(c.consultation_id);
        reloadChats();
        nav.go('chat', { id: c.consultation_id });
      } catch (err) {
        accept.disabled = reject.disabled = false;
        if (err.code === 'INVALID_STATE') {
          toast('This request was already answered or cancelled', 'error');
          drop(c.consultation_id);
        } else if (err.code === 'CONSULTATION_ACTIVE') toast('Finish your current consultation first', 'error');
        else toast(err);
      }
    });
    reject.addEventListener('click', async () => {
      accept.disabled = reject.disabled = true;
      try {
        await call('consultation_reject', { id: c.consultation_id });
        drop(c.consultation_id);
      } catch (err) {
        accept.disabled = reject.disabled = false;
        if (err.code === 'INVALID_STATE') drop(c.consultation_id);
        toast(err);
      }
    });
    return card;
  }

  function drop(id) {
    state.requests.delete(id);
    renderRequests();
  }

  const cards = new Map();
  function renderRequests() {
    const pending = [...state.requests.values()]
      .filter((c) => c.status === 'requested')
      .sort((a, b) => (toMs(a.created_at) || 0) - (toMs(b.created_at) || 0));
    for (const id of [...cards.keys()]) if (!state.requests.has(id)) cards.delete(id);
    for (const c of pending) if (!cards.has(c.consultation_id)) cards.set(c.consultation_id, requestCard(c));
    if (pending.length) {
      list.replaceChildren(...pending.map((c) => cards.get(c.consultation_id)));
    } else {
      list.replaceChildren(
        h(
          'div',
          { class: 'empty' },
          h('p', { class: 'empty-title', text: 'No requests right now' }),
          h('p', {
            text: online
              ? 'New requests appear here as customers ask for you. Keep the app open.'
              : 'Switch on "online" above, and requests from customers appear here.',
          }),
        ),
      );
    }
  }

  // ---- ratings
  function stars(n) {
    return h('span', { class: 'stars', 'aria-label': `${n} of 5 stars`, text: '★'.repeat(n) + '☆'.repeat(Math.max(0, 5 - n)) });
  }

  async function loadRatings() {
    try {
      const r = await call('guide_ratings');
      const items = r.ratings || [];
      ratingsBox.replaceChildren(
        h(
          'div',
          { class: 'ratings-summary' },
          h('span', { class: 'big-rating', text: ratingText(r.rating_avg, r.rating_count) }),
          h('div', null, stars(Math.round(r.rating_avg || 0)), h('p', { class: 'muted small', text: plural(Number(r.rating_count) || 0, 'rating') })),
        ),
        items.length
          ? h(
              'ul',
              { class: 'rating-list' },
              items.map((x) =>
                h(
                  'li',
                  { class: 'rating-item' },
                  h('div', { class: 'rating-head' }, h('strong', { text: x.customer_name || 'Customer' }), stars(x.rating), h('span', { class: 'muted small', text: shortWhen(toMs(x.submitted_at)) })),
                  x.feedback_text ? h('p', { class: 'rating-text', text: x.feedback_text }) : null,
                  x.issues && x.issues.length ? h('ul', { class: 'chips' }, x.issues.map((i) => h('li', { class: 'chip', text: i }))) : null,
                ),
              ),
            )
          : h('p', { class: 'muted', text: 'No ratings yet. Customers can rate you after each consultation.' }),
      );
    } catch (err) {
      ratingsBox.replaceChildren(h('p', { class: 'muted', text: `Ratings unavailable: ${errorText(err)}` }));
    }
  }

  async function load() {
    try {
      const [me, pending] = await Promise.all([call('guide_me'), call('requests')]);
      state.guideMe = me;
      if (!switching) online = me.status !== 'offline';
      for (const c of pending) state.requests.set(c.consultation_id, c);
    } catch (err) {
      toast(err);
    }
    showSwitch();
    renderRequests();
  }

  offs.push(on('ui.requests', renderRequests));
  offs.push(
    on('presence', (e) => {
      if (e.user_id === myId() && state.guideMe) {
        state.guideMe.status = e.status;
        showSwitch();
      }
    }),
  );
  offs.push(
    on('consultation', (e) => {
      if (e.event === 'completed' || e.event === 'rejected' || e.event === 'cancelled') loadRatingsSoon();
    }),
  );
  let ratingsTimer = 0;
  function loadRatingsSoon() {
    clearTimeout(ratingsTimer);
    ratingsTimer = setTimeout(loadRatings, 1500);
  }
  ticker = setInterval(() => cards.forEach((c) => c.tick()), 1000);

  offs.push(on('wallet', loadEarnings));

  showSwitch();
  renderRequests();
  load();
  loadRatings();
  loadEarnings();

  return {
    el,
    destroy: () => {
      offs.forEach((off) => off());
      clearInterval(ticker);
      clearTimeout(ratingsTimer);
    },
  };
}
