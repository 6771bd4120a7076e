// The chat list in the sidebar: newest activity first, last message, unread badge, "typing…".
// Customers see it as "Chats", astrologers as "History"; ended consultations open read-only.

import { on } from '../api.js';
import * as nav from '../nav.js';
import { state, activity, isGuide, myId } from '../state.js';
import { avatar, h, shortWhen, toMs } from '../util.js';

const STATUS_WORDS = {
  requested: 'Waiting for an answer',
  accepted: 'Accepted: say hello',
  in_progress: 'In progress',
  completed: 'Ended',
  cancelled: 'Cancelled',
};

function preview(item) {
  const m = item.last_message;
  if (!m) return STATUS_WORDS[item.consultation.status] || '';
  const mine = m.sender_id === myId() && m.sender_type !== 'system';
  const body = m.kind === 'image' ? `Photo${m.content ? `: ${m.content}` : ''}` : m.content;
  return mine ? `You: ${body}` : body;
}

export function mountChatList(sidebar) {
  const title = h('h2', { class: 'sidebar-title', tabindex: '-1' });
  const listEl = h('ul', { class: 'chat-items', 'aria-labelledby': 'chats-title' });
  title.id = 'chats-title';
  const empty = h('div', { class: 'empty small-empty', hidden: true });
  sidebar.replaceChildren(h('div', { class: 'sidebar-head' }, title), listEl, empty);
  const rows = new Map(); // consultation id → {li, button, update}

  function row(id) {
    const av = h('span', { class: 'avatar-wrap' });
    const name = h('span', { class: 'ci-name' });
    const time = h('time', { class: 'ci-time' });
    const text = h('span', { class: 'ci-preview' });
    const chip = h('span', { class: 'ci-chip', hidden: true });
    const badgeBox = h('span', { class: 'ci-badge' });
    const button = h(
      'button',
      {
        type: 'button',
        class: 'chat-item',
        'data-testid': 'chat-list-item',
        'data-consultation-id': id,
        on: { click: () => openItem(id) },
      },
      av,
      h('span', { class: 'ci-main' }, h('span', { class: 'ci-top' }, name, time), h('span', { class: 'ci-bottom' }, text, chip, badgeBox)),
    );
    const li = h('li', null, button);
    let lastName = null;
    const update = (item) => {
      const c = item.consultation;
      const other = item.other_party || {
        id: isGuide() ? c.customer_id : c.guide_id,
        display_name: isGuide() ? c.customer_name : c.guide_name,
      };
      if (lastName !== other.display_name) {
        lastName = other.display_name;
        av.replaceChildren(avatar(other.display_name, other.id));
        name.textContent = other.display_name;
      }
      const when = activity(item);
      time.textContent = shortWhen(when);
      time.dateTime = Number.isFinite(when) && when > 0 ? new Date(when).toISOString() : '';
      const typing = state.typing.get(c.consultation_id);
      text.classList.toggle('typing', !!typing);
      text.textContent = typing ? 'typing…' : preview(item);
      const live = c.status === 'accepted' || c.status === 'in_progress';
      chip.hidden = !(live || c.status === 'requested');
      chip.textContent = live ? 'Live' : 'Requested';
      chip.classList.toggle('live', live);
      const n = Number(item.unread_count) || 0;
      if (n > 0) {
        badgeBox.replaceChildren(h('span', { class: 'badge', 'data-testid': 'unread-badge', text: String(n) }));
      } else {
        badgeBox.replaceChildren();
      }
      button.classList.toggle('unread', n > 0);
      button.classList.toggle('ended', c.status === 'completed' || c.status === 'cancelled');
      button.setAttribute(
        'aria-label',
        `${other.display_name}, ${STATUS_WORDS[c.status] || c.status}${n ? `, ${n} unread` : ''}${typing ? ', typing' : ''}`,
      );
      if (state.openChat === c.consultation_id) button.setAttribute('aria-current', 'true');
      else button.removeAttribute('aria-current');
    };
    return { li, button, update };
  }

  function openItem(id) {
    const item = state.chats.get(id);
    const c = item && item.consultation;
    if (c && c.status === 'requested') {
      if (isGuide()) nav.home();
      else nav.go('waiting', { id, createdAt: toMs(c.created_at), guideName: c.guide_name });
      return;
    }
    nav.go('chat', { id });
  }

  function render() {
    title.textContent = isGuide() ? 'History' : 'Chats';
    const items = [...state.chats.values()].sort((a, b) => activity(b) - activity(a));
    for (const id of [...rows.keys()]) if (!state.chats.has(id)) rows.delete(id);
    const order = items.map((item) => {
      const id = item.consultation.consultation_id;
      if (!rows.has(id)) rows.set(id, row(id));
      const r = rows.get(id);
      r.update(item);
      return r.li;
    });
    const same = order.length === listEl.children.length && order.every((li, i) => listEl.children[i] === li);
    if (!same) listEl.replaceChildren(...order);
    empty.hidden = items.length > 0;
    if (!empty.hidden) {
      empty.replaceChildren(
        h('p', { class: 'empty-title', text: isGuide() ? 'No consultations yet' : 'No chats yet' }),
        h('p', {
          text: isGuide()
            ? 'Requests you accept, and past consultations, show up here.'
            : 'Pick an astrologer and request a chat; your conversations show up here.',
        }),
      );
    }
  }

  on('ui.chats', render);
  on('ui.typing', render);
  on('ui.openchat', render);

  return {
    reset() {
      rows.clear();
      listEl.replaceChildren();
      render();
    },
  };
}
