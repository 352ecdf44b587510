// {{MARKER}} in the script
document.body.addEventListener('click', (e) => {
  if (e.target.tagName === 'BODY') {
    document.body.classList.add('clicked');
    fetch('/report?event=click', { method: 'POST', body: 'clicked' });
  }
});
document.getElementById('field').addEventListener('input', (e) => {
  fetch('/report?event=input', { method: 'POST', body: e.target.value });
});
// The tests type only once the field reports its focus: keys sent before the
// click has reached the remote page would land on its body.
document.getElementById('field').addEventListener('focus', () => {
  fetch('/report?event=focus', { method: 'POST', body: 'field' });
});
