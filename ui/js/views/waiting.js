// Waiting for the astrologer to answer: a countdown to the request timeout and a cancel button.
// The answer itself (accepted, rejected, cancelled) is handled in main.js, which leaves this screen.

import { call } from '../api.js';
import * as nav from '../nav.js';
import { reloadChats } from '../state.js';
import { toast } from '../toast.js';
import { h, mmss } from '../util.js';

/** The server's request timeout; the wire does not tell it, the contract says 120 s. */
const REQUEST_TIMEOUT_MS = 120000;

export function waitingScreen(params) {
  const deadline = (Number(params.createdAt) || Date.now()) + REQUEST_TIMEOUT_MS;
  const name = params.guideName || 'the astrologer';
  let timer = 0;
  let done = false;

  const count = h('span', { class: 'countdown-num' });
  const ring = h('div', { class: 'countdown', 'aria-hidden': 'true' }, count);
  const line = h('p', { class: 'muted', role: 'status' });
  const title = h('h1', { id: 'waiting-title', tabindex: '-1', text: `Waiting for ${name}` });
  const cancel = h('button', {
    type: 'button',
    class: 'btn ghost',
    'data-testid': 'waiting-cancel',
    text: 'Cancel request',
    on: { click: onCancel },
  });
  const el = h(
    'section',
    { class: 'screen screen-waiting', 'data-testid': 'waiting', 'aria-labelledby': 'waiting-title' },
    h('div', { class: 'waiting-card' }, ring, title, line, h('p', { class: 'muted small', text: 'You can keep this window in the background; we will open the chat when they accept.' }), cancel),
  );

  function tick() {
    const left = Math.max(0, deadline - Date.now());
    count.textContent = mmss(left / 1000);
    ring.style.setProperty('--p', String(left / REQUEST_TIMEOUT_MS));
    if (left > 0) {
      line.textContent = `They have ${Math.ceil(left / 1000)} s to answer.`;
      timer = setTimeout(tick, 250);
      return;
    }
    // No answer: say so, then back to the list (the server cancels the request itself).
    title.textContent = 'No answer';
    line.textContent = `${name} didn't answer in time. Try another astrologer.`;
    cancel.hidden = true;
    timer = setTimeout(() => {
      if (done) return;
      done = true;
      toast(`No answer from ${name}`);
      reloadChats();
      nav.home();
    }, 2500);
  }

  async function onCancel() {
    cancel.disabled = true;
    try {
      await call('consultation_cancel', { id: params.id });
      if (done) return; // the `cancelled` event got here first
      done = true;
      toast('Request cancelled');
      reloadChats();
      nav.home();
    } catch (err) {
      cancel.disabled = false;
      toast(err);
    }
  }

  tick();
  return {
    el,
    focus: () => cancel.focus(),
    destroy: () => {
      done = true;
      clearTimeout(timer);
    },
  };
}
