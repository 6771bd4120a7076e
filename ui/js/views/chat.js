// The chat: header with presence or "typing…", messages in seq order with date separators and
// ticks, older pages on scroll, the composer (text, images, typing signals), the offline banner,
// ending the consultation, and read receipts while the window is visible.

import { call, emit, on } from '../api.js';
import * as nav from '../nav.js';
import { state, changed, isGuide, isOlder, isRated, myId, updateConsultation } from '../state.js';
import { toast } from '../toast.js';
import { avatar, clock, dayKey, dayLabel, duration, h, icon, lastSeen, money, plural, toMs } from '../util.js';
import { bubble, isOwn, signature, updateProgress } from './bubble.js';
import { intakeCard } from './intake.js';
import { recharge, rechargeKey, rechargeNote } from './wallet.js';

const PAGE = 50;
const ACTIVE = new Set(['accepted', 'in_progress']);
const ENDED = new Set(['completed', 'cancelled']);
const STATUS_RANK = { sending: 0, sent: 1, delivered: 2, read: 3 };

export function chatScreen({ id }) {
  const offs = [];
  const timers = new Set();
  state.openChat = id;
  let consultation = state.chats.get(id) ? state.chats.get(id).consultation : null;
  const msgs = new Map(); // client_msg_id (or message_id) → LocalMessage
  const nodes = new Map(); // same key → {el, sig}
  const figures = new Map(); // same key → <figure>, kept across rebuilds
  let hasMore = true;
  let loadingOlder = false;
  let markedSeq = 0;
  let theirRead = 0;
  let theirDelivered = 0;
  let leftForRating = false;
  let destroyed = false;

  // ---- header
  const name = h('h1', { class: 'chat-name', id: 'chat-title', tabindex: '-1' });
  const status = h('p', { class: 'chat-status', 'data-testid': 'chat-header-status', 'aria-live': 'off' });
  const avatarBox = h('span', { class: 'avatar-wrap' });
  // Time left on the customer's balance: counted down from the server's ends_at, never guessed.
  const timeLeft = h('p', { class: 'time-left', 'data-testid': 'time-left', hidden: true, 'aria-live': 'off' });
  const endBtn = h('button', { type: 'button', class: 'btn ghost small danger', 'data-testid': 'end-chat', text: 'End chat', hidden: true, on: { click: askEnd } });
  const keepBtn = h('button', { type: 'button', class: 'btn ghost small', text: 'Keep chatting', on: { click: closeConfirm } });
  const confirmBtn = h('button', { type: 'button', class: 'btn danger-solid small', 'data-testid': 'end-chat-confirm', text: 'End now', on: { click: endNow } });
  const confirmBar = h(
    'div',
    { class: 'confirm-bar', role: 'group', 'aria-label': 'End this consultation?', hidden: true },
    h('span', { text: 'End this consultation? You can’t send messages after.' }),
    h('span', { class: 'confirm-actions' }, keepBtn, confirmBtn),
  );

  const intakeBox = h('div', { class: 'chat-intake', hidden: true });

  // ---- messages
  const list = h('div', { class: 'messages-inner' });
  const olderNote = h('p', { class: 'older-note muted small', hidden: true });
  const scroller = h('div', { class: 'messages', tabindex: '0', role: 'region', 'aria-label': 'Messages' }, olderNote, list);
  const emptyNote = h('div', { class: 'empty chat-empty', hidden: true });

  // ---- the minute before the balance runs out
  const soonText = h('span', { class: 'ending-soon-text' });
  const soonBtn = h('button', { type: 'button', class: 'btn primary small', 'data-testid': 'ending-soon-recharge', on: { click: topUp } });
  const soonBanner = h('div', { class: 'ending-soon', 'data-testid': 'ending-soon', role: 'alert', hidden: true }, soonText, soonBtn);
  // The server says when the last minute starts (`ending_soon`) and when a recharge moved the
  // end (`extended`). Until it has said either, a chat opened in its last minute shows it too.
  let warned = null;
  let topUpKey = rechargeKey();
  let toppingUp = false;

  // ---- silence, and a guide who left
  const idleBanner = h('div', {
    class: 'ending-soon idle-warning',
    'data-testid': 'idle-warning',
    role: 'status',
    hidden: true,
    text: 'Nobody has written for a while. This chat ends in 2 minutes unless someone does.',
  });
  const awayText = h('span');
  const awayEnd = h('button', { type: 'button', class: 'btn primary small', 'data-testid': 'guide-away-end', text: 'End now', on: { click: endNow } });
  const awayBanner = h('div', { class: 'ending-soon guide-away', 'data-testid': 'guide-away', role: 'alert', hidden: true }, awayText, awayEnd);

  // ---- banner, end note, composer
  const banner = h('div', { class: 'offline-banner', 'data-testid': 'offline-banner', role: 'status', hidden: true });
  const endedNote = h('div', { class: 'ended-note', hidden: true });
  const fileInput = h('input', {
    type: 'file',
    accept: 'image/*',
    class: 'visually-hidden',
    'data-testid': 'composer-attach',
    tabindex: '-1',
    'aria-hidden': 'true',
    on: { change: onFiles },
  });
  const attachBtn = h('button', { type: 'button', class: 'icon-btn', 'aria-label': 'Attach an image', on: { click: () => fileInput.click() } }, icon('attach'));
  const input = h('textarea', {
    class: 'composer-input',
    rows: '1',
    'data-testid': 'composer-input',
    'aria-label': 'Message',
    placeholder: 'Write a message',
    maxlength: '4000',
    on: { input: onInput, keydown: onKey },
  });
  const sendBtn = h('button', { type: 'submit', class: 'icon-btn send', 'data-testid': 'composer-send', 'aria-label': 'Send' }, icon('send'));
  const composer = h(
    'form',
    { class: 'composer', novalidate: true, on: { submit: (e) => (e.preventDefault(), sendText()) } },
    fileInput,
    attachBtn,
    input,
    sendBtn,
  );

  const el = h(
    'section',
    { class: 'screen screen-chat', 'data-testid': 'screen-chat', 'aria-labelledby': 'chat-title' },
    h(
      'header',
      { class: 'chat-head' },
      avatarBox,
      h('div', { class: 'chat-who' }, name, status),
      timeLeft,
      endBtn,
    ),
    confirmBar,
    soonBanner,
    idleBanner,
    awayBanner,
    intakeBox,
    scroller,
    emptyNote,
    banner,
    endedNote,
    composer,
  );

  el.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && !confirmBar.hidden) {
      e.preventDefault();
      closeConfirm();
    }
  });

  // ---- who is on the other side

  function other() {
    if (!consultation) return { id: null, name: '' };
    return isGuide()
      ? { id: consultation.customer_id, name: consultation.customer_name || 'Customer' }
      : { id: consultation.guide_id, name: consultation.guide_name || 'Astrologer' };
  }

  function renderHeader() {
    const o = other();
    name.textContent = o.name || 'Chat';
    avatarBox.replaceChildren(o.name ? avatar(o.name, o.id) : '');
    const c = consultation;
    endBtn.hidden = !c || !ACTIVE.has(c.status);
    if (endBtn.hidden) closeConfirm();
    if (isGuide() && c && c.intake && !intakeBox.childElementCount) {
      intakeBox.append(h('details', null, h('summary', { text: `Birth details: ${c.intake.name}` }), intakeCard(c.intake)));
    }
    intakeBox.hidden = !intakeBox.childElementCount;
    renderStatus();
  }

  function renderStatus() {
    const o = other();
    const t = state.typing.get(id);
    if (t && t.user_id !== myId() && consultation && !ENDED.has(consultation.status)) {
      status.replaceChildren(h('span', { class: 'typing', 'data-testid': 'typing-indicator', text: 'typing…' }));
      status.classList.add('is-typing');
      return;
    }
    status.classList.remove('is-typing');
    const p = o.id != null ? state.presence.get(o.id) : null;
    let text = '';
    if (p && (p.status === 'online' || p.status === 'busy')) text = 'online';
    else if (p) text = p.last_seen ? lastSeen(p.last_seen) : 'offline';
    status.classList.toggle('online', text === 'online');
    status.replaceChildren(text);
  }

  /** ms until the balance runs out, or null when the chat does not run on one. */
  function msLeft() {
    const c = consultation;
    if (!c || c.status !== 'in_progress' || !c.ends_at) return null;
    return toMs(c.ends_at) - Date.now();
  }

  function tenMinutes() {
    const rate = (consultation && Number(consultation.rate_per_minute)) || 0;
    return Math.max(1, 10 * rate);
  }

  function renderTime() {
    const left = msLeft();
    timeLeft.hidden = left === null;
    if (warned === null && left !== null) warned = left <= 60000;
    const soon = left !== null && warned;
    soonBanner.hidden = !soon || left <= 0;
    if (left === null) return;
    const s = Math.max(0, Math.floor(left / 1000));
    const hh = Math.floor(s / 3600);
    const mm = Math.floor((s % 3600) / 60);
    const ss = String(s % 60).padStart(2, '0');
    timeLeft.textContent = hh ? `${hh}:${String(mm).padStart(2, '0')}:${ss} left` : `${mm}:${ss} left`;
    timeLeft.classList.toggle('urgent', left <= 60000);
    timeLeft.setAttribute('aria-label', `${hh ? `${hh} h ` : ''}${mm} min ${Number(ss)} s left on the balance`);
    if (!soonBanner.hidden) {
      const rate = consultation.rate_per_minute;
      if (isGuide()) {
        soonText.textContent = "The customer's balance runs out in under a minute.";
        soonBtn.hidden = true;
      } else {
        soonText.textContent = 'Your balance runs out in under a minute.';
        soonBtn.hidden = false;
        soonBtn.disabled = toppingUp;
        soonBtn.textContent = `Add 10 minutes (${money(10 * rate, (state.wallet && state.wallet.currency) || 'INR')})`;
      }
    }
  }

  async function topUp() {
    if (toppingUp) return;
    toppingUp = true;
    renderTime();
    try {
      const r = await recharge(tenMinutes(), topUpKey);
      topUpKey = rechargeKey();
      toast(rechargeNote(r));
    } catch (err) {
      toast(err);
    } finally {
      toppingUp = false;
      renderTime();
    }
  }

  function renderAway() {
    const c = consultation;
    const away = !isGuide() && c && c.status === 'in_progress' && c.guide_away_at;
    awayBanner.hidden = !away;
    if (away) {
      awayText.textContent = `${c.guide_name} seems to have left. End now: nothing after ${clock(toMs(c.guide_away_at))} is charged.`;
    }
    if (!c || c.status !== 'in_progress') idleBanner.hidden = true;
  }

  function renderFooter() {
    const c = consultation;
    const ended = c && ENDED.has(c.status);
    // Until the consultation is known the composer stays usable: a send that is refused shows
    // as a failed message, which is better than a field that ignores the person.
    const blocked = !!c && !ACTIVE.has(c.status);
    for (const x of [input, sendBtn, attachBtn, fileInput]) x.disabled = blocked;
    input.placeholder = !blocked ? 'Write a message' : ended ? 'This consultation has ended' : 'Waiting for the astrologer to accept';
    endedNote.hidden = !ended;
    if (ended) {
      const parts = [h('p', { class: 'ended-title', text: c.status === 'cancelled' ? 'This request was cancelled' : 'This consultation has ended' })];
      if (c.status === 'completed' && c.duration_seconds != null) {
        const charged = c.amount_charged != null ? ` · ${money(c.amount_charged)} charged` : '';
        parts.push(h('p', { class: 'muted small', text: `${duration(c.duration_seconds)} · ₹${c.rate_per_minute}/min${charged}` }));
      }
      if (c.end_reason === 'balance_exhausted') {
        parts.push(h('p', { class: 'small', text: isGuide() ? "The customer's balance ran out." : 'Your balance ran out.' }));
      }
      if (!isGuide() && c.status === 'completed' && !c.rated && !isRated(id)) {
        parts.push(h('button', { type: 'button', class: 'btn primary small', text: 'Rate this consultation', on: { click: () => nav.go('rating', { id }) } }));
      }
      endedNote.replaceChildren(...parts);
    }
    renderBanner();
  }

  function renderBanner() {
    const s = state.connection;
    const connected = s === 'online' || s === 'polling';
    const show = !connected && !!consultation && !ENDED.has(consultation.status);
    banner.hidden = !show;
    if (show) {
      const head = s === 'offline' ? 'Offline' : 'Connecting…';
      banner.textContent = state.queued > 0 ? `${head} — ${plural(state.queued, 'message')} waiting to send` : `${head} — messages will send when you're back online`;
    }
  }

  // ---- messages

  function key(m) {
    return m.client_msg_id || m.message_id;
  }

  /** Adds or updates a message; a status never goes back (a late "delivered" after "read"). */
  function upsert(m) {
    const k = key(m);
    const old = msgs.get(k);
    let next = old ? { ...old, ...m } : { ...m };
    // A late answer can carry an older status (the send's "sending" after the ack's "sent").
    // A retry starts from "failed", which has no rank, so it does go back to "sending".
    if (old && isOwn(next) && STATUS_RANK[old.status] > STATUS_RANK[m.status]) next.status = old.status;
    if (isOwn(next) && next.seq != null && STATUS_RANK[next.status] !== undefined) {
      if (next.seq <= theirRead) next.status = 'read';
      else if (next.seq <= theirDelivered && STATUS_RANK[next.status] < 2) next.status = 'delivered';
    }
    msgs.set(k, next);
  }

  function ordered() {
    return [...msgs.values()].sort((a, b) => {
      const as = a.seq != null;
      const bs = b.seq != null;
      if (as && bs) return a.seq - b.seq;
      if (as !== bs) return as ? -1 : 1;
      return (toMs(a.created_at) || 0) - (toMs(b.created_at) || 0);
    });
  }

  function nearBottom() {
    return scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 120;
  }

  function scrollToBottom() {
    scroller.scrollTop = scroller.scrollHeight;
  }

  /** Rebuilds the list from `msgs`, reusing unchanged bubbles. `keep`: bottom | anchor | auto. */
  function render(keep = 'auto') {
    const wasNear = nearBottom();
    const fromBottom = scroller.scrollHeight - scroller.scrollTop;
    const children = [];
    let day = null;
    const seen = new Set();
    const sender = other().name;
    for (const m of ordered()) {
      const when = toMs(m.sent_at) || toMs(m.created_at) || Date.now();
      const d = dayKey(when);
      if (d !== day) {
        day = d;
        children.push(h('div', { class: 'day-sep', role: 'separator' }, h('span', { text: dayLabel(when) })));
      }
      const k = key(m);
      seen.add(k);
      const sig = signature(m);
      let node = nodes.get(k);
      if (!node || node.sig !== sig) {
        node = { el: bubble(m, { figures, onRetry: retry, senderName: sender, onImageLoad: onImageLoad }), sig };
        nodes.set(k, node);
      }
      children.push(node.el);
    }
    for (const k of [...nodes.keys()]) if (!seen.has(k)) nodes.delete(k);
    list.replaceChildren(...children);
    emptyNote.hidden = msgs.size > 0;
    if (keep === 'bottom' || (keep === 'auto' && wasNear)) scrollToBottom();
    else if (keep === 'anchor') scroller.scrollTop = scroller.scrollHeight - fromBottom;
  }

  function onImageLoad() {
    if (nearBottom() || scroller.dataset.stick === 'yes') scrollToBottom();
  }

  /** Tells the server what the person has seen: the newest message from the other side. */
  function markRead() {
    if (destroyed || document.visibilityState !== 'visible') return;
    const top = nav.current();
    if (!top || top.name !== 'chat' || top.params.id !== id) return;
    let max = 0;
    for (const m of msgs.values()) if (m.seq != null && !isOwn(m) && m.seq > max) max = m.seq;
    if (max > markedSeq) {
      const prev = markedSeq;
      markedSeq = max;
      call('mark_read', { id, upToSeq: max }).catch(() => {
        markedSeq = prev;
      });
    }
  }

  async function loadLatest() {
    try {
      const page = await call('messages', { id, limit: PAGE });
      if (destroyed) return;
      for (const m of page) upsert(m);
      hasMore = page.length >= PAGE && lowestSeq() > 1;
      scroller.dataset.stick = 'yes';
      render('bottom');
      setTimer(() => delete scroller.dataset.stick, 1500);
      markRead();
    } catch (err) {
      emptyNote.hidden = false;
      emptyNote.replaceChildren(h('p', { class: 'empty-title', text: "Couldn't load the messages" }), h('p', { text: err.message || '' }));
    }
  }

  function lowestSeq() {
    let low = Infinity;
    for (const m of msgs.values()) if (m.seq != null && m.seq < low) low = m.seq;
    return low;
  }

  async function loadOlder() {
    const before = lowestSeq();
    if (loadingOlder || !hasMore || !Number.isFinite(before) || before <= 1) return;
    loadingOlder = true;
    olderNote.hidden = false;
    olderNote.textContent = 'Loading earlier messages…';
    try {
      const page = await call('messages', { id, beforeSeq: before, limit: PAGE });
      if (destroyed) return;
      for (const m of page) upsert(m);
      hasMore = page.length >= PAGE && lowestSeq() > 1;
      render('anchor');
      olderNote.hidden = true;
    } catch (err) {
      olderNote.textContent = `Couldn't load earlier messages: ${err.message || ''}`;
    } finally {
      loadingOlder = false;
    }
    if (!hasMore) {
      olderNote.hidden = false;
      olderNote.textContent = 'The beginning of this consultation';
    }
  }

  scroller.addEventListener('scroll', () => {
    if (scroller.scrollTop < 80) loadOlder();
  });

  // ---- sending

  let typingSentAt = 0;
  let typingOn = false;
  let idleTimer = 0;

  function canSend() {
    return !consultation || ACTIVE.has(consultation.status);
  }

  function onInput() {
    autosize();
    if (!canSend()) return;
    idleBanner.hidden = true; // typing counts as activity for the server too
    if (!input.value.trim()) {
      stopTyping();
      return;
    }
    const now = Date.now();
    if (now - typingSentAt >= 3000) {
      typingSentAt = now;
      typingOn = true;
      call('typing', { id, isTyping: true }).catch(() => {});
    }
    clearTimeout(idleTimer);
    idleTimer = setTimeout(stopTyping, 4000);
  }

  function stopTyping() {
    clearTimeout(idleTimer);
    if (!typingOn) return;
    typingOn = false;
    typingSentAt = 0;
    call('typing', { id, isTyping: false }).catch(() => {});
  }

  function onKey(e) {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      sendText();
    }
  }

  function autosize() {
    input.style.height = 'auto';
    input.style.height = `${Math.min(input.scrollHeight, 160)}px`;
  }

  async function sendText() {
    const text = input.value.trim();
    if (!text || !canSend()) return;
    if ([...text].length > 4000) {
      toast('A message can hold at most 4000 characters', 'error');
      return;
    }
    input.value = '';
    autosize();
    stopTyping();
    try {
      const m = await call('send_text', { id, text });
      if (destroyed) return;
      upsert(m);
      render('bottom');
    } catch (err) {
      toast(err);
      if (!input.value) {
        input.value = text;
        autosize();
      }
    }
  }

  async function onFiles() {
    const files = [...fileInput.files];
    fileInput.value = '';
    for (const file of files) {
      if (!file.type.startsWith('image/')) {
        toast(`${file.name} is not an image`, 'error');
        continue;
      }
      try {
        const buf = await file.arrayBuffer();
        const m = await call('send_image', new Uint8Array(buf), { headers: { 'x-consultation-id': id } });
        if (destroyed) return;
        upsert(m);
        render('bottom');
      } catch (err) {
        toast(err);
      }
    }
    input.focus();
  }

  async function retry(m) {
    try {
      const again = await call('retry', { clientMsgId: m.client_msg_id });
      upsert(again);
      render();
    } catch (err) {
      toast(err);
    }
  }

  // ---- ending

  function askEnd() {
    confirmBar.hidden = false;
    keepBtn.focus();
  }

  function closeConfirm() {
    if (confirmBar.hidden) return;
    const hadFocus = confirmBar.contains(document.activeElement);
    confirmBar.hidden = true;
    if (hadFocus && !endBtn.hidden) endBtn.focus();
  }

  async function endNow() {
    confirmBtn.disabled = true;
    try {
      const c = await call('consultation_complete', { id });
      setConsultation(c);
    } catch (err) {
      toast(err);
    } finally {
      confirmBtn.disabled = false;
      closeConfirm();
    }
  }

  function setConsultation(c) {
    if (!c || destroyed) return;
    // A late answer (the join's "accepted") must not undo a newer event ("started").
    if (consultation && isOlder(c, consultation)) return;
    const before = consultation && consultation.status;
    consultation = { ...(consultation || {}), ...c };
    updateConsultation(consultation);
    renderHeader();
    renderFooter();
    renderTime();
    renderAway();
    if (ACTIVE.has(consultation.status) && (document.activeElement === document.body || document.activeElement === name)) {
      input.focus();
    }
    // Ended while on screen: on to the rating (an ended chat opened later shows a button instead).
    const endedNow = before && !ENDED.has(before) && consultation.status === 'completed';
    if (endedNow && !isGuide() && !consultation.rated && !isRated(id) && !leftForRating) {
      leftForRating = true;
      stopTyping();
      nav.go('rating', { id }, { replace: true });
    }
  }

  // ---- opening

  function applyParticipants(participants) {
    for (const p of participants || []) {
      if (p.user_id === myId()) continue;
      state.presence.set(p.user_id, { status: p.is_online ? 'online' : 'offline', last_seen: p.last_seen });
      theirRead = Math.max(theirRead, Number(p.read_seq) || 0);
      theirDelivered = Math.max(theirDelivered, Number(p.delivered_seq) || 0);
      if (p.is_typing) emit({ type: 'typing', consultation_id: id, user_id: p.user_id, is_typing: true });
    }
  }

  async function open() {
    renderHeader();
    renderFooter();
    const messagesLoaded = loadLatest();
    try {
      if (!consultation || !ENDED.has(consultation.status)) {
        try {
          const j = await call('consultation_join', { id });
          applyParticipants(j.participants);
          setConsultation(j.consultation);
        } catch (err) {
          if (err.code !== 'INVALID_STATE') throw err;
          setConsultation(await call('consultation_get', { id }));
        }
      } else {
        setConsultation(await call('consultation_get', { id }));
      }
    } catch (err) {
      toast(err);
    }
    await messagesLoaded;
    if (theirRead || theirDelivered) {
      for (const m of [...msgs.values()]) upsert(m);
      render();
    }
  }

  // ---- events

  const onMsg = (e) => {
    const m = e.message;
    if (m.consultation_id !== id) return;
    if (e.type === 'message_added' && m.kind !== 'system') idleBanner.hidden = true;
    const mine = isOwn(m);
    upsert(m);
    render(mine && e.type === 'message_added' ? 'bottom' : 'auto');
    markRead();
  };
  offs.push(on('message_added', onMsg), on('message_updated', onMsg));
  offs.push(
    on('consultation', (e) => {
      if (e.consultation.consultation_id !== id) return;
      if (e.event === 'ending_soon') warned = true;
      if (e.event === 'extended') warned = false;
      if (e.event === 'idle_warning') idleBanner.hidden = false;
      else idleBanner.hidden = true;
      // The server's copy says whether the guide is away; a newer state without it clears it.
      if (e.event === 'guide_back') e.consultation.guide_away_at = null;
      setConsultation(e.consultation);
    }),
  );
  offs.push(
    on('receipt', (e) => {
      if (e.consultation_id !== id || e.user_id === myId()) return;
      theirRead = Math.max(theirRead, Number(e.read_seq) || 0);
      theirDelivered = Math.max(theirDelivered, Number(e.delivered_seq) || 0);
      for (const m of [...msgs.values()]) if (isOwn(m)) upsert(m);
      render();
    }),
  );
  offs.push(
    on('ui.typing', (e) => {
      if (e.detail !== id) return;
      if (state.typing.has(id)) idleBanner.hidden = true;
      renderStatus();
    }),
  );
  offs.push(on('ui.presence', (e) => e.detail === other().id && renderStatus()));
  offs.push(on('ui.connection', renderBanner));
  offs.push(
    on('ui.upload', (e) => {
      const m = msgs.get(e.detail);
      const fig = figures.get(e.detail);
      if (m && fig) updateProgress(fig, m);
    }),
  );
  const onVisible = () => markRead();
  document.addEventListener('visibilitychange', onVisible);
  offs.push(() => document.removeEventListener('visibilitychange', onVisible));
  // Presence wording ("last seen 3 min ago") ages; refresh it now and then.
  const ageTimer = setInterval(renderStatus, 30000);
  offs.push(() => clearInterval(ageTimer));
  const clockTimer = setInterval(renderTime, 1000);
  offs.push(() => clearInterval(clockTimer));

  function setTimer(fn, ms) {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
  }

  changed('openchat', id);
  open();

  return {
    el,
    focus: () => (canSend() ? input.focus() : name.focus()),
    destroy: () => {
      destroyed = true;
      stopTyping();
      offs.forEach((off) => off());
      timers.forEach((t) => clearTimeout(t));
      if (state.openChat === id) state.openChat = null;
      changed('openchat', null);
    },
  };
}
