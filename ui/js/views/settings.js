// Settings: account and sign out, devices (sessions), the server, the theme.

import { call, emit, on } from '../api.js';
import { state } from '../state.js';
import { getTheme, setTheme } from '../theme.js';
import { toast } from '../toast.js';
import { ago, errorText, h } from '../util.js';

export function settingsScreen() {
  const offs = [];
  const signedIn = !!state.identity;
  const sections = [];

  // ---- account
  if (signedIn) {
    const who = h('p', { class: 'account-line' });
    const showMe = () => {
      const me = state.me;
      const role = state.identity.user_type === 'guide' ? 'Astrologer' : 'Customer';
      who.replaceChildren(
        h('strong', { text: (me && me.display_name) || 'Signed in' }),
        h('span', { class: 'muted', text: ` · ${role}${me && me.phone ? ` · ${me.phone}` : ''}` }),
      );
    };
    showMe();
    offs.push(on('ui.me', showMe));
    sections.push(
      section(
        'Account',
        who,
        h('div', { class: 'form-actions start' }, h('button', { type: 'button', class: 'btn ghost danger', text: 'Sign out', on: { click: () => emit({ type: 'ui.sign_out' }) } })),
      ),
    );

    // ---- devices
    const devices = h('ul', { class: 'device-list' }, h('li', { class: 'muted', text: 'Loading…' }));
    const revokeAll = h('button', { type: 'button', class: 'btn ghost', text: 'Sign out all other devices', hidden: true });
    const loadDevices = async () => {
      try {
        const list = await call('sessions');
        const others = list.filter((s) => !s.current);
        revokeAll.hidden = others.length === 0;
        devices.replaceChildren(
          ...list
            .sort((a, b) => Number(b.current) - Number(a.current))
            .map((s) =>
              h(
                'li',
                { class: 'device' },
                h(
                  'div',
                  null,
                  h('strong', { text: deviceName(s.device_info) }),
                  s.current ? h('span', { class: 'chip current', text: 'This device' }) : null,
                  h('p', { class: 'muted small', text: `Last used ${ago(s.last_used_at)} · signed in ${ago(s.created_at)}` }),
                ),
                s.current
                  ? null
                  : h('button', {
                      type: 'button',
                      class: 'btn ghost small',
                      text: 'Sign out',
                      'aria-label': `Sign out ${deviceName(s.device_info)}`,
                      on: { click: () => revoke([s.session_id]) },
                    }),
              ),
            ),
        );
        revokeAll.onclick = () => revoke(others.map((s) => s.session_id));
      } catch (err) {
        devices.replaceChildren(h('li', { class: 'muted', text: `Devices unavailable: ${errorText(err)}` }));
      }
    };
    const revoke = async (ids) => {
      revokeAll.disabled = true;
      let failed = null;
      for (const sessionId of ids) {
        try {
          await call('session_revoke', { sessionId });
        } catch (err) {
          failed = err;
        }
      }
      revokeAll.disabled = false;
      if (failed) toast(failed);
      else toast(ids.length > 1 ? 'Other devices signed out' : 'Device signed out');
      loadDevices();
    };
    sections.push(section('Devices', h('p', { class: 'muted small', text: 'Where you are signed in.' }), devices, h('div', { class: 'form-actions start' }, revokeAll)));
    loadDevices();
  }

  // ---- server
  const info = state.info || {};
  const url = h('input', { id: 'server-url', type: 'url', '.value': info.server_url || '', placeholder: 'https://tara.example.com', autocomplete: 'url', spellcheck: 'false' });
  const urlError = h('p', { class: 'field-error', role: 'alert', hidden: true });
  const saveUrl = h('button', { type: 'submit', class: 'btn primary', text: 'Save server' });
  const serverForm = h(
    'form',
    { class: 'server-form', novalidate: true, on: { submit: (e) => (e.preventDefault(), changeServer()) } },
    h('div', { class: 'field' }, h('label', { class: 'label', for: 'server-url', text: 'Server address' }), url),
    signedIn ? h('p', { class: 'muted small', text: 'Changing the server signs you out.' }) : null,
    urlError,
    h('div', { class: 'form-actions start' }, saveUrl),
  );
  async function changeServer() {
    const value = url.value.trim();
    if (!/^https?:\/\/\S+$/i.test(value)) {
      urlError.hidden = false;
      urlError.textContent = 'Enter an address starting with http:// or https://';
      return;
    }
    urlError.hidden = true;
    saveUrl.disabled = true;
    try {
      state.info = await call('set_server_url', { url: value });
      toast('Server saved');
      // Each server has its own sign-in and chats: start over on this one.
      setTimeout(() => window.location.reload(), 400);
    } catch (err) {
      urlError.hidden = false;
      urlError.textContent = errorText(err);
    } finally {
      saveUrl.disabled = false;
    }
  }
  sections.push(section('Server', serverForm));

  // ---- theme
  const current = getTheme();
  const themes = h(
    'div',
    { class: 'theme-choice', role: 'radiogroup', 'aria-label': 'Theme' },
    ['system', 'light', 'dark'].map((t) => {
      const radio = h('input', { type: 'radio', name: 'theme', id: `theme-${t}`, value: t, '.checked': t === current, on: { change: () => setTheme(t) } });
      return h('label', { class: 'check chip-check', for: `theme-${t}` }, radio, h('span', { text: t === 'system' ? 'Same as system' : t[0].toUpperCase() + t.slice(1) }));
    }),
  );
  sections.push(section('Appearance', themes));

  sections.push(
    h(
      'p',
      { class: 'muted small about' },
      `Tara ${info.version || ''}${info.profile && info.profile !== 'default' ? ` · profile ${info.profile}` : ''}`,
    ),
  );

  const el = h(
    'section',
    { class: 'screen screen-settings', 'data-testid': 'screen-settings', 'aria-labelledby': 'settings-title' },
    h('header', { class: 'screen-head' }, h('h1', { id: 'settings-title', tabindex: '-1', text: 'Settings' })),
    sections,
  );
  return { el, destroy: () => offs.forEach((off) => off()) };
}

function section(title, ...body) {
  return h('section', { class: 'card settings-section' }, h('h2', { class: 'card-title', text: title }), body);
}

function deviceName(d) {
  if (!d) return 'Unknown device';
  if (typeof d === 'string') return d;
  const parts = [d.platform, d.browser, d.device_type].filter(Boolean);
  return parts.length ? [...new Set(parts)].join(' · ') : 'Unknown device';
}
