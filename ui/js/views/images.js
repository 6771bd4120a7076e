// Chat images: bytes from the shell turned into object URLs (once per message), and the viewer.

import { call } from '../api.js';
import { h, icon } from '../util.js';

const urls = new Map(); // client_msg_id → Promise<string>
const MAX = 150;

/** The object URL of a message's image; a failure is forgotten so the next call tries again. */
export function imageUrl(m) {
  const key = m.client_msg_id;
  if (urls.has(key)) return urls.get(key);
  const type = (m.media && m.media.content_type) || 'image/jpeg';
  const p = call('image', { id: m.consultation_id, clientMsgId: key }).then((bytes) => {
    const data = bytes instanceof ArrayBuffer || ArrayBuffer.isView(bytes) ? bytes : new Uint8Array(bytes);
    return URL.createObjectURL(new Blob([data], { type }));
  });
  p.catch(() => urls.delete(key));
  urls.set(key, p);
  while (urls.size > MAX) {
    const [oldKey, oldUrl] = urls.entries().next().value;
    urls.delete(oldKey);
    oldUrl.then((u) => URL.revokeObjectURL(u)).catch(() => {});
  }
  return p;
}

/** Opens the image full size over everything; Escape, the close button or a click outside closes. */
export function openViewer(src, alt) {
  const opener = document.activeElement;
  const close = h('button', { type: 'button', class: 'icon-btn viewer-close', 'aria-label': 'Close image' }, icon('close'));
  const img = h('img', { class: 'viewer-img', src, alt: alt || 'Image' });
  const dialog = h('dialog', { class: 'viewer', 'aria-label': alt || 'Image' }, img, close);
  close.addEventListener('click', () => dialog.close());
  dialog.addEventListener('click', (e) => {
    if (e.target === dialog) dialog.close();
  });
  dialog.addEventListener('close', () => {
    dialog.remove();
    if (opener && opener.isConnected) opener.focus();
  });
  document.body.append(dialog);
  dialog.showModal();
  close.focus();
}
