// What the phone's OS sees of us: a screen wake lock while listening and the lock-screen
// media card. Every API here is optional; where one is missing (Wake Lock needs a secure
// context, so plain http://LAN-IP usually has none) we carry on without it, silently.

let wakeLock = null;
let wantAwake = false;

async function requestWakeLock() {
  if (!wantAwake || wakeLock || !("wakeLock" in navigator)) return;
  if (document.visibilityState !== "visible") return;
  try {
    wakeLock = await navigator.wakeLock.request("screen");
    wakeLock.addEventListener("release", () => {
      wakeLock = null;
    });
  } catch {
    wakeLock = null; // refused (battery saver, permissions policy): not worth a word
  }
}

/** Keep the screen on while listening; the OS drops the lock when hidden, so re-ask on return. */
export function keepAwake(on) {
  wantAwake = on;
  if (on) {
    requestWakeLock();
  } else if (wakeLock) {
    wakeLock.release().catch(() => {});
    wakeLock = null;
  }
}

export function reacquireWakeLock() {
  requestWakeLock();
}

export function hasWakeLock() {
  return wakeLock !== null;
}

/** Lock screen / notification card: the party's name instead of a bare URL. */
export function showOnLockScreen(partyName) {
  if (!("mediaSession" in navigator) || typeof MediaMetadata === "undefined") return;
  navigator.mediaSession.metadata = new MediaMetadata({
    title: partyName,
    artist: "Party Stream",
    album: "Live silent disco",
    artwork: [
      { src: "/static/icons/icon-192.png", sizes: "192x192", type: "image/png" },
      { src: "/static/icons/icon-512.png", sizes: "512x512", type: "image/png" },
    ],
  });
}

export function clearLockScreen() {
  if (!("mediaSession" in navigator)) return;
  navigator.mediaSession.metadata = null;
}

/** Lock-screen buttons: a live party cannot pause, so pause/play mean mute/unmute here. */
export function onLockScreenActions({ mute, unmute, stop }) {
  if (!("mediaSession" in navigator)) return;
  const handlers = { pause: mute, play: unmute, stop };
  for (const [action, handler] of Object.entries(handlers)) {
    try {
      navigator.mediaSession.setActionHandler(action, handler);
    } catch {
      // this browser does not know the action
    }
  }
}
