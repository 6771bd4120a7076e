// What the UI knows, kept current from the shell's events. Views read it and listen to the
// `ui.*` events emitted here when a part of it changes.

import { call, emit, on } from './api.js';
import { debounce, toMs } from './util.js';

export const state = {
  identity: null, // {user_id, user_type, session_id}
  me: null, // {id, display_name, phone, …}
  info: null, // app_info
  connection: 'idle',
  queued: 0,
  guides: new Map(), // guide id → Guide
  presence: new Map(), // user id → {status, last_seen}
  chats: new Map(), // consultation id → ChatListItem
  typing: new Map(), // consultation id → {user_id, timer}
  uploads: new Map(), // client_msg_id → {sent, total}
  requests: new Map(), // consultation id → Consultation (a guide's pending requests)
  profiles: [],
  profileId: '', // the birth details picked for the next request ('' for none)
  guideMe: null,
  openChat: null, // the consultation id of the chat on screen
  wallet: null, // {balance, currency}: the server's word, from `wallet` calls and events
};

/** Minutes of balance a request needs (the server refuses fewer). */
export const MIN_MINUTES = 5;

export async function loadWallet() {
  if (!state.identity) return;
  try {
    state.wallet = await call('wallet');
    changed('wallet');
  } catch {
    /* shown as unknown until the next event or visit */
  }
}

/** Whether the wallet holds enough to ask this guide for a chat (unknown counts as enough). */
export function canAfford(guide) {
  if (!state.wallet) return true;
  return state.wallet.balance >= MIN_MINUTES * (Number(guide.rate_per_minute) || 0);
}

on('wallet', (e) => {
  state.wallet = { balance: Number(e.balance) || 0, currency: e.currency || 'INR' };
  changed('wallet');
});

/** Tells listeners that one part of the state changed. */
export function changed(part, detail) {
  emit({ type: `ui.${part}`, detail });
}

export function isGuide() {
  return state.identity && state.identity.user_type === 'guide';
}

export function myId() {
  return state.identity ? state.identity.user_id : null;
}

// ---- ratings given. The server says so (`consultation.rated`); until the consultation is read
// again after rating, this device remembers, and ALREADY_RATED teaches it too.

function ratedKey() {
  return `tara.rated.${myId()}`;
}

export function isRated(consultationId) {
  try {
    return JSON.parse(localStorage.getItem(ratedKey()) || '[]').includes(consultationId);
  } catch {
    return false;
  }
}

export function markRated(consultationId) {
  try {
    const list = JSON.parse(localStorage.getItem(ratedKey()) || '[]');
    if (!list.includes(consultationId)) list.push(consultationId);
    localStorage.setItem(ratedKey(), JSON.stringify(list.slice(-500)));
  } catch {
    /* storage full or off: the server still refuses a second rating */
  }
}

// ---- the chat list

/** When a chat last moved, for ordering the list. */
export function activity(item) {
  const c = item.consultation;
  const m = item.last_message;
  return Math.max(
    toMs(c.last_message_at) || 0,
    m ? toMs(m.sent_at) || toMs(m.created_at) || 0 : 0,
    toMs(c.ended_at) || 0,
    toMs(c.accepted_at) || 0,
    toMs(c.created_at) || 0,
  );
}

export async function loadChats() {
  if (!state.identity) return;
  try {
    const items = await call('chat_list');
    state.chats = new Map(items.map((i) => [i.consultation.consultation_id, i]));
    for (const i of items) {
      if (i.other_party && i.other_party.status && !state.presence.has(i.other_party.id)) {
        state.presence.set(i.other_party.id, { status: i.other_party.status, last_seen: null });
      }
    }
    changed('chats');
  } catch {
    /* the list keeps what it had; the toast of the caller (if any) said why */
  }
}

export const reloadChats = debounce(loadChats, 250);

const STAGE = { requested: 0, accepted: 1, in_progress: 2, completed: 3, cancelled: 3 };

/** Whether `c` is an older copy of `than`: an earlier stage of the same consultation. */
export function isOlder(c, than) {
  return (STAGE[c.status] ?? 0) < (STAGE[than.status] ?? 0);
}

/** Puts a fresher Consultation into the chat list (and requests it if it is new). */
export function updateConsultation(c) {
  const item = state.chats.get(c.consultation_id);
  if (item && isOlder(c, item.consultation)) return;
  if (item) {
    item.consultation = { ...item.consultation, ...c };
    changed('chats');
  } else {
    reloadChats();
  }
}

// ---- reducers of the shell's events

on('connection', (e) => {
  const was = state.connection;
  state.connection = e.state;
  changed('connection');
  if ((e.state === 'online' || e.state === 'polling') && was !== 'online' && was !== 'polling') {
    reloadChats();
    loadWallet();
  }
});

on('outbox', (e) => {
  state.queued = Number(e.queued) || 0;
  changed('connection');
});

on('presence', (e) => {
  state.presence.set(e.user_id, { status: e.status, last_seen: e.last_seen, at: Date.now() });
  const g = state.guides.get(e.user_id);
  if (g) {
    g.status = e.status;
    if (e.last_seen) g.last_seen = e.last_seen;
  }
  for (const item of state.chats.values()) {
    if (item.other_party && item.other_party.id === e.user_id) item.other_party.status = e.status;
  }
  changed('presence', e.user_id);
});

on('typing', (e) => {
  if (e.user_id === myId()) return;
  const old = state.typing.get(e.consultation_id);
  if (old) clearTimeout(old.timer);
  if (e.is_typing) {
    // The server ends a typing state itself after 6 s; hide it then even if the "false" is lost.
    const timer = setTimeout(() => {
      state.typing.delete(e.consultation_id);
      changed('typing', e.consultation_id);
    }, 6000);
    state.typing.set(e.consultation_id, { user_id: e.user_id, timer });
  } else {
    state.typing.delete(e.consultation_id);
  }
  changed('typing', e.consultation_id);
});

/** Stops showing "typing…" for a consultation (their message arrived). */
export function clearTyping(consultationId) {
  const old = state.typing.get(consultationId);
  if (!old) return;
  clearTimeout(old.timer);
  state.typing.delete(consultationId);
  changed('typing', consultationId);
}

on('unread', (e) => {
  const item = state.chats.get(e.consultation_id);
  if (item) {
    item.unread_count = Number(e.unread_count) || 0;
    changed('chats');
  } else {
    reloadChats();
  }
});

function onMessage(e) {
  const m = e.message;
  const item = state.chats.get(m.consultation_id);
  if (!item) {
    reloadChats();
    return;
  }
  const last = item.last_message;
  const newer =
    !last ||
    last.client_msg_id === m.client_msg_id ||
    (m.seq != null && last.seq != null ? m.seq >= last.seq : (toMs(m.created_at) || 0) >= (toMs(last.sent_at || last.created_at) || 0));
  if (newer) {
    item.last_message = m;
    changed('chats');
  }
  if (e.type === 'message_added' && m.sender_id !== myId() && m.kind !== 'system') clearTyping(m.consultation_id);
}
on('message_added', onMessage);
on('message_updated', onMessage);

on('consultation', (e) => {
  const c = e.consultation;
  updateConsultation(c);
  if (isGuide()) {
    if (e.event === 'requested' && c.status === 'requested') state.requests.set(c.consultation_id, c);
    else state.requests.delete(c.consultation_id);
    changed('requests');
  }
});

on('upload_progress', (e) => {
  state.uploads.set(e.client_msg_id, { sent: Number(e.sent) || 0, total: Number(e.total) || 0 });
  changed('upload', e.client_msg_id);
});
