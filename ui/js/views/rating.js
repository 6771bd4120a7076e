// Rating a finished consultation: 1–5 stars, what could have been better, a few words.

import { call, on } from '../api.js';
import * as nav from '../nav.js';
import { state, markRated } from '../state.js';
import { toast } from '../toast.js';
import { avatar, duration, errorText, h, money } from '../util.js';

const CATEGORIES = ['Accuracy', 'Connection', 'Response time', 'Behaviour'];
const WORDS = ['', 'Poor', 'Could be better', 'Good', 'Very good', 'Excellent'];

export function ratingScreen({ id }) {
  let consultation = state.chats.get(id) ? state.chats.get(id).consultation : null;
  let rating = 0;
  let sending = false;

  const heading = h('h1', { id: 'rating-title', tabindex: '-1' });
  const sub = h('p', { class: 'muted' });
  const charged = h('p', { class: 'amount-charged', 'data-testid': 'amount-charged', hidden: true });
  const who = h('span', { class: 'avatar-wrap' });
  const caption = h('p', { class: 'star-caption', 'aria-hidden': 'true' });
  const stars = [1, 2, 3, 4, 5].map((n) =>
    h(
      'button',
      {
        type: 'button',
        class: 'star-btn',
        role: 'radio',
        'aria-checked': 'false',
        'aria-label': `${n} star${n > 1 ? 's' : ''}, ${WORDS[n]}`,
        'data-testid': `rating-star-${n}`,
        on: { click: () => pick(n) },
      },
      h('span', { 'aria-hidden': 'true', text: '★' }),
    ),
  );
  const starGroup = h('div', { class: 'stars-input', role: 'radiogroup', 'aria-label': 'Your rating' }, stars);
  starGroup.addEventListener('keydown', (e) => {
    const step = e.key === 'ArrowRight' || e.key === 'ArrowUp' ? 1 : e.key === 'ArrowLeft' || e.key === 'ArrowDown' ? -1 : 0;
    if (!step) return;
    e.preventDefault();
    pick(Math.min(5, Math.max(1, (rating || 0) + step)));
    stars[rating - 1].focus();
  });
  const checks = CATEGORIES.map((cat, i) => {
    const box = h('input', { type: 'checkbox', id: `rate-cat-${i}`, value: cat });
    return { box, el: h('label', { class: 'check chip-check', for: `rate-cat-${i}` }, box, h('span', { text: cat })) };
  });
  const text = h('textarea', { id: 'rating-text', class: 'rating-textarea', rows: '3', maxlength: '1000', 'data-testid': 'rating-text', placeholder: 'What helped, what could be better? (optional)' });
  const error = h('p', { class: 'field-error', role: 'alert', hidden: true });
  const submit = h('button', { type: 'submit', class: 'btn primary', 'data-testid': 'rating-submit', text: 'Submit rating', disabled: true });
  const skip = h('button', { type: 'button', class: 'btn ghost', text: 'Not now', on: { click: () => nav.home() } });
  const toChat = h('button', { type: 'button', class: 'btn link', text: 'Back to the conversation', on: { click: () => nav.go('chat', { id }, { replace: true }) } });

  const form = h(
    'form',
    { class: 'rating-card', novalidate: true, on: { submit: (e) => (e.preventDefault(), send()) } },
    h('div', { class: 'rating-hero' }, who, heading, sub, charged),
    starGroup,
    caption,
    h('fieldset', { class: 'categories' }, h('legend', { class: 'label', text: 'Anything that could have been better?' }), h('div', { class: 'chip-checks' }, checks.map((c) => c.el))),
    h('div', { class: 'field' }, h('label', { class: 'label', for: 'rating-text', text: 'A few words (optional)' }), text),
    error,
    h('div', { class: 'form-actions' }, skip, submit),
    h('p', { class: 'center' }, toChat),
  );
  const el = h('section', { class: 'screen screen-rating', 'data-testid': 'screen-rating', 'aria-labelledby': 'rating-title' }, form);

  function show() {
    const name = consultation ? consultation.guide_name : 'your astrologer';
    heading.textContent = `How was your consultation with ${name}?`;
    who.replaceChildren(consultation ? avatar(name, consultation.guide_id, 'lg') : '');
    sub.textContent =
      consultation && consultation.duration_seconds != null
        ? `${duration(consultation.duration_seconds)} · ₹${consultation.rate_per_minute}/min`
        : 'Your rating helps others find the right astrologer.';
    const amount = consultation && consultation.amount_charged;
    charged.hidden = amount == null;
    if (amount != null) {
      const w = state.wallet;
      const left = w ? ` · balance ${money(w.balance, w.currency)}` : '';
      charged.textContent = `${money(amount, (w && w.currency) || 'INR')} charged${left}`;
    }
  }

  function pick(n) {
    rating = n;
    stars.forEach((s, i) => {
      s.setAttribute('aria-checked', String(i + 1 === n));
      s.classList.toggle('on', i < n);
      s.tabIndex = i + 1 === n ? 0 : -1;
    });
    caption.textContent = WORDS[n];
    submit.disabled = false;
  }

  async function send() {
    if (!rating || sending) return;
    sending = true;
    submit.disabled = true;
    error.hidden = true;
    const args = { id, rating };
    const words = text.value.trim();
    if (words) args.text = words;
    const issues = checks.filter((c) => c.box.checked).map((c) => c.box.value);
    if (issues.length) args.issues = issues;
    try {
      await call('consultation_rate', args);
      markRated(id);
      toast('Thank you for your rating');
      nav.home();
    } catch (err) {
      if (err.code === 'ALREADY_RATED') {
        markRated(id);
        toast('You have already rated this consultation');
        nav.home();
        return;
      }
      error.hidden = false;
      error.textContent = errorText(err);
      submit.disabled = false;
    } finally {
      sending = false;
    }
  }

  stars.forEach((s, i) => (s.tabIndex = i === 0 ? 0 : -1));
  show();
  const offWallet = on('ui.wallet', show);
  if (!consultation || consultation.duration_seconds == null || consultation.amount_charged == null) {
    call('consultation_get', { id })
      .then((c) => {
        consultation = c;
        show();
      })
      .catch(() => {});
  }

  return { el, focus: () => stars[0].focus(), destroy: offWallet };
}
