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
