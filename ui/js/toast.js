// Transient notes at the bottom of the window: errors of actions, and short confirmations.

import { errorText, h, icon } from './util.js';

const LIFETIME = 6000;

/** Shows `text` (or the wording of an error object) for a few seconds. */
export function toast(textOrError, kind = 'info') {
  const text = typeof textOrError === 'string' ? textOrError : errorText(textOrError);
  if (typeof textOrError !== 'string') kind = 'error';
  const box = document.getElementById('toasts');
  // The same note twice in a row is shown once.
  for (const old of box.children) if (old.dataset.text === text) old.remove();
  const close = h('button', { type: 'button', class: 'toast-close', 'aria-label': 'Dismiss' }, icon('close'));
  const el = h(
    'div',
    {
      class: `toast toast-${kind}`,
      'data-testid': 'toast',
      role: kind === 'error' ? 'alert' : 'status',
      dataset: { text },
    },
    h('span', { class: 'toast-text', text }),
    close,
  );
  const remove = () => el.remove();
  close.addEventListener('click', remove);
  setTimeout(remove, LIFETIME);
  box.append(el);
  while (box.children.length > 3) box.firstElementChild.remove();
}
