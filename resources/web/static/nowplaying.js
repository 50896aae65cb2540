// What the guests hear: title, artist and cover, on the page and on the lock screen.
// While listening it comes from the Sendspin metadata role (the server sends each change when
// its audio plays, so the title flips with the song); before that, from /api/status. Covers
// come from our own server by content key (/api/artwork/<key>): no internet, never a path.

const $ = (id) => document.getElementById(id);
let shownKey = null; // what the page shows now (title + cover)
let lockKey = null; // what we last put on the lock screen

/** The track from the player's metadata, else from the party status, else null. */
export function currentTrack(serverState, status) {
  const meta = serverState && serverState.metadata;
  if (meta && (meta.title || meta.artist)) {
    return {
      title: meta.title || "",
      artist: meta.artist || "",
      album: meta.album || "",
      cover: coverKey(meta.artwork_url),
    };
  }
  if (status) {
    return {
      title: status.title || status.label || "",
      artist: status.artist || "",
      album: status.album || "",
      cover: status.artwork || null,
    };
  }
  return null;
}

/** Our servers name covers /api/artwork/<key>; anything else is not ours to load. */
function coverKey(url) {
  const match = /\/api\/artwork\/([0-9a-f]{8,64})$/.exec(url || "");
  return match ? match[1] : null;
}

function coverUrl(key) {
  return new URL(`/api/artwork/${key}`, location.href).href;
}

/** Paint the now-playing card; put the track on the lock screen while listening. */
export function renderNowPlaying(track, { listening, partyName }) {
  const card = $("now");
  if (!card) return;
  card.hidden = !track || !track.title;
  if (track) {
    const key = `${track.title}\n${track.artist}\n${track.cover}`;
    if (key !== shownKey) {
      shownKey = key;
      $("now-title").textContent = track.title;
      $("now-artist").textContent = track.artist;
      const img = $("now-cover");
      if (track.cover) {
        img.src = coverUrl(track.cover);
        img.hidden = false;
      } else {
        img.hidden = true;
        img.removeAttribute("src");
      }
      card.dataset.cover = track.cover ? "yes" : "no";
    }
  }
  if (listening && track && track.title) lockScreen(track, partyName);
  else lockKey = null;
}

$("now-cover")?.addEventListener("error", (event) => {
  event.target.hidden = true; // a cover that vanished: the placeholder shows instead
  $("now").dataset.cover = "no";
});

function lockScreen(track, partyName) {
  if (!("mediaSession" in navigator) || typeof MediaMetadata === "undefined") return;
  const current = navigator.mediaSession.metadata;
  const key = `${track.title}\n${track.artist}\n${track.cover}`;
  // Re-apply when something else (the party-name card) replaced ours.
  if (key === lockKey && current && current.title === track.title) return;
  lockKey = key;
  const artwork = track.cover
    ? [{ src: coverUrl(track.cover) }]
    : [
        { src: "/static/icons/icon-192.png", sizes: "192x192", type: "image/png" },
        { src: "/static/icons/icon-512.png", sizes: "512x512", type: "image/png" },
      ];
  navigator.mediaSession.metadata = new MediaMetadata({
    title: track.title,
    artist: track.artist || partyName,
    album: track.album || partyName,
    artwork,
  });
}
