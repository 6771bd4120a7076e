// The birth details a customer attached to a request (the `intake` snapshot), as a small card.

import { h } from '../util.js';

export function intakeCard(p) {
  if (!p) return h('p', { class: 'intake intake-none muted', text: 'No birth details shared.' });
  const row = (k, v) => (v ? [h('dt', { text: k }), h('dd', { text: v })] : null);
  const time = p.time_of_birth ? String(p.time_of_birth).slice(0, 5) : '';
  const born = [formatDate(p.date_of_birth), time].filter(Boolean).join(' at ');
  return h(
    'div',
    { class: 'intake' },
    h('p', { class: 'intake-title', text: 'Birth details' }),
    h(
      'dl',
      null,
      row('Name', p.name),
      row('Born', born),
      row('Place', [p.birth_city, p.birth_country].filter(Boolean).join(', ')),
      row('Language', p.preferred_language),
      row('Sign', p.zodiac_sign),
      row('Gender', p.gender),
    ),
  );
}

/** `1990-01-01` → "1 Jan 1990" in the person's locale. */
function formatDate(iso) {
  if (!iso) return '';
  const d = new Date(`${iso}T00:00:00`);
  return Number.isNaN(d.getTime())
    ? String(iso)
    : d.toLocaleDateString(undefined, { day: 'numeric', month: 'short', year: 'numeric' });
}
