// The wallet: the balance, a recharge (preset amounts or any amount), and the ledger of every
// movement, newest first. Also the one recharge call the chat's "ending soon" banner uses.

import { call, on } from '../api.js';
import { state, changed } from '../state.js';
import { toast } from '../toast.js';
import { errorText, h, money, shortWhen, toMs } from '../util.js';

export const PRESETS = [100, 200, 500, 1000];
const MAX = 1000000;

const KIND_WORDS = {
  recharge: 'Recharge',
  charge: 'Consultation',
  earning: 'Earning',
  commission: 'Commission',
  refund: 'Refund',
  adjustment: 'Credit',
};

/**
 * Pays `amount` in. The key is made once per attempt and reused if the same attempt is retried,
 * so a lost answer never pays twice. Resolves to the server's answer.
 */
export async function recharge(amount, key) {
  const r = await call('wallet_recharge', { amount, idempotencyKey: key });
  if (r.wallet) {
    state.wallet = r.wallet;
    changed('wallet');
  }
  return r;
}

/** A fresh key for one recharge attempt. */
export function rechargeKey() {
  return globalThis.crypto && crypto.randomUUID ? crypto.randomUUID() : `r-${Date.now()}-${Math.random()}`;
}

/** What to say once a recharge was answered. */
export function rechargeNote(r) {
  return r.status === 'captured'
    ? `${money(r.amount, r.currency)} added to your wallet`
    : `Payment of ${money(r.amount, r.currency)} started. Your balance updates as soon as it is confirmed.`;
}

export function walletScreen({ suggest } = {}) {
  const offs = [];
  let cursor = null;
  let busy = false;
  let key = rechargeKey();

  const balance = h('p', { class: 'wallet-balance-big', 'data-testid': 'wallet-balance-big', 'aria-live': 'polite' });
  const custom = h('input', {
    type: 'number',
    id: 'recharge-custom',
    class: 'recharge-input',
    min: '1',
    max: String(MAX),
    step: '1',
    inputmode: 'numeric',
    'data-testid': 'recharge-amount',
    'aria-label': 'Amount to add',
    '.value': String(suggest && suggest > 0 ? suggest : 500),
    on: { input: () => (select(null), (key = rechargeKey())) },
  });
  const presets = PRESETS.map((amount) =>
    h('button', {
      type: 'button',
      class: 'chip recharge-preset',
      'data-testid': 'recharge-amount',
      'data-amount': String(amount),
      'aria-pressed': 'false',
      text: money(amount),
      on: { click: () => (select(amount), (custom.value = String(amount)), (key = rechargeKey())) },
    }),
  );
  const error = h('p', { class: 'field-error', role: 'alert', hidden: true });
  const submit = h('button', { type: 'submit', class: 'btn primary', 'data-testid': 'recharge-submit', text: 'Add money' });
  const form = h(
    'form',
    { class: 'card recharge-card', novalidate: true, on: { submit: (e) => (e.preventDefault(), pay()) } },
    h('h2', { class: 'card-title', text: 'Recharge' }),
    h('div', { class: 'recharge-presets', role: 'group', 'aria-label': 'Amounts' }, presets),
    h('div', { class: 'field inline' }, h('label', { for: 'recharge-custom', class: 'label', text: 'Or any amount' }), custom),
    error,
    h('div', { class: 'form-actions start' }, submit),
  );
  const rows = h('ul', { class: 'ledger-list', 'data-testid': 'ledger-list' });
  const more = h('button', { type: 'button', class: 'btn ghost', text: 'Show older', hidden: true, on: { click: () => loadLedger(false) } });
  const emptyNote = h('p', { class: 'muted', text: 'Nothing yet: your recharges and consultations appear here.', hidden: true });

  const el = h(
    'section',
    { class: 'screen screen-wallet', 'data-testid': 'screen-wallet', 'aria-labelledby': 'wallet-title' },
    h('header', { class: 'screen-head' }, h('div', null, h('h1', { id: 'wallet-title', tabindex: '-1', text: 'Wallet' }), balance)),
    form,
    h('h2', { class: 'section-title', text: 'History' }),
    rows,
    emptyNote,
    more,
  );

  function select(amount) {
    for (const b of presets) b.setAttribute('aria-pressed', String(Number(b.dataset.amount) === amount));
  }

  function showBalance() {
    const w = state.wallet;
    balance.textContent = w ? `Balance ${money(w.balance, w.currency)}` : 'Balance …';
  }

  async function pay() {
    if (busy) return;
    error.hidden = true;
    const amount = Number(custom.value);
    if (!Number.isInteger(amount) || amount < 1 || amount > MAX) {
      error.hidden = false;
      error.textContent = `Enter a whole amount from 1 to ${money(MAX)}`;
      custom.focus();
      return;
    }
    busy = true;
    submit.disabled = true;
    try {
      const r = await recharge(amount, key);
      key = rechargeKey();
      toast(rechargeNote(r));
      loadLedger(true);
    } catch (err) {
      error.hidden = false;
      error.textContent = errorText(err);
    } finally {
      busy = false;
      submit.disabled = false;
    }
  }

  function row(e) {
    const when = toMs(e.created_at);
    const currency = (state.wallet && state.wallet.currency) || 'INR';
    return h(
      'li',
      { class: 'ledger-entry', 'data-testid': 'ledger-entry', 'data-kind': e.kind },
      h(
        'div',
        { class: 'ledger-what' },
        h('strong', { text: KIND_WORDS[e.kind] || e.kind }),
        h('span', { class: 'muted small', text: [e.note, shortWhen(when)].filter(Boolean).join(' · ') }),
      ),
      h(
        'div',
        { class: 'ledger-amounts' },
        h('span', { class: `ledger-amount ${e.amount < 0 ? 'out' : 'in'}`, text: `${e.amount > 0 ? '+' : ''}${money(e.amount, currency)}` }),
        h('span', { class: 'muted small', text: `Balance ${money(e.balance_after, currency)}` }),
      ),
    );
  }

  async function loadLedger(fresh) {
    try {
      const args = { limit: 20 };
      if (!fresh && cursor) args.cursor = cursor;
      const page = await call('wallet_ledger', args);
      if (fresh) rows.replaceChildren();
      rows.append(...page.items.map(row));
      cursor = page.next_cursor || null;
      more.hidden = !cursor;
      emptyNote.hidden = rows.childElementCount > 0;
      state.wallet = { balance: page.balance, currency: page.currency };
      changed('wallet');
    } catch (err) {
      toast(err);
    }
  }

  offs.push(on('ui.wallet', showBalance));
  // A movement from elsewhere (a consultation ending, another device) shows up in the list too.
  offs.push(on('wallet', () => loadLedger(true)));
  select(Number(custom.value));
  showBalance();
  loadLedger(true);

  return { el, destroy: () => offs.forEach((off) => off()) };
}
