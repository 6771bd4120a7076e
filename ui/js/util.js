// Small helpers shared by every view: building DOM safely, time and date wording, error wording.

/**
 * Builds an element. `attrs` keys: `class`, `text` (textContent), `dataset`, `on` ({event: fn}),
 * `aria-*`/`data-*`/other attributes (false/null skip them, true sets them empty), and DOM
 * properties given as `.name` (e.g. `.value`). Children are nodes or strings (text nodes);
 * null/false children are skipped. Never parses HTML.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'class') el.className = Array.isArray(value) ? value.filter(Boolean).join(' ') : value;
      else if (key === 'text') el.textContent = String(value);
      else if (key === 'dataset') Object.assign(el.dataset, value);
      else if (key === 'on') for (const [ev, fn] of Object.entries(value)) el.addEventListener(ev, fn);
      else if (key.startsWith('.')) el[key.slice(1)] = value;
      else el.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

const SVG = 'http://www.w3.org/2000/svg';
const ICONS = {
  back: 'M15 5l-7 7 7 7',
  home: 'M4 11l8-7 8 7M6 9.5V20h4.5v-5h3v5H18V9.5',
  chats: 'M5 5h14v10H9l-4 4z',
  settings:
    'M12 9a3 3 0 1 0 0 6 3 3 0 0 0 0-6zM19.4 13.5l1.6 1.2-2 3.4-1.9-.7a7 7 0 0 1-1.7 1l-.3 2h-4l-.3-2a7 7 0 0 1-1.7-1l-1.9.7-2-3.4 1.6-1.2a7 7 0 0 1 0-3L3 9.3l2-3.4 1.9.7a7 7 0 0 1 1.7-1l.3-2h4l.3 2a7 7 0 0 1 1.7 1l1.9-.7 2 3.4-1.6 1.2a7 7 0 0 1 0 3z',
  send: 'M4 12l16-8-6 16-2.5-6.5z',
  attach: 'M16.5 7.5l-7.8 7.8a2 2 0 0 0 2.8 2.8l8-8a4 4 0 0 0-5.7-5.7l-8 8a6 6 0 0 0 8.5 8.5l6.4-6.4',
  close: 'M6 6l12 12M18 6L6 18',
  clock: 'M12 4a8 8 0 1 0 0 16 8 8 0 0 0 0-16zM12 8v4.5l3 1.8',
  star: 'M12 3.5l2.6 5.4 5.9.8-4.3 4.1 1 5.9-5.2-2.8-5.2 2.8 1-5.9-4.3-4.1 5.9-.8z',
  plus: 'M12 5v14M5 12h14',
  search: 'M10.5 4a6.5 6.5 0 1 0 0 13 6.5 6.5 0 0 0 0-13zM15.5 15.5L20 20',
};

/** A decorative line icon (aria-hidden); the button around it carries the name. */
export function icon(name, cls = '') {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  svg.setAttribute('class', `icon ${cls}`.trim());
  const path = document.createElementNS(SVG, 'path');
  path.setAttribute('d', ICONS[name] || '');
  svg.append(path);
  return svg;
}

/** Text for screen readers only. */
export function srOnly(text) {
  return h('span', { class: 'sr-only', text });
}

/** Milliseconds since the epoch from an RFC 3339 string, a number (s or ms) or nothing. */
export function toMs(t) {
  if (t === null || t === undefined || t === '') return NaN;
  if (typeof t === 'number') return t < 1e12 ? t * 1000 : t;
  const n = Date.parse(t);
  return Number.isNaN(n) && /^\d+$/.test(String(t)) ? toMs(Number(t)) : n;
}

function dayStart(ms) {
  const d = new Date(ms);
  d.setHours(0, 0, 0, 0);
  return d.getTime();
}

/** `2026-11-21` in local time: the key of a day, for date separators. */
export function dayKey(ms) {
  const d = new Date(ms);
  return `${d.getFullYear()}-${d.getMonth() + 1}-${d.getDate()}`;
}

/** "Today", "Yesterday" or a date. */
export function dayLabel(ms) {
  const today = dayStart(Date.now());
  const day = dayStart(ms);
  if (day === today) return 'Today';
  if (today - day <= 86400000 + 3600000 && today - day > 0) return 'Yesterday';
  const d = new Date(ms);
  const sameYear = d.getFullYear() === new Date().getFullYear();
  return d.toLocaleDateString(undefined, {
    weekday: sameYear ? 'short' : undefined,
    day: 'numeric',
    month: 'short',
    year: sameYear ? undefined : 'numeric',
  });
}

