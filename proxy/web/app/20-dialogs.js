// Dialogs: the remote page's alert, confirm, prompt and beforeunload, and a
// sign-in for the HTTP authentication a site asks for, as modal dialogs.
// The remote page waits until the user answers; what the user answers
// (OK/Cancel, the typed text, the user name and password) is what it gets.
// Everything the remote page wrote is shown as text only.
const MAX_QUEUE = 8;
const MAX_ANSWER = 4096; // render.MaxDialogText
const MAX_FIELD = 1024; // render.MaxAuthField
const dialogQueue = []; // waiting server messages, the first one shown
let dialogShown = null;

function el(tag, props, ...kids) {
  const e = document.createElement(tag);
  Object.assign(e, props || {});
  for (const k of kids) e.append(k);
  return e;
}

// The landing page's keys go to the remote page (00-core.js listens on
// window): inside a dialog they stay with the dialog.
function keepKeys(box) {
  for (const type of ['keydown', 'keyup', 'keypress', 'paste', 'compositionend']) {
    box.addEventListener(type, (ev) => ev.stopPropagation());
  }
}

function modal(id, parts) {
  const form = el('form', { className: 'glovebox-box', noValidate: true }, ...parts);
  const m = el('div', { id, className: 'glovebox-modal', hidden: true }, form);
  m.setAttribute('role', 'dialog');
  m.setAttribute('aria-modal', 'true');
  keepKeys(m);
  document.body.append(m);
  return { m, form };
}

const dlg = {
  origin: el('p', { className: 'glovebox-origin' }),
  text: el('p', { id: 'glovebox-dialog-text', className: 'glovebox-text' }),
  input: el('input', { id: 'glovebox-dialog-input', type: 'text', autocomplete: 'off', maxLength: MAX_ANSWER }),
  cancel: el('button', { id: 'glovebox-dialog-cancel', type: 'button', textContent: 'Cancel' }),
  ok: el('button', { id: 'glovebox-dialog-ok', type: 'submit', textContent: 'OK' }),
};
Object.assign(dlg, modal('glovebox-dialog', [dlg.origin, dlg.text, dlg.input,
  el('div', { className: 'glovebox-buttons' }, dlg.cancel, dlg.ok)]));

const auth = {
  title: el('p', { className: 'glovebox-origin', textContent: 'Sign in' }),
  text: el('p', { id: 'glovebox-auth-text', className: 'glovebox-text' }),
  user: el('input', { id: 'glovebox-auth-user', type: 'text', autocomplete: 'username', maxLength: MAX_FIELD, placeholder: 'Username' }),
  pass: el('input', { id: 'glovebox-auth-pass', type: 'password', autocomplete: 'current-password', maxLength: MAX_FIELD, placeholder: 'Password' }),
  cancel: el('button', { id: 'glovebox-auth-cancel', type: 'button', textContent: 'Cancel' }),
  ok: el('button', { id: 'glovebox-auth-ok', type: 'submit', textContent: 'Sign in' }),
};
Object.assign(auth, modal('glovebox-auth', [auth.title, auth.text, auth.user, auth.pass,
  el('div', { className: 'glovebox-buttons' }, auth.cancel, auth.ok)]));

function hostOf(u) {
  try { return new URL(u).host; } catch (e) { return ''; }
}

function showNext() {
  dlg.m.hidden = true;
  auth.m.hidden = true;
  dialogShown = dialogQueue[0] || null;
  const m = dialogShown;
  if (!m) { video.focus(); return; }
  if (m.t === 'auth') {
    const host = hostOf(m.url);
    auth.text.textContent = (host ? host + ' asks for a user name and password.' : 'The site asks for a user name and password.') +
      (m.realm ? ' It says: “' + m.realm + '”' : '');
    auth.user.value = '';
    auth.pass.value = '';
    auth.m.hidden = false;
    auth.user.focus();
    return;
  }
  const host = hostOf(m.url);
  const leave = m.kind === 'beforeunload';
  dlg.origin.textContent = leave ? 'Leave site?' : (host ? host + ' says' : 'The page says');
  dlg.text.textContent = leave ? (m.message || 'Changes that you made may not be saved.') : (m.message || '');
  dlg.input.hidden = m.kind !== 'prompt';
  dlg.input.value = m.kind === 'prompt' ? (m.text || '') : '';
  dlg.cancel.hidden = m.kind === 'alert';
  dlg.ok.textContent = leave ? 'Leave' : 'OK';
  dlg.m.hidden = false;
  if (m.kind === 'prompt') { dlg.input.focus(); dlg.input.select(); } else dlg.ok.focus();
}

function enqueue(m) {
  if (typeof m.id !== 'string' || !m.id) return;
  if (dialogQueue.some((q) => q.id === m.id)) return; // sent again on reattach
  if (dialogQueue.length >= MAX_QUEUE) return;
  dialogQueue.push(m);
  if (!dialogShown) showNext();
}

function drop(id) {
  const i = dialogQueue.findIndex((q) => q.id === id);
  if (i < 0) return;
  dialogQueue.splice(i, 1);
  if (i === 0) showNext();
}

function answerDialog(accept) {
  const m = dialogShown;
  if (!m || m.t !== 'dialog') return;
  send({ t: 'dialog', id: m.id, accept, text: accept && m.kind === 'prompt' ? dlg.input.value.slice(0, MAX_ANSWER) : '' });
  drop(m.id);
}

function answerAuth(cancel) {
  const m = dialogShown;
  if (!m || m.t !== 'auth') return;
  if (cancel) send({ t: 'auth', id: m.id, cancel: true });
  else send({ t: 'auth', id: m.id, user: auth.user.value.slice(0, MAX_FIELD), pass: auth.pass.value.slice(0, MAX_FIELD) });
  auth.pass.value = '';
  drop(m.id);
}

dlg.form.addEventListener('submit', (ev) => { ev.preventDefault(); answerDialog(true); });
dlg.cancel.addEventListener('click', () => answerDialog(false));
auth.form.addEventListener('submit', (ev) => { ev.preventDefault(); answerAuth(false); });
auth.cancel.addEventListener('click', () => answerAuth(true));
for (const [box, no] of [[dlg.m, () => answerDialog(false)], [auth.m, () => answerAuth(true)]]) {
  box.addEventListener('keydown', (ev) => { if (ev.key === 'Escape') { ev.preventDefault(); no(); } });
}

onMessage('dialog', enqueue);
onMessage('auth', enqueue);
onMessage('dialog-closed', (m) => drop(m.id));
