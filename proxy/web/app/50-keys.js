// Keyboard, text and touch.
//
// The keyboard's focus is a hidden text field, #glovebox-input, while the
// user works in the remote page. A key goes out as a key event, so that the
// page sees keydown and keyup with the key the user's own layout made (é on
// a French keyboard, @ by AltGr). What does not come from a key — an input
// method's composition (Chinese, Japanese, Korean), the emoji panel,
// dictation, a phone keyboard's words and autocorrect — arrives in the hidden
// field as composition and input events, and goes out as text: the
// composition as it changes ({t:'compose'}, shown underlined in the remote
// field), then the committed text ({t:'text'}). On a phone the same field
// raises the on-screen keyboard when a remote text field has the focus.
const input = document.createElement('textarea');
input.id = 'glovebox-input';
input.setAttribute('aria-label', 'Keyboard input for the isolated page');
input.setAttribute('autocomplete', 'off');
input.setAttribute('autocorrect', 'off');
input.setAttribute('autocapitalize', 'off');
input.spellcheck = false;
// No on-screen keyboard until a remote text field has the focus.
input.inputMode = 'none';
document.body.appendChild(input);

// focusInput gives the hidden field the keyboard's focus, placed where the
// user pointed so that an input method's candidate window opens there.
function focusInput(ev) {
  if (ev && typeof ev.clientX === 'number') {
    input.style.left = Math.max(0, Math.min(ev.clientX, window.innerWidth - 2)) + 'px';
    input.style.top = Math.max(0, Math.min(ev.clientY, window.innerHeight - 2)) + 'px';
  }
  if (document.activeElement !== input) input.focus({ preventScroll: true });
}

// Keys the user's own browser keeps: closing, new tabs and windows, the
// address bar, reload, fullscreen, devtools. The rest (Ctrl+A, Ctrl+Z, Ctrl+F,
// Tab, Escape) belong to the page.
function browserKey(ev) {
  if ((ev.ctrlKey || ev.metaKey) && !ev.altKey && 'wtnrlq'.includes(ev.key.toLowerCase())) return true;
  return ev.key === 'F5' || ev.key === 'F11' || ev.key === 'F12';
}

// imeKey reports a key the input method or a dead key takes: its text comes
// later, as composition and input events.
function imeKey(ev) {
  return ev.isComposing || ev.keyCode === 229 || ev.key === 'Process' || ev.key === 'Dead' || ev.key === 'Unidentified';
}

// remoteTarget reports whether a key event is the remote page's: the landing
// page's own controls (a dialog's text field, a menu) keep theirs.
function remoteTarget(ev) {
  const t = ev.target;
  return t === input || t === video || t === document.body || t === document.documentElement || t === window;
}

function key(type) {
  return (ev) => {
    if (!remoteTarget(ev) || browserKey(ev) || imeKey(ev)) return;
    // Ctrl/Cmd+P prints the remote page (to a PDF the user downloads),
    // not this one.
    if ((ev.ctrlKey || ev.metaKey) && !ev.altKey && ev.key.toLowerCase() === 'p') {
      ev.preventDefault();
      if (type === 'down' && !ev.repeat) send({ t: 'print' });
      return;
    }
    // Ctrl/Cmd+V arrives as a paste event with the text instead.
    if ((ev.ctrlKey || ev.metaKey) && ev.key.toLowerCase() === 'v') return;
    ev.preventDefault();
    let m = mods(ev);
    // AltGr is Ctrl+Alt to Windows: what it types is a character, not a
    // shortcut, and the remote page must get it as one.
    if (ev.getModifierState && ev.getModifierState('AltGraph')) m &= ~3;
    send({ t: 'key', type, key: ev.key, code: ev.code, keyCode: ev.keyCode, mods: m });
    // Ctrl/Cmd+C copies the remote selection to this clipboard, as far as
    // clipboard_out allows (the copy answer comes within this key's
    // activation, which writing the clipboard needs).
    if (type === 'down' && (ev.ctrlKey || ev.metaKey) && !ev.altKey && ev.key.toLowerCase() === 'c') send({ t: 'copy' });
  };
}
window.addEventListener('keydown', key('down'));
window.addEventListener('keyup', key('up'));
// The key's text went with its keydown: a keypress of its own (as DevTools'
// char events and some platforms make) must not type it a second time.
window.addEventListener('keypress', (ev) => {
  if (remoteTarget(ev) && !browserKey(ev) && !imeKey(ev)) ev.preventDefault();
});

