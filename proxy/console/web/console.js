// The Glovebox console's page: it lists the live tabs, the recent audit
// events and the recordings from the console's API, and ends a tab on
// request. Everything from the server is put in the page as text, never
// as HTML. What changes state is a POST with the session's CSRF token.
'use strict';

(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (sel) => document.querySelector(sel);
  const status = $('#status');

  function say(msg) { status.textContent = msg || ''; }

  // api fetches path below /console/api/ (or an absolute path).
  async function api(path, opts) {
    const r = await fetch(path.startsWith('/') ? path : '/console/api/' + path, Object.assign({ credentials: 'same-origin' }, opts));
    if (r.status === 401) {
      location.assign('/console/login');
      throw new Error('signed out');
    }
    const j = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(j.error || ('HTTP ' + r.status));
    return j;
  }

  function post(path) {
    return api(path, { method: 'POST', headers: { 'X-CSRF-Token': csrf } });
  }

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  function row(cells) {
    const tr = document.createElement('tr');
    for (const c of cells) tr.append(c instanceof Node ? c : el('td', c));
    return tr;
  }

  function duration(s) {
    s = Math.max(0, Math.round(s));
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
    return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
  }

  function bytes(n) {
    if (n < 1024) return n + ' B';
    if (n < 1 << 20) return (n / 1024).toFixed(1) + ' KiB';
    if (n < 1 << 30) return (n / (1 << 20)).toFixed(1) + ' MiB';
    return (n / (1 << 30)).toFixed(2) + ' GiB';
  }

  function localTime(t) {
    const d = new Date(t);
    return isNaN(d) ? t : d.toLocaleString();
  }

  // Live tabs.

  function media(m, attached) {
    if (!m.frames_sent && !attached) return 'no viewer yet';
    const parts = [];
    if (m.codec) parts.push(m.codec + (m.width ? ' ' + m.width + '×' + m.height : ''));
    parts.push(m.frames_sent + ' frames (' + m.frames_skipped + ' skipped)');
    parts.push(bytes(m.bytes_sent));
    if (attached) {
      if (m.bitrate_bps) parts.push((m.bitrate_bps / 1000).toFixed(0) + ' kbit/s');
      if (m.rtt_ms) parts.push('RTT ' + m.rtt_ms.toFixed(0) + ' ms');
      parts.push('loss ' + (m.loss * 100).toFixed(1) + ' %');
    } else {
      parts.push('no viewer attached');
    }
    return parts.join(', ');
  }

  function endButton(t) {
    const b = el('button', 'End', 'danger');
    b.type = 'button';
    b.dataset.tab = t.tab;
    // Two clicks: the first asks, the second ends.
    b.addEventListener('click', async () => {
      if (!b.classList.contains('confirm')) {
        b.classList.add('confirm');
        b.textContent = 'End this tab?';
        setTimeout(() => { b.classList.remove('confirm'); b.textContent = 'End'; }, 5000);
        return;
      }
      b.disabled = true;
      try {
        await post('tabs/' + encodeURIComponent(t.tab) + '/end');
        say('Tab ' + t.tab + ' of ' + (t.user || t.client_ip) + ' ended.');
      } catch (e) {
        say('Could not end tab ' + t.tab + ': ' + e.message);
      }
      refreshTabs();
      refreshEvents();
    });
    return b;
  }

  // Shadowing: a view-only viewer of a live tab, the stream its user
  // gets. One at a time in this page.
  let shadow = null; // { pc, id, tab }

  function shadowButton(t) {
    const b = el('button', shadow && shadow.tab === t.tab ? 'Viewing' : 'Shadow');
    b.type = 'button';
    b.className = 'shadow';
    b.dataset.tab = t.tab;
    b.disabled = !!(shadow && shadow.tab === t.tab);
    b.addEventListener('click', () => startShadow(t));
    return b;
  }

  async function startShadow(t) {
    await stopShadow();
    const pc = new RTCPeerConnection({ iceServers: [] });
    pc.addTransceiver('video', { direction: 'recvonly' });
    const v = $('#shadow-video');
    pc.ontrack = (e) => { v.srcObject = e.streams[0] || new MediaStream([e.track]); };
    shadow = { pc, id: null, tab: t.tab };
    $('#shadow-title').textContent = 'Viewing tab ' + t.tab + ' of ' + (t.user || t.client_ip) + ' (view only)';
    $('#shadow').hidden = false;
    try {
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      const r = await api('tabs/' + encodeURIComponent(t.tab) + '/shadow', {
        method: 'POST', headers: { 'X-CSRF-Token': csrf, 'Content-Type': 'application/json' },
        body: JSON.stringify({ sdp: pc.localDescription.sdp }),
      });
      if (!shadow || shadow.pc !== pc) {
        // Stopped (or another started) while this one was being made.
        stopViewer(r.shadow);
        return;
      }
      shadow.id = r.shadow;
      await pc.setRemoteDescription({ type: 'answer', sdp: r.sdp });
      say('Viewing tab ' + t.tab + '.');
    } catch (e) {
      say('Could not view tab ' + t.tab + ': ' + e.message);
      await stopShadow();
    }
    refreshTabs();
  }

  async function stopShadow() {
    const s = shadow;
    shadow = null;
    $('#shadow').hidden = true;
    $('#shadow-video').srcObject = null;
    if (!s) return;
    // The server first, so that the end it audits is the one asked for.
    if (s.id) await stopViewer(s.id);
    s.pc.close();
  }

  // stopViewer ends viewer id on the server; keepalive lets it go out as
  // the page closes.
  async function stopViewer(id) {
    try {
      await fetch('/console/api/shadows/' + encodeURIComponent(id) + '/stop', {
        method: 'POST', headers: { 'X-CSRF-Token': csrf }, credentials: 'same-origin', keepalive: true,
      });
    } catch (e) { /* gone already */ }
  }

  async function refreshTabs() {
    let j;
    try { j = await api('tabs'); } catch (e) { say('Tabs: ' + e.message); return; }
    const body = $('#tabs tbody');
    body.replaceChildren();
    $('#tabs-count').textContent = '(' + j.tabs.length + ')';
    $('#tabs-empty').hidden = j.tabs.length > 0;
    for (const t of j.tabs) {
      const idLink = el('a', t.tab);
      idLink.href = '#events-h';
      idLink.title = 'Show this tab\'s events';
      idLink.addEventListener('click', () => {
        const f = $('#event-filter');
        f.reset();
        f.elements.tab.value = t.tab;
        refreshEvents();
      });
      const idCell = el('td'); idCell.append(idLink);
      if (t.opener) idCell.append(el('div', 'popup of ' + t.opener, 'muted'));
      const page = el('td', null, 'url');
      page.append(el('div', t.current_url || t.url));
      if (t.title) page.append(el('div', t.title, 'title'));
      if (t.starting) page.append(el('div', 'starting…', 'muted'));
      const actions = el('td');
      if (t.ending) actions.append(el('span', 'ending…', 'muted'));
      else actions.append(endButton(t));
      if (!t.ending && t.attached) actions.append(shadowButton(t));
      const user = el('td', t.user || 'anonymous');
      user.className = 'user';
      body.append(row([idCell, user, el('td', t.client_ip), page,
        el('td', localTime(t.started)), el('td', duration(t.idle_s)), el('td', t.ending ? '—' : media(t.media, t.attached)),
        el('td', (t.container || '—') + (t.runtime ? ' (' + t.runtime + ')' : '')), actions]));
    }
  }

  // Recent events.

  const shown = ['time', 'event', 'user', 'admin', 'host', 'action', 'tab'];

  async function refreshEvents() {
    const q = new URLSearchParams();
    for (const [k, v] of new FormData($('#event-filter'))) if (v) q.set(k, v);
    let j;
    try { j = await api('events?' + q); } catch (e) { say('Events: ' + e.message); return; }
    $('#events-held').textContent = j.events.length + ' shown of the ' + j.held + ' latest events kept (at most ' + j.capacity + ').';
    const body = $('#events tbody');
    body.replaceChildren();
    for (const e of j.events) {
      const details = Object.keys(e).filter((k) => !shown.includes(k) && e[k] !== '')
        .map((k) => k + '=' + (typeof e[k] === 'string' ? e[k] : JSON.stringify(e[k]))).join(' ');
      body.append(row([localTime(e.time), e.event, e.user || e.admin || '', e.host || '', e.action || '', e.tab || '',
        el('td', details, 'details')]));
    }
  }

  // Recordings.

  async function refreshRecordings() {
    let j;
    try { j = await api('recordings'); } catch (e) { say('Recordings: ' + e.message); return; }
    const note = $('#rec-note');
    note.textContent = !j.configured ? 'No recording directory is configured (recording.dir).'
      : j.error ? j.error : j.recordings.length === 0 ? 'No recording yet.' : '';
    const body = $('#recordings tbody');
    body.replaceChildren();
    for (const r of j.recordings) {
      const b = el('button', 'Play');
      b.type = 'button';
      b.addEventListener('click', () => {
        $('#player').hidden = false;
        $('#playing').textContent = r.name;
        const v = $('#video');
        v.src = '/console/recordings/' + r.name.split('/').map(encodeURIComponent).join('/');
        v.play().catch(() => {});
      });
      const act = el('td'); act.append(b);
      body.append(row([r.name, bytes(r.size), localTime(r.modified), act]));
    }
  }

  const signOut = $('#sign-out');
  if (signOut) {
    signOut.addEventListener('click', async () => {
      try { await post('/console/logout'); } catch (e) { /* signed out either way */ }
      location.assign('/console/login');
    });
  }
  $('#shadow-stop').addEventListener('click', () => { stopShadow().then(refreshTabs); });
  window.addEventListener('pagehide', () => { stopShadow(); });
  $('#event-filter').addEventListener('submit', (ev) => { ev.preventDefault(); refreshEvents(); });
  $('#event-filter').addEventListener('reset', () => setTimeout(refreshEvents));

  refreshTabs();
  refreshEvents();
  refreshRecordings();
  setInterval(refreshTabs, 3000);
  setInterval(refreshEvents, 5000);
  setInterval(refreshRecordings, 30000);
})();
