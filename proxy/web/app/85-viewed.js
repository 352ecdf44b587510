// An operator viewing this session (console.shadow_notice): a badge says
// so for as long as one is there.
const viewedEl = document.createElement('div');
viewedEl.id = 'glovebox-viewed';
viewedEl.setAttribute('role', 'status');
viewedEl.hidden = true;
viewedEl.textContent = 'An administrator is viewing this session.';
document.body.append(viewedEl);
onMessage('viewed', (m) => { viewedEl.hidden = !(m.viewers > 0); });
