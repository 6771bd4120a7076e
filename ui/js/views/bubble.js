// One message on screen: a bubble with its text or image, time and ticks, or a centred system line.

import { state, myId } from '../state.js';
import { clock, h, icon, toMs } from '../util.js';
import { imageUrl, openViewer } from './images.js';

const TICKS = {
  sending: ['⏱', 'Sending'],
  sent: ['✓', 'Sent'],
  delivered: ['✓✓', 'Delivered'],
  read: ['✓✓', 'Read'],
  failed: ['!', 'Not sent'],
};

export function isSystem(m) {
  return m.kind === 'system' || m.sender_type === 'system';
}

export function isOwn(m) {
  return !isSystem(m) && m.sender_id === myId();
}

/** What `data-status` says: our message's status, "received" or "system". */
export function shownStatus(m) {
  if (isSystem(m)) return 'system';
  if (!isOwn(m)) return 'received';
  return TICKS[m.status] ? m.status : 'sent';
}

/** What changes the look of a bubble; the bubble is rebuilt when it changes. */
export function signature(m) {
  return [m.seq, shownStatus(m), m.content, m.kind, m.media && m.media.media_id, m.error, m.sent_at].join('\u0001');
}

/**
 * Builds the element of one message. `figures` keeps each image's <figure> across rebuilds so
 * the picture does not flicker while its status changes; `onRetry(m)` resends a failed one.
 */
export function bubble(m, { figures, onRetry, senderName, onImageLoad }) {
  const status = shownStatus(m);
  const kind = isSystem(m) ? 'system' : m.kind === 'image' ? 'image' : 'text';
  const attrs = {
    'data-testid': 'message',
    'data-seq': m.seq != null ? String(m.seq) : '',
    'data-status': status,
    'data-kind': kind,
    'data-client-msg-id': m.client_msg_id || '',
  };
  const when = toMs(m.sent_at) || toMs(m.created_at);

  if (kind === 'system') {
    return h(
      'div',
      { ...attrs, class: 'msg system' },
      h('p', { class: 'system-line' }, h('span', { class: 'text', text: m.content }), h('time', { class: 'meta-time', text: ` · ${clock(when)}` })),
    );
  }

  const own = status !== 'received';
  const tick = own ? TICKS[status] : null;
  const meta = h(
    'span',
    { class: 'meta' },
    h('time', { class: 'meta-time', datetime: new Date(when || Date.now()).toISOString(), text: clock(when) }),
    tick
      ? h('span', { class: `tick tick-${status}`, role: 'img', 'aria-label': tick[1], title: tick[1] }, status === 'sending' ? icon('clock') : tick[0])
      : null,
  );

  const body = [];
  if (kind === 'image') body.push(figure(m, figures, senderName, onImageLoad));
  if (kind === 'text' || (m.content && m.content.trim())) body.push(h('p', { class: 'text', text: m.content }));
  if (kind === 'image') meta.classList.add('meta-image');
  const el = h(
    'div',
    { ...attrs, class: `msg ${own ? 'own' : 'other'} kind-${kind}` },
    h('div', { class: 'bubble' }, body, meta),
  );
  if (status === 'failed') {
    el.append(
      h(
        'div',
        { class: 'failed-row', role: 'alert' },
        h('span', { text: m.error ? `Not sent: ${m.error}` : 'Not sent' }),
        h('button', { type: 'button', class: 'btn link', text: 'Retry', on: { click: () => onRetry(m) } }),
      ),
    );
  }
  return el;
}

function figure(m, figures, senderName, onImageLoad) {
  const key = m.client_msg_id;
  let fig = figures.get(key);
  if (!fig || fig.dataset.mediaId !== String((m.media && m.media.media_id) || '')) {
    if (fig && fig.dataset.loaded === 'yes') {
      // Already showing the picture: keep it.
      fig.dataset.mediaId = String((m.media && m.media.media_id) || '');
    } else {
      fig = buildFigure(m, senderName, onImageLoad);
      figures.set(key, fig);
    }
  }
  updateProgress(fig, m);
  return fig;
}

function buildFigure(m, senderName, onImageLoad) {
  const alt = isOwn(m) ? 'Your photo' : `Photo from ${senderName}`;
  const img = h('img', { alt, decoding: 'async' });
  if (m.media && m.media.width && m.media.height) {
    img.width = m.media.width;
    img.height = m.media.height;
  }
  const open = h('button', { type: 'button', class: 'img-btn loading', 'aria-label': `${alt}, open full size`, disabled: true }, img);
  const bar = h('span', { class: 'progress-bar' });
  const progress = h('span', { class: 'progress', hidden: true, role: 'progressbar', 'aria-label': 'Uploading', 'aria-valuemin': '0', 'aria-valuemax': '100' }, bar);
  const fig = h('figure', { class: 'figure', dataset: { mediaId: String((m.media && m.media.media_id) || ''), loaded: 'no' } }, open, progress);
  const load = () => {
    imageUrl(m)
      .then((url) => {
        img.addEventListener('load', () => onImageLoad && onImageLoad(), { once: true });
        img.src = url;
        fig.dataset.loaded = 'yes';
        open.disabled = false;
        open.classList.remove('loading', 'broken');
      })
      .catch(() => {
        open.classList.add('broken');
        open.classList.remove('loading');
        open.disabled = false;
        fig.dataset.loaded = 'no';
        // Try again when the message next changes (e.g. its media arrives), or on click.
        fig.dataset.mediaId = '\u0000';
      });
  };
  open.addEventListener('click', () => {
    if (img.src) openViewer(img.src, alt);
    else {
      open.disabled = true;
      open.classList.add('loading');
      load();
    }
  });
  load();
  return fig;
}

/** Shows the upload bar of an image of ours while it is being sent. */
export function updateProgress(fig, m) {
  const progress = fig.querySelector('.progress');
  const bar = fig.querySelector('.progress-bar');
  const up = state.uploads.get(m.client_msg_id);
  const sending = m.status === 'sending' && isOwn(m);
  if (!sending) {
    progress.hidden = true;
    if (up && m.status !== 'sending') state.uploads.delete(m.client_msg_id);
    return;
  }
  const pct = up && up.total > 0 ? Math.min(100, Math.round((up.sent / up.total) * 100)) : 0;
  progress.hidden = false;
  progress.setAttribute('aria-valuenow', String(pct));
  bar.style.width = `${pct}%`;
}
