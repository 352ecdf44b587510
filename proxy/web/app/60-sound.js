// Sound: the remote page's audio is a track in the video's own stream
// (00-core.js). The video element starts muted, which every browser lets
// play at once; when an audio track comes it is unmuted if the browser lets
// this page play sound now, else a small "click for sound" button shows and
// the user's first gesture anywhere on the page (a click on the video too)
// unmutes it.
const soundButton = document.createElement('button');
soundButton.id = 'glovebox-sound';
soundButton.type = 'button';
soundButton.textContent = '\u{1F507} Click for sound';
soundButton.hidden = true;
document.body.appendChild(soundButton);

let soundWanted = false;

// soundAllowed says whether the browser would play sound without a
// gesture: its autoplay policy where it tells (Firefox), else whether a
// fresh AudioContext runs (Chromium starts one suspended when it would
// refuse).
function soundAllowed() {
  if (navigator.getAutoplayPolicy) return navigator.getAutoplayPolicy('mediaelement') === 'allowed';
  try {
    const ac = new AudioContext();
    const ok = ac.state === 'running';
    ac.close();
    return ok;
  } catch (e) {
    return false;
  }
}

// unmute plays the sound, or, when the browser refuses, plays on muted and
// asks for a gesture.
function unmute() {
  if (!soundWanted || !video.muted) return;
  video.muted = false;
  video.play().then(() => { soundButton.hidden = true; }, () => {
    video.muted = true;
    video.play().catch(() => {});
    soundButton.hidden = false;
  });
}

onTrack((track) => {
  if (track.kind !== 'audio') return;
  soundWanted = true;
  if (soundAllowed()) unmute();
  else soundButton.hidden = false;
});

// A gesture is what lets a page play sound: the first one unmutes. The
// listeners capture, so the remote page still gets the click or key.
for (const type of ['pointerdown', 'keydown', 'touchend']) {
  window.addEventListener(type, unmute, { capture: true });
}
soundButton.addEventListener('click', (e) => {
  e.stopPropagation();
  unmute();
  focusInput(); // 50-keys.js: the keys go on to the remote page
});