/** "10:42" in the person's locale. */
export function clock(ms) {
  if (!Number.isFinite(ms)) return '';
  return new Date(ms).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
}

/** A short time for lists: the clock today, "Yesterday", or a date. */
export function shortWhen(ms) {
  if (!Number.isFinite(ms)) return '';
  const label = dayLabel(ms);
  return label === 'Today' ? clock(ms) : label;
}

/** "last seen today at 10:40", "last seen yesterday at …", "last seen 12 Nov". */
export function lastSeen(t) {
  const ms = toMs(t);
  if (!Number.isFinite(ms)) return 'offline';
  if (Date.now() - ms < 60000) return 'last seen just now';
  const label = dayLabel(ms);
  if (label === 'Today') return `last seen today at ${clock(ms)}`;
  if (label === 'Yesterday') return `last seen yesterday at ${clock(ms)}`;
  return `last seen ${label}`;
}

/** "2 min ago" style wording for recent things. */
export function ago(t) {
  const ms = toMs(t);
  if (!Number.isFinite(ms)) return '';
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 45) return 'just now';
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  return shortWhen(ms);
}

/** m:ss */
export function mmss(seconds) {
  const s = Math.max(0, Math.ceil(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/** "12 min", "1 h 5 min" */
export function duration(seconds) {
  if (!Number.isFinite(seconds)) return '';
  const m = Math.max(1, Math.ceil(seconds / 60));
  return m < 60 ? `${m} min` : `${Math.floor(m / 60)} h ${m % 60} min`;
}

/** Up to two initials for an avatar. */
export function initials(name) {
  const parts = String(name || '?').trim().split(/\s+/).filter(Boolean);
  const letters = parts.length > 1 ? parts[0][0] + parts[parts.length - 1][0] : (parts[0] || '?').slice(0, 2);
  return letters.toUpperCase();
}

/** A round avatar with initials; the hue follows the id so a person keeps their colour. */
export function avatar(name, id, cls = '') {
  const el = h('span', { class: `avatar ${cls}`.trim(), 'aria-hidden': 'true', text: initials(name) });
  const hue = (Math.abs(Number(id) || hash(String(name))) * 47) % 360;
  el.style.setProperty('--avatar-hue', String(hue));
  return el;
}

function hash(s) {
  let x = 0;
  for (const c of s) x = (x * 31 + c.codePointAt(0)) | 0;
  return x;
}

/** What to tell a person about a failed call. */
export function errorText(err) {
  const e = err || {};
  switch (e.code) {
    case 'OTP_INVALID':
      return 'Wrong code';
    case 'OTP_EXPIRED':
      return 'That code has expired, request a new one';
    case 'OTP_ATTEMPTS_EXCEEDED':
      return 'Too many tries, request a new code';
    case 'RATE_LIMITED': {
      const n = Number(e.retry_after);
      return Number.isFinite(n) && n > 0 ? `Too many requests, wait ${Math.ceil(n)} s` : 'Too many requests, wait a moment';
    }
    case 'OFFLINE':
      return "Can't reach the server";
    default:
      return e.message || (typeof err === 'string' ? err : 'Something went wrong');
  }
}

/** Calls `fn` once `ms` have passed without another call. */
export function debounce(fn, ms) {
  let timer = 0;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** A rating like 4.6 with one decimal, or "New" without ratings. */
export function ratingText(avg, count) {
  return count > 0 ? Number(avg).toFixed(1) : 'New';
}

const SYMBOLS = { INR: '₹', USD: '$', EUR: '€', GBP: '£' };

/** "₹1,250" (or "1,250 AED" for a currency without a symbol here). */
export function money(amount, currency = 'INR') {
  const n = Number(amount) || 0;
  const digits = Math.abs(n).toLocaleString(currency === 'INR' ? 'en-IN' : undefined);
  const sign = n < 0 ? '−' : '';
  const sym = SYMBOLS[currency];
  return sym ? `${sign}${sym}${digits}` : `${sign}${digits} ${currency}`;
}

/** Plural helper: "1 message", "3 messages". */
export function plural(n, one, many = `${one}s`) {
  return `${n} ${n === 1 ? one : many}`;
}
