// A guide's earnings: today and in total, and every paid consultation, newest first.

import { call, on } from '../api.js';
import { toast } from '../toast.js';
import { duration, h, money, shortWhen, toMs } from '../util.js';

export function earningsScreen() {
  const offs = [];
  let cursor = null;
  const today = h('strong', { class: 'earn-figure', 'data-testid': 'earnings-today', text: '…' });
  const total = h('strong', { class: 'earn-figure', 'data-testid': 'earnings-total', text: '…' });
  const rows = h('ul', { class: 'ledger-list' });
  const emptyNote = h('p', { class: 'muted', hidden: true, text: 'No paid consultations yet. What you earn from each appears here.' });
  const more = h('button', { type: 'button', class: 'btn ghost', text: 'Show older', hidden: true, on: { click: () => load(false) } });

  const el = h(
    'section',
    { class: 'screen screen-earnings', 'data-testid': 'screen-earnings', 'aria-labelledby': 'earnings-title' },
    h('header', { class: 'screen-head' }, h('h1', { id: 'earnings-title', tabindex: '-1', text: 'Earnings' })),
    h(
      'div',
      { class: 'earn-cards' },
      h('div', { class: 'card earn-card' }, h('span', { class: 'muted small', text: 'Today' }), today),
      h('div', { class: 'card earn-card' }, h('span', { class: 'muted small', text: 'In total' }), total),
    ),
    h('p', { class: 'muted small', text: 'After the platform’s commission.' }),
    h('h2', { class: 'section-title', text: 'Consultations' }),
    rows,
    emptyNote,
    more,
  );

  function row(e, currency) {
    return h(
      'li',
      { class: 'ledger-entry earning-entry', 'data-testid': 'earning-entry', 'data-consultation-id': e.consultation_id },
      h(
        'div',
        { class: 'ledger-what' },
        h('strong', { text: e.customer_name }),
        h('span', { class: 'muted small', text: `${duration(e.duration_seconds)} · ${shortWhen(toMs(e.created_at))}` }),
      ),
      h('div', { class: 'ledger-amounts' }, h('span', { class: 'ledger-amount in', text: `+${money(e.amount, currency)}` })),
    );
  }

  async function load(fresh) {
    try {
      const args = { limit: 20 };
      if (!fresh && cursor) args.cursor = cursor;
      const page = await call('guide_earnings', args);
      today.textContent = money(page.today, page.currency);
      total.textContent = money(page.total, page.currency);
      if (fresh) rows.replaceChildren();
      rows.append(...page.items.map((e) => row(e, page.currency)));
      cursor = page.next_cursor || null;
      more.hidden = !cursor;
      emptyNote.hidden = rows.childElementCount > 0;
    } catch (err) {
      toast(err);
    }
  }

  // An earning arrives as a wallet change.
  offs.push(on('wallet', () => load(true)));
  load(true);
  return { el, destroy: () => offs.forEach((off) => off()) };
}
