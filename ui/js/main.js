// Start-up and the app-wide reactions: who is signed in, which home to show, what to open when
// a consultation moves, the top bar, the theme and the screen-reader announcements.

import { call, on, subscribe } from './api.js';
import * as nav from './nav.js';
import { state, changed, loadChats, loadWallet, isGuide, myId } from './state.js';
import { toast } from './toast.js';
import { h, icon, money, toMs } from './util.js';
import { applyTheme } from './theme.js';
import { loginScreen } from './views/login.js';
import { guidesScreen } from './views/guides.js';
import { waitingScreen } from './views/waiting.js';
import { requestsScreen } from './views/requests.js';
import { chatScreen } from './views/chat.js';
import { mountChatList } from './views/chatlist.js';
import { settingsScreen } from './views/settings.js';
import { ratingScreen } from './views/rating.js';
import { walletScreen } from './views/wallet.js';
import { earningsScreen } from './views/earnings.js';

applyTheme();

nav.register('login', loginScreen);
nav.register('guides', guidesScreen);
nav.register('waiting', waitingScreen);
nav.register('requests', requestsScreen);
nav.register('chat', chatScreen);
nav.register('settings', settingsScreen);
nav.register('rating', ratingScreen);
nav.register('chats', () => null);
nav.register('wallet', walletScreen);
nav.register('earnings', earningsScreen);

let chatList = null;

// ---- the top bar

function wireTopbar() {
  const back = document.querySelector('[data-testid=back]');
  back.append(icon('back'));
  back.addEventListener('click', () => nav.back());
  const icons = { home: 'home', chats: 'chats', settings: 'settings' };
  for (const b of document.querySelectorAll('[data-nav]')) {
    b.prepend(icon(icons[b.dataset.nav]));
    b.addEventListener('click', () => {
      const target = b.dataset.nav;
      if (target === 'home') nav.home();
      else nav.go(target);
    });
  }
  const chatsTab = document.querySelector('[data-nav=chats]');
  const badge = h('span', { class: 'badge tab-badge', hidden: true });
  chatsTab.append(badge);
  const update = () => {
    let n = 0;
    for (const item of state.chats.values()) n += Number(item.unread_count) || 0;
    badge.hidden = n === 0;
    badge.textContent = String(n);
    chatsTab.setAttribute('aria-label', n ? `Chats, ${n} unread` : 'Chats');
  };
  on('ui.chats', update);
  // The balance, always in sight: a customer's opens the wallet, a guide's the earnings.
  const wallet = document.getElementById('wallet-pill');
  wallet.addEventListener('click', () => nav.go(isGuide() ? 'earnings' : 'wallet'));
  const showWallet = () => {
    const w = state.wallet;
    wallet.hidden = !state.identity || !w;
    if (!w) return;
    const amount = money(w.balance, w.currency);
    wallet.textContent = amount;
    wallet.dataset.balance = String(w.balance);
    wallet.setAttribute('aria-label', isGuide() ? `Your balance ${amount}: see earnings` : `Wallet balance ${amount}: open the wallet`);
  };
  on('ui.wallet', showWallet);
  on('ui.connection', showWallet);
  const pill = document.getElementById('conn-pill');
  on('ui.connection', () => {
    const s = state.connection;
    const bad = state.identity && s !== 'online' && s !== 'polling';
    pill.hidden = !bad;
    pill.textContent = s === 'offline' ? 'Offline' : s === 'connecting' ? 'Connecting…' : 'Not connected';
    pill.dataset.state = s;
  });
}

// ---- signing in and out

let entered = null; // the user id whose app is on show

async function enter(identity) {
  if (entered === identity.user_id) {
    state.identity = { ...state.identity, ...identity };
    return;
  }
  entered = identity.user_id;
  state.identity = identity;
  state.chats.clear();
  state.requests.clear();
  state.guides.clear();
  state.wallet = null;
  loadWallet();
  nav.setHome(isGuide() ? 'requests' : 'guides');
  chatList = chatList || mountChatList(document.getElementById('sidebar'));
  chatList.reset();
  nav.home();
  changed('connection');
  call('me')
    .then((me) => {
      state.me = me;
      changed('me');
    })
    .catch(() => {});
  await loadChats();
  resumeActive();
}

