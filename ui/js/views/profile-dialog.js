// The birth-details form, in a modal dialog (Escape or Cancel closes it).

import { call } from '../api.js';
import { errorText, h } from '../util.js';

const LANGUAGES = ['Hindi', 'English', 'Bengali', 'Gujarati', 'Kannada', 'Malayalam', 'Marathi', 'Punjabi', 'Tamil', 'Telugu'];

/** Resolves with the created CustomerProfile, or null when the person cancels. */
export function openProfileDialog(guides) {
  return new Promise((resolve) => {
    const langs = new Set(LANGUAGES);
    for (const g of guides.values()) for (const l of g.languages || []) langs.add(l);

    const field = (id, label, input) => h('div', { class: 'field' }, h('label', { class: 'label', for: id, text: label }), input);
    const name = h('input', { id: 'pf-name', required: true, autocomplete: 'name', maxlength: '80' });
    const dob = h('input', { id: 'pf-dob', type: 'date', required: true, max: new Date().toISOString().slice(0, 10) });
    const tob = h('input', { id: 'pf-tob', type: 'time', required: true });
    const city = h('input', { id: 'pf-city', required: true, autocomplete: 'address-level2', placeholder: 'Pune' });
    const country = h('input', { id: 'pf-country', required: true, autocomplete: 'country-name', '.value': 'India' });
    const language = h(
      'select',
      { id: 'pf-lang' },
      [...langs].sort().map((l) => h('option', { value: l, text: l })),
    );
    language.value = 'Hindi';
    const error = h('p', { class: 'field-error', role: 'alert', hidden: true });
    const save = h('button', { type: 'submit', class: 'btn primary', text: 'Save' });
    const cancel = h('button', { type: 'button', class: 'btn ghost', text: 'Cancel' });

    const form = h(
      'form',
      { class: 'dialog-body', novalidate: true },
      h('h2', { id: 'pf-title', text: 'Birth details' }),
      h('p', { class: 'muted', text: 'Your astrologer sees these with your request, so you need not type them in the chat.' }),
      field('pf-name', 'Name', name),
      h('div', { class: 'field-row' }, field('pf-dob', 'Date of birth', dob), field('pf-tob', 'Time of birth', tob)),
      h('div', { class: 'field-row' }, field('pf-city', 'City of birth', city), field('pf-country', 'Country', country)),
      field('pf-lang', 'Language for the reading', language),
      error,
      h('div', { class: 'dialog-actions' }, cancel, save),
    );
    const dialog = h('dialog', { class: 'dialog', 'aria-labelledby': 'pf-title' }, form);
    let result = null;

    cancel.addEventListener('click', () => dialog.close());
    dialog.addEventListener('close', () => {
      dialog.remove();
      resolve(result);
    });
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const missing = [name, dob, tob, city, country].find((i) => !i.value.trim());
      if (missing) {
        error.hidden = false;
        error.textContent = 'Please fill in every field';
        missing.focus();
        return;
      }
      const time = tob.value.length === 5 ? `${tob.value}:00` : tob.value;
      save.disabled = true;
      try {
        result = await call('profile_create', {
          details: {
            name: name.value.trim(),
            date_of_birth: dob.value,
            time_of_birth: time,
            birth_city: city.value.trim(),
            birth_country: country.value.trim(),
            preferred_language: language.value,
          },
        });
        dialog.close();
      } catch (err) {
        error.hidden = false;
        error.textContent = errorText(err);
        save.disabled = false;
      }
    });

    document.body.append(dialog);
    dialog.showModal();
    name.focus();
  });
}
