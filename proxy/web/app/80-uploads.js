// Uploads: a file chooser the remote page opens (a click on its
// <input type=file>) opens the user's own file picker here, with the same
// accept and multiple; the chosen files go to Glovebox, which checks them
// (policy, size, virus scan) and gives the allowed ones to the remote
// input. When the browser will not open the picker without a fresh click,
// a prompt asks for one.
let chooserEl = null;

// uploadFiles sends files for the file chooser id, or, with at (a point
// of the remote viewport), as a drop there.
function uploadFiles(id, files, at) {
  const form = new FormData();
  for (const f of files) form.append('file', f, f.name);
  show('Uploading ' + (files.length === 1 ? files[0].name : files.length + ' files') + '…', 'toast');
  const query = at ? 'drop=' + at.x.toFixed(1) + ',' + at.y.toFixed(1) : 'chooser=' + encodeURIComponent(id);
  fetch(API + '/tabs/' + token + '/upload?' + query, {
    method: 'POST', body: form, cache: 'no-store', credentials: 'omit',
  }).then(async (r) => {
    let j = {};
    try { j = await r.json(); } catch (e) { /* not JSON */ }
    if (!r.ok) throw new Error(j.message || ('Glovebox answered HTTP ' + r.status));
    const refused = (j.files || []).filter((f) => !f.allowed);
    if (refused.length) show(refused.map((f) => f.name + ': ' + f.message).join(' '), 'toast');
    else show('');
  }).catch((e) => show('The upload failed: ' + e.message, 'error'));
}

function pickFiles(m) {
  const picker = document.createElement('input');
  picker.type = 'file';
  picker.id = 'glovebox-file-picker';
  picker.hidden = true;
  if (m.multiple) picker.multiple = true;
  if (typeof m.accept === 'string') picker.accept = m.accept;
  picker.addEventListener('change', () => {
    if (picker.files.length) uploadFiles(m.id, [...picker.files]);
    picker.remove();
  });
  picker.addEventListener('cancel', () => picker.remove());
  document.body.append(picker);
  return picker;
}

function askToChoose(m) {
  if (chooserEl) chooserEl.remove();
  const done = () => { chooserEl = null; focusInput(); };
  chooserEl = askBox('glovebox-chooser', [{ text: 'This page asks for ' + (m.multiple ? 'files' : 'a file') + '.' }], [
    { id: 'glovebox-chooser-open', label: 'Choose…', fn: () => { done(); pickFiles(m).click(); } },
    { label: 'Cancel', fn: done },
  ]);
}

onMessage('chooser', (m) => {
  if (typeof m.id !== 'string') return;
  // Within the click's activation the picker opens at once; else the
  // prompt's button gives the click the browser wants.
  if (navigator.userActivation && !navigator.userActivation.isActive) { askToChoose(m); return; }
  const picker = pickFiles(m);
  try {
    if (picker.showPicker) picker.showPicker(); else picker.click();
  } catch (e) {
    picker.remove();
    askToChoose(m);
  }
});

// Drag and drop: local files dropped on the video are dropped on the
// remote page where they fell, as a drop from the desktop would be, under
// the same checks as chosen files. Dropped anywhere else here, a file
// opens nothing (a browser would leave this page to show it).
function draggingFiles(ev) {
  return !!ev.dataTransfer && Array.prototype.includes.call(ev.dataTransfer.types || [], 'Files');
}
addEventListener('dragover', (ev) => {
  if (!draggingFiles(ev)) return;
  ev.preventDefault();
  const onVideo = ev.target === video;
  ev.dataTransfer.dropEffect = onVideo ? 'copy' : 'none';
  document.body.classList.toggle('glovebox-dropping', onVideo);
});
addEventListener('dragleave', (ev) => {
  if (ev.target === video) document.body.classList.remove('glovebox-dropping');
});
addEventListener('drop', (ev) => {
  if (!draggingFiles(ev)) return;
  ev.preventDefault();
  document.body.classList.remove('glovebox-dropping');
  if (ev.target !== video || !ev.dataTransfer.files.length || !token) return;
  uploadFiles(null, [...ev.dataTransfer.files], toRemote(ev));
});