// Text. The hidden field is emptied once its text is sent: it holds at
// most a composition under way.
let composing = false;
input.addEventListener('compositionstart', () => { composing = true; });
input.addEventListener('compositionupdate', (ev) => {
  send({ t: 'compose', text: (ev.data || '').slice(0, 1000) });
});
input.addEventListener('compositionend', (ev) => {
  composing = false;
  if (ev.data) send({ t: 'text', text: ev.data.slice(0, 4096) });
  else send({ t: 'compose', text: '' }); // cancelled: remove it remotely
  input.value = '';
});
input.addEventListener('input', (ev) => {
  if (composing || ev.isComposing) return;
  const text = input.value;
  input.value = '';
  if (text) {
    send({ t: 'text', text: text.slice(0, 4096) });
  } else if (ev.inputType === 'deleteContentBackward') {
    // A phone keyboard's Backspace, which sends no key of its own.
    send({ t: 'key', type: 'down', key: 'Backspace', code: 'Backspace', keyCode: 8, mods: 0 });
    send({ t: 'key', type: 'up', key: 'Backspace', code: 'Backspace', keyCode: 8, mods: 0 });
  }
});
window.addEventListener('paste', (ev) => {
  if (!remoteTarget(ev)) return;
  const text = ev.clipboardData && ev.clipboardData.getData('text/plain');
  // A paste event remotely, with the text (Glovebox applies clipboard_in).
  if (text) { ev.preventDefault(); send({ t: 'paste', text: text.slice(0, 4096) }); return; }
  // An image (a screenshot): up to Glovebox, which gives it to the remote
  // page's paste as a file (under clipboard_in).
  const file = [...((ev.clipboardData && ev.clipboardData.files) || [])].find((f) => /^image\/(png|jpeg|gif|webp)$/.test(f.type));
  if (!file || !token) return;
  ev.preventDefault();
  fetch(API + '/tabs/' + token + '/paste-image', {
    method: 'POST', body: file, headers: { 'Content-Type': file.type }, cache: 'no-store', credentials: 'omit',
  }).then(async (r) => {
    if (r.ok) return;
    let j = {};
    try { j = await r.json(); } catch (e) { /* not JSON */ }
    show(j.message || ('The image was not pasted (HTTP ' + r.status + ').'), 'toast');
  }).catch(() => show('The image was not pasted.', 'toast'));
});

// A touch device's keyboard follows the remote focus: Glovebox says after
// each tap whether a text field has it, and which keyboard it asks for.
onMessage('focus', (m) => {
  const mode = m.editable ? (m.inputmode || 'text') : 'none';
  if (input.inputMode === mode) return;
  input.inputMode = mode;
  if (m.editable && document.activeElement === input) {
    // A phone shows its keyboard on focus: focus again, with the new mode.
    input.blur();
    input.focus({ preventScroll: true });
  }
});

// Touch: each change of the fingers on the video goes out with the fingers
// still down, and the remote page sees a touch screen (touchstart, a tap's
// click, a swipe's scroll, a pinch). The landing page itself neither
// scrolls nor zooms (touch-action: none) nor makes mouse events of it.
const touchIDs = new Map();
let nextTouchID = 0;

function touchPoints(ev) {
  const points = [];
  const live = new Set();
  for (const t of ev.touches) {
    if (points.length === 10) break;
    let id = touchIDs.get(t.identifier);
    if (id === undefined) {
      id = nextTouchID;
      nextTouchID = (nextTouchID + 1) % 1000000;
      touchIDs.set(t.identifier, id);
    }
    live.add(t.identifier);
    const p = toRemote(t);
    points.push({ x: p.x, y: p.y, id });
  }
  for (const k of touchIDs.keys()) if (!live.has(k)) touchIDs.delete(k);
  return points;
}

function touch(ev) {
  ev.preventDefault();
  const points = touchPoints(ev);
  let type = ev.type === 'touchstart' ? 'start' : 'move';
  if (ev.type === 'touchend' || ev.type === 'touchcancel') {
    // A finger up while others stay is a change of the points still down.
    type = points.length ? 'move' : (ev.type === 'touchend' ? 'end' : 'cancel');
  }
  if ((type === 'start' || type === 'move') && !points.length) return;
  send({ t: 'touch', type, points: type === 'end' || type === 'cancel' ? [] : points, mods: mods(ev) });
  // Within the tap, as a phone requires to show its keyboard at all.
  if (ev.type === 'touchend' && ev.changedTouches.length) focusInput(ev.changedTouches[0]);
}
for (const type of ['touchstart', 'touchmove', 'touchend', 'touchcancel']) {
  video.addEventListener(type, touch, { passive: false });
}
