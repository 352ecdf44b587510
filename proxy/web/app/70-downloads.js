// Downloads: a file the remote page downloads is fetched by the isolated
// browser; Glovebox decides (policy, size, virus scan) and offers an
// allowed one at a one-time URL of this origin. The download bar shows
// each one: its name, size, progress and the decision. A file that is
// ready is saved at once, as a local download would be; its Save link
// stays for a browser that asked first. A refused one says why; one the
// rule lets the user only view opens in the isolated tab itself.
const DOWNLOADS_SHOWN = 5;
const downloadBar = document.createElement('div');
downloadBar.id = 'glovebox-downloads';
downloadBar.setAttribute('role', 'status');
downloadBar.setAttribute('aria-live', 'polite');
downloadBar.hidden = true;
document.body.append(downloadBar);
const downloadRows = new Map();

function sizeText(n) {
  if (!(n > 0)) return '';
  if (n < 1024) return n + ' B';
  if (n < 1 << 20) return (n / 1024).toFixed(1) + ' KB';
  return (n / (1 << 20)).toFixed(1) + ' MB';
}

function downloadRow(id) {
  let r = downloadRows.get(id);
  if (r) return r;
  const row = document.createElement('div');
  row.className = 'glovebox-download';
  const name = document.createElement('span');
  name.className = 'glovebox-download-name';
  const state = document.createElement('span');
  state.className = 'glovebox-download-state';
  const close = document.createElement('button');
  close.className = 'glovebox-download-close';
  close.textContent = '×';
  close.title = 'Hide';
  close.addEventListener('click', () => {
    row.remove();
    downloadRows.delete(id);
    downloadBar.hidden = downloadRows.size === 0;
  });
  row.append(name, state, close);
  downloadBar.append(row);
  r = { row, name, state, saved: false };
  downloadRows.set(id, r);
  // The oldest rows go.
  for (const [k, v] of downloadRows) {
    if (downloadRows.size <= DOWNLOADS_SHOWN) break;
    v.row.remove();
    downloadRows.delete(k);
  }
  downloadBar.hidden = false;
  return r;
}

// sameOriginFile is u when it is a file URL of this origin (Glovebox's),
// else null: the page never follows a link the server did not make.
function sameOriginFile(u) {
  try {
    const url = new URL(u, location.href);
    return url.origin === location.origin && url.pathname.startsWith('/.glovebox/files/') ? url.href : null;
  } catch (e) { return null; }
}

onMessage('download', (m) => {
  if (typeof m.id !== 'string') return;
  const r = downloadRow(m.id);
  r.row.dataset.state = m.state || '';
  r.name.textContent = m.name || 'download';
  const size = sizeText(m.size);
  switch (m.state) {
    case 'progress':
      r.state.textContent = m.size > 0
        ? 'Downloading… ' + Math.floor(100 * (m.received || 0) / m.size) + '% of ' + size
        : 'Downloading… ' + sizeText(m.received);
      break;
    case 'checking':
      r.state.textContent = 'Checking' + (size ? ' (' + size + ')' : '') + '…';
      break;
    case 'ready': {
      const href = sameOriginFile(m.url);
      if (!href) return;
      r.state.textContent = size + ' ';
      r.row.dataset.url = href;
      const a = document.createElement('a');
      a.className = 'glovebox-download-save';
      a.href = href;
      a.download = m.name || 'download';
      a.textContent = 'Save';
      a.addEventListener('click', () => {
        r.saved = true;
        r.row.dataset.state = 'saved';
        r.state.textContent = 'Saved to your downloads (' + size + ')';
      });
      r.state.append(a);
      a.click();
      break;
    }
    case 'viewed':
    case 'refused':
    case 'failed':
      r.state.textContent = m.message || 'The download was refused.';
      break;
    default:
      r.state.textContent = '';
  }
});

// The remote page's own Print button (window.print()): asked here, as a
// local print dialog would; Print goes on as Ctrl+P does, to a PDF that
// arrives as a download.
onMessage('print-request', () => {
  if (document.getElementById('glovebox-print')) return;
  askBox('glovebox-print', [{ text: 'This page wants to print. It is saved as a PDF in your downloads.' }], [
    { id: 'glovebox-print-ok', label: 'Print', fn: () => { focusInput(); send({ t: 'print' }); } },
    { label: 'Cancel', fn: focusInput },
  ]);
});