/** After a restart: back to a request still waiting, or into the chat still going. */
function resumeActive() {
  const top = nav.current();
  if (!top || (top.name !== 'guides' && top.name !== 'requests')) return;
  for (const item of state.chats.values()) {
    const c = item.consultation;
    if (c.status === 'accepted' || c.status === 'in_progress') {
      nav.go('chat', { id: c.consultation_id });
      return;
    }
    if (c.status === 'requested' && !isGuide()) {
      nav.go('waiting', { id: c.consultation_id, createdAt: toMs(c.created_at), guideName: c.guide_name });
      return;
    }
  }
}

function leave(reason) {
  entered = null;
  state.identity = null;
  state.me = null;
  state.chats.clear();
  state.requests.clear();
  state.openChat = null;
  state.wallet = null;
  changed('wallet');
  if (chatList) chatList.reset();
  nav.setHome('login');
  nav.go('login', { reason: reason || '' }, { reset: true });
  changed('connection');
}

/** Signs out here (the shell also sends `signed_out`, which finds nothing left to do). */
async function signOut() {
  try {
    await call('sign_out');
  } catch (err) {
    toast(err);
  }
  if (state.identity) leave('');
}

on('signed_in', (e) => enter({ user_id: e.user_id, user_type: e.user_type }));
on('signed_out', (e) => {
  if (state.identity || nav.current()?.name !== 'login') leave(e.reason);
  else nav.go('login', { reason: e.reason || '' }, { reset: true });
});
on('ui.signed_in', (e) => enter(e.detail));
on('ui.sign_out', signOut);

// ---- consultations moving

on('consultation', (e) => {
  const c = e.consultation;
  if (!state.identity) return;
  if (isGuide()) {
    const top = nav.current();
    if (e.event === 'requested' && top && top.name !== 'requests') {
      toast(`New chat request from ${c.customer_name || 'a customer'}`);
    }
    return;
  }
  const top = nav.current();
  const waitingFor = top && top.name === 'waiting' && top.params.id === c.consultation_id;
  if (e.event === 'accepted' || e.event === 'started') {
    if (waitingFor) nav.go('chat', { id: c.consultation_id }, { replace: true });
    return;
  }
  if (!waitingFor) return;
  if (e.event === 'rejected') {
    toast(`${c.guide_name} can't take your request now. Try another astrologer.`);
    nav.home();
  } else if (e.event === 'cancelled') {
    const timeout = /timeout|no.?answer|expired/i.test(c.end_reason || '');
    toast(timeout ? `No answer from ${c.guide_name}. Try another astrologer.` : 'The request was cancelled.');
    nav.home();
  }
});

on('open_consultation', (e) => {
  if (state.identity && e.consultation_id) nav.go('chat', { id: e.consultation_id });
});

// ---- screen-reader announcements of incoming messages

on('message_added', (e) => {
  const m = e.message;
  if (!state.identity || m.sender_id === myId() || m.kind === 'system' || m.status !== 'received') return;
  const at = toMs(m.sent_at) || toMs(m.created_at);
  if (!(Date.now() - at < 120000)) return; // history being loaded, not news
  const item = state.chats.get(m.consultation_id);
  const c = item && item.consultation;
  const name =
    (item && item.other_party && item.other_party.display_name) ||
    (c ? (isGuide() ? c.customer_name : c.guide_name) : 'New message');
  const live = document.getElementById('live');
  live.append(h('p', { text: `${name}: ${m.kind === 'image' ? 'sent a photo' : m.content}` }));
  while (live.children.length > 5) live.firstElementChild.remove();
});

// ---- start

async function boot() {
  wireTopbar();
  try {
    await subscribe();
    const info = await call('app_info');
    state.info = info;
    state.connection = info.connection || 'idle';
    state.queued = Number(info.queued) || 0;
    if (info.identity) await enter(info.identity);
    else if (!state.identity) nav.go('login', {}, { reset: true });
    changed('connection');
  } catch (err) {
    const main = document.getElementById('main');
    main.replaceChildren(
      h(
        'div',
        { class: 'boot', role: 'alert' },
        h('span', { class: 'brand-mark big', 'aria-hidden': 'true', text: '✦' }),
        h('p', { text: `Tara could not start: ${err.message || err}` }),
      ),
    );
  }
}

boot();
