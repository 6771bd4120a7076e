// Login: role, phone with country code, then the one-time code (with the resend timer).

import { call, emit } from '../api.js';
import * as nav from '../nav.js';
import { state } from '../state.js';
import { errorText, h } from '../util.js';

const COUNTRIES = [
  ['+91', 'India'],
  ['+977', 'Nepal'],
  ['+94', 'Sri Lanka'],
  ['+971', 'UAE'],
  ['+65', 'Singapore'],
  ['+44', 'United Kingdom'],
  ['+1', 'USA / Canada'],
  ['+61', 'Australia'],
];

// Kept across re-renders (a trip to settings and back keeps what was typed).
const draft = { role: 'customer', areaCode: '+91', phone: '' };

export function loginScreen(params) {
  let request = null; // {request_id, resend_at}
  let timer = 0;
  let busy = false;

  // ---- step 1: who and which phone
  const roleButtons = [
    ['customer', 'Customer', 'I want a reading'],
    ['guide', 'Astrologer', 'I give readings'],
  ].map(([role, label, hint]) =>
    h(
      'button',
      {
        type: 'button',
        class: 'segment',
        role: 'radio',
        'data-testid': `login-role-${role}`,
        dataset: { role },
        on: { click: () => pickRole(role) },
      },
      h('span', { class: 'segment-title', text: label }),
      h('span', { class: 'segment-hint', text: hint }),
    ),
  );
  const roleGroup = h('div', { class: 'segmented', role: 'radiogroup', 'aria-label': 'I am a' }, roleButtons);
  roleGroup.addEventListener('keydown', (e) => {
    if (e.key !== 'ArrowLeft' && e.key !== 'ArrowRight' && e.key !== 'ArrowUp' && e.key !== 'ArrowDown') return;
    e.preventDefault();
    pickRole(draft.role === 'customer' ? 'guide' : 'customer');
    roleButtons.find((b) => b.dataset.role === draft.role).focus();
  });

  const country = h(
    'select',
    { id: 'login-country', 'aria-label': 'Country code', on: { change: () => (draft.areaCode = country.value) } },
    COUNTRIES.map(([code, name]) => h('option', { value: code, text: `${name} ${code}` })),
  );
  country.value = draft.areaCode;
  const phone = h('input', {
    id: 'login-phone',
    type: 'tel',
    inputmode: 'numeric',
    autocomplete: 'tel-national',
    placeholder: '98765 43210',
    'data-testid': 'login-phone',
    '.value': draft.phone,
    on: { input: () => (draft.phone = phone.value) },
  });
  const phoneError = h('p', { class: 'field-error', role: 'alert', hidden: true });
  const sendBtn = h('button', { type: 'submit', class: 'btn primary block', 'data-testid': 'login-send-otp', text: 'Send code' });
  const step1 = h(
    'form',
    { class: 'login-step', novalidate: true, on: { submit: (e) => (e.preventDefault(), sendCode()) } },
    h('div', { class: 'field' }, h('span', { class: 'label', id: 'role-label', text: 'I am a' }), roleGroup),
    h(
      'div',
      { class: 'field' },
      h('label', { class: 'label', for: 'login-phone', text: 'Phone number' }),
      h('div', { class: 'phone-row' }, country, phone),
    ),
    phoneError,
    sendBtn,
  );
  roleGroup.setAttribute('aria-labelledby', 'role-label');

  // ---- step 2: the code
  const sentTo = h('span');
  const devCode = h('code', { class: 'dev-otp-code', 'data-testid': 'login-dev-otp' });
  const devLine = h('p', { class: 'dev-otp', hidden: true }, h('span', { class: 'dev-otp-label', text: 'Dev server code:' }), ' ', devCode);
  const otp = h('input', {
    id: 'login-otp',
    type: 'text',
    inputmode: 'numeric',
    autocomplete: 'one-time-code',
    maxlength: '6',
    placeholder: '••••••',
    class: 'otp-input',
    'data-testid': 'login-otp',
  });
  const otpError = h('p', { class: 'field-error', role: 'alert', hidden: true });
  const verifyBtn = h('button', { type: 'submit', class: 'btn primary block', 'data-testid': 'login-verify', text: 'Verify and continue' });
  const resendBtn = h('button', { type: 'button', class: 'btn link', on: { click: () => sendCode(true) } });
  const step2 = h(
    'form',
    { class: 'login-step', novalidate: true, hidden: true, on: { submit: (e) => (e.preventDefault(), verify()) } },
    h(
      'p',
      { class: 'muted' },
      'We sent a 6-digit code to ',
      sentTo,
      '. ',
      h('button', { type: 'button', class: 'btn link', text: 'Change number', on: { click: () => showStep(1) } }),
    ),
    devLine,
    h('div', { class: 'field' }, h('label', { class: 'label', for: 'login-otp', text: 'Code' }), otp),
    otpError,
    verifyBtn,
    h('div', { class: 'resend' }, resendBtn),
  );

  const reason = params.reason
    ? h('p', { class: 'notice', role: 'status', text: `You were signed out: ${params.reason}` })
    : null;
  const server = state.info && state.info.server_url;
  const el = h(
    'section',
    { class: 'screen screen-login', 'data-testid': 'screen-login', 'aria-labelledby': 'login-title' },
    h(
      'div',
      { class: 'login-card' },
      h(
        'div',
        { class: 'login-hero' },
        h('span', { class: 'brand-mark big', 'aria-hidden': 'true', text: '✦' }),
        h('h1', { id: 'login-title', tabindex: '-1', text: 'Welcome to Tara' }),
        h('p', { class: 'muted', text: 'Talk to a trusted astrologer in private, in real time.' }),
      ),
      reason,
      step1,
      step2,
      h(
        'p',
        { class: 'server-line' },
        h('span', { text: server ? `Server: ${server}` : 'Server not set' }),
        ' ',
        h('button', { type: 'button', class: 'btn link', text: 'Change', on: { click: () => nav.go('settings') } }),
      ),
    ),
  );

  function pickRole(role) {
    draft.role = role;
    for (const b of roleButtons) b.setAttribute('aria-checked', String(b.dataset.role === role));
    for (const b of roleButtons) b.tabIndex = b.dataset.role === role ? 0 : -1;
  }
  pickRole(draft.role);

  function showError(box, err) {
    box.hidden = !err;
    box.textContent = err ? errorText(err) : '';
  }

  function showStep(n) {
    step1.hidden = n !== 1;
    step2.hidden = n !== 2;
    (n === 1 ? phone : otp).focus();
  }

  function nationalNumber() {
    return phone.value.replace(/[\s\-().]/g, '').replace(/^0+/, '');
  }

  async function sendCode(resend = false) {
    if (busy) return;
    const number = nationalNumber();
    if (!/^\d{6,14}$/.test(number)) {
      showError(phoneError, { message: 'Enter your phone number, digits only' });
      phone.focus();
      return;
    }
    showError(phoneError, null);
    showError(otpError, null);
    busy = true;
    sendBtn.disabled = true;
    resendBtn.disabled = true;
    try {
      const answer = await call('otp_request', { areaCode: country.value, phone: number, role: draft.role });
      request = { id: answer.request_id, resendAt: Date.now() + (Number(answer.resend_after) || 30) * 1000 };
      sentTo.textContent = `${country.value} ${number}`;
      devLine.hidden = !answer.dev_otp;
      devCode.textContent = answer.dev_otp ? String(answer.dev_otp) : '';
      otp.value = '';
      if (!resend) showStep(2);
      else otp.focus();
      tick();
    } catch (err) {
      showError(resend ? otpError : phoneError, err);
      if (resend) resendBtn.disabled = false;
    } finally {
      busy = false;
      sendBtn.disabled = false;
    }
  }

  function tick() {
    clearTimeout(timer);
    if (!request) return;
    const left = Math.ceil((request.resendAt - Date.now()) / 1000);
    if (left > 0) {
      resendBtn.disabled = true;
      resendBtn.textContent = `Resend code in ${left} s`;
      timer = setTimeout(tick, 500);
    } else {
      resendBtn.disabled = false;
      resendBtn.textContent = 'Resend code';
    }
  }

  async function verify() {
    if (busy || !request) return;
    const code = otp.value.replace(/\D/g, '');
    if (code.length !== 6) {
      showError(otpError, { message: 'Enter the 6-digit code' });
      otp.focus();
      return;
    }
    showError(otpError, null);
    busy = true;
    verifyBtn.disabled = true;
    try {
      const identity = await call('otp_verify', {
        areaCode: country.value,
        phone: nationalNumber(),
        role: draft.role,
        requestId: request.id,
        code,
      });
      draft.phone = '';
      emit({ type: 'ui.signed_in', detail: identity });
    } catch (err) {
      showError(otpError, err);
      if (err.code === 'OTP_ATTEMPTS_EXCEEDED' || err.code === 'OTP_EXPIRED') {
        request.resendAt = Math.min(request.resendAt, Date.now());
        tick();
      }
      otp.select();
    } finally {
      busy = false;
      verifyBtn.disabled = false;
    }
  }

  return {
    el,
    focus: () => phone.focus(),
    destroy: () => clearTimeout(timer),
  };
}
