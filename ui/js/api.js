// The shell is the whole backend: commands through `invoke`, events through one Channel.
// Everything else in the UI talks to these three exports only.

const tauri = window.__TAURI__ && window.__TAURI__.core;

/** Normalises whatever a failed invoke rejects with into `{code, message, retry_after?}`. */
function normalise(err) {
  if (err && typeof err === 'object' && (err.code || err.message)) {
    return { code: err.code || 'ERROR', message: err.message || String(err.code), retry_after: err.retry_after };
  }
  if (typeof err === 'string') {
    try {
      return normalise(JSON.parse(err));
    } catch {
      return { code: 'ERROR', message: err };
    }
  }
  return { code: 'ERROR', message: 'Something went wrong' };
}

/** Calls a shell command; rejects with `{code, message, retry_after?}`. */
export async function call(command, args, options) {
  if (!tauri) throw { code: 'NO_SHELL', message: 'This page runs inside the Tara app only' };
  try {
    return await tauri.invoke(command, args, options);
  } catch (err) {
    const e = normalise(err);
    console.warn(`${command} failed:`, e.code, e.message);
    throw e;
  }
}

// ---- the event bus: the shell's events, plus the UI's own (names with a dot, e.g. `ui.nav`)

const handlers = new Map();

/** Listens to events of `type` (`*` for all); returns the function that stops listening. */
export function on(type, fn) {
  if (!handlers.has(type)) handlers.set(type, new Set());
  handlers.get(type).add(fn);
  return () => handlers.get(type).delete(fn);
}

/** Hands an event to its listeners; one failing listener does not stop the others. */
export function emit(event) {
  for (const key of [event.type, '*']) {
    for (const fn of [...(handlers.get(key) || [])]) {
      try {
        fn(event);
      } catch (err) {
        console.error(`listener of ${event.type} failed`, err);
      }
    }
  }
}

/** Registers the UI's channel with the shell; events flow to `emit` from then on. */
export async function subscribe() {
  if (!tauri) throw { code: 'NO_SHELL', message: 'This page runs inside the Tara app only' };
  const channel = new tauri.Channel();
  channel.onmessage = (event) => {
    if (event && typeof event === 'object' && event.type) emit(event);
  };
  await call('events_subscribe', { onEvent: channel });
}
