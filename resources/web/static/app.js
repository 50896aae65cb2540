// The guest's page: one tap to listen, then sync, volume, who else is here, and how to invite.
import { fetchStatus } from "./party-api.js";
import { PartyListener, tabPlayerId } from "./listener.js";
import {
  keepAwake, reacquireWakeLock, hasWakeLock, showOnLockScreen, clearLockScreen,
  onLockScreenActions,
} from "./phone.js";
import { setupShare } from "./share.js";
import { savedPin, setupPinForm } from "./pin.js";
import { setupCalibration } from "./calibrate.js";
import { saveName, savedName, startReports } from "./report.js";
import { setupMotion } from "./motion.js";
import { setupSync } from "./sync.js";
import { currentTrack, renderNowPlaying } from "./nowplaying.js";
import { setupChannels } from "./channels.js";

const STATUS_EVERY_MS = 2000;
const STATUS_TROUBLE_EVERY_MS = 1000; // connection lost: find out quickly whether the party ended
const STATUS_HIDDEN_EVERY_MS = 10000; // nobody reads the count on a locked screen
const UNREACHABLE_TIMES = 3; // consecutive failed status polls before we call the party over
const AWAY_LIMIT_MS = 10 * 60 * 1000;
const COUNTS_SETTLE_MS = 600; // a worker reports a switched phone's count within ~0.5 s

const $ = (id) => document.getElementById(id);
const ui = {
  app: $("app"), start: $("start"), startLabel: document.querySelector("#start .label"),
  name: $("party-name"), listeners: $("listeners"), listenerCount: $("listener-count"),
  sync: $("sync"), syncText: $("sync-text"), codec: $("codec"), message: $("message"), detail: $("detail"),
  mute: $("mute"), volume: $("volume"), stop: $("stop"),
};

const party = { name: "", state: null, listeners: null, url: null, message: null, misses: 0 };
let ended = false; // the party stopped or vanished: we stopped listening and say so
let away = false; // the OS suspended our audio while hidden: a tap must wake it
let needTap = false; // the browser would not start audio from the last tap: ask for another
let comeback = ""; // one-off note shown in idle after the party came back
let hiddenAt = 0;

const listener = new PartyListener({
  onChange() {
    // (called as the listener's method.) A dropped worker may mean the party stopped:
    // ask the front door now rather than at the next regular poll.
    if (this.state === "lost" && pollNow) pollNow();
    render();
  },
});

// The sync badge: resources/web/static/sync.js.
const sync = setupSync({ listener, badge: ui.sync, text: ui.syncText, codec: ui.codec });

// ---------- listening ----------

function startListening() {
  let unlocking;
  try {
    unlocking = listener.unlock(); // first thing in the tap, before any await
  } catch (err) {
    ui.detail.textContent = "This browser cannot play the party's audio.";
    console.error(err);
    return;
  }
  unlocking.catch(() => {
    needTap = true; // the browser refused to start audio from this tap
    render();
  });
  away = false;
  needTap = false;
  comeback = "";
  sync.reset();
  listener.start();
  keepAwake(true);
  showOnLockScreen(party.name || "Party Stream");
  render();
}

function stopListening() {
  away = false;
  needTap = false;
  listener.stop();
  keepAwake(false);
  clearLockScreen();
  render();
}

ui.start.addEventListener("click", startListening);
setupPinForm({ form: $("pin-form"), input: $("pin-input"), onPin: startListening });
ui.stop.addEventListener("click", stopListening);

// ---------- volume ----------

function loadVolume() {
  try {
    const saved = Number(localStorage.getItem("partystream-volume"));
    if (Number.isFinite(saved) && saved > 0 && saved <= 100) return saved;
  } catch {
    // private mode: no storage, no problem
  }
  return 100;
}

function setMuted(muted) {
  listener.setMuted(muted);
  ui.mute.setAttribute("aria-pressed", String(muted));
  ui.mute.setAttribute("aria-label", muted ? "Unmute" : "Mute");
  ui.app.classList.toggle("is-muted", muted);
  if ("mediaSession" in navigator && listener.playing) {
    navigator.mediaSession.playbackState = muted ? "paused" : "playing";
  }
}

ui.volume.value = String(loadVolume());
listener.setVolume(Number(ui.volume.value));
paintVolume();
ui.volume.addEventListener("input", () => {
  const volume = Number(ui.volume.value);
  listener.setVolume(volume);
  if (volume > 0 && listener.muted) setMuted(false);
  paintVolume();
  try {
    localStorage.setItem("partystream-volume", String(volume));
  } catch {
    // ignore
  }
});
ui.mute.addEventListener("click", () => setMuted(!listener.muted));

function paintVolume() {
  ui.volume.style.setProperty("--fill", `${ui.volume.value}%`);
}

onLockScreenActions({
  mute: () => setMuted(true),
  unmute: () => setMuted(false),
  stop: stopListening,
});

// ---------- sharing ----------

function partyUrl() {
  const pin = savedPin(); // a link that carries the PIN (a fragment: never sent to a server)
  return (party.url || `${location.origin}/`) + (pin ? `#pin=${pin}` : "");
}

setupMotion();
setupShare({
  toggle: $("share-toggle"), sheet: $("share"), close: $("share-close"), qr: $("qr"),
  urlText: $("share-url"), copyButton: $("copy"), shareButton: $("share-native"),
  getUrl: partyUrl,
});

const calibration = setupCalibration({
  listener, open: $("calibrate-open"), sheet: $("calibrate"), close: $("calibrate-close"),
  ui: {
    tap: $("calibrate-tap"), pulse: $("calibrate-tap"), start: $("calibrate-start"),
    result: $("calibrate-result"), current: $("calibrate-current"), reset: $("calibrate-reset"),
    nudges: [...document.querySelectorAll("#calibrate .nudge[data-ms]")],
  },
});

const channels = setupChannels({
  root: $("channels"), announce: $("channel-announce"), listener, playerId: tabPlayerId,
  onChange: () => render(),
  onSwitched: () => setTimeout(() => pollNow && pollNow(), COUNTS_SETTLE_MS),
});

const reports = startReports({
  listener, playerId: tabPlayerId, syncErrorMs: () => sync.errorMs(), onChannel: channels.heard,
});
const nameInput = $("guest-name");
nameInput.value = savedName();
nameInput.addEventListener("change", () => {
  nameInput.value = saveName(nameInput.value);
  reports.now();
});

// ---------- the party's status ----------

async function pollStatus() {
  const status = await fetchStatus();
  if (status) {
    party.misses = 0;
    party.state = status.state;
    party.message = status.message || null;
    party.url = status.url || null;
    party.listeners = Number.isInteger(status.listeners) ? status.listeners : null;
    party.nowPlaying = status.now_playing || null;
    if (channels.update(status.channels)) {
      // The worker's answer says where the host's change put us; ask again in a moment in
      // case the status showed the new set before our worker had it.
      reports.now();
      setTimeout(reports.now, COUNTS_SETTLE_MS * 2);
    }
    if (status.name && status.name !== party.name) {
      party.name = status.name;
      document.title = `${party.name} · Party Stream`;
      if (listener.active) showOnLockScreen(party.name);
    }
    if (status.state === "stopping") {
      endParty();
    } else if (ended && status.state === "live") {
      ended = false;
      comeback = "The party is back on!";
    }
  } else {
    party.misses += 1;
    // Our own audio still flowing means the party is alive and only the status hiccuped.
    if (party.misses >= UNREACHABLE_TIMES && !listener.playing) endParty();
  }
  render();
}

function endParty() {
  if (ended) return;
  ended = true;
  away = false;
  if (listener.active) listener.stop();
  keepAwake(false);
  clearLockScreen();
}

async function statusLoop() {
  for (;;) {
    await pollStatus();
    const visible = document.visibilityState === "visible";
    const trouble = listener.state === "lost" || party.misses > 0;
    let every = visible && !ended ? STATUS_EVERY_MS : STATUS_HIDDEN_EVERY_MS;
    if (trouble && !ended) every = STATUS_TROUBLE_EVERY_MS;
    await waitForPoll(every);
  }
}

let pollNow = null;
function waitForPoll(ms) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    pollNow = () => {
      clearTimeout(timer);
      resolve();
    };
  });
}

// ---------- background and return ----------

document.addEventListener("visibilitychange", async () => {
  if (document.visibilityState === "hidden") {
    hiddenAt = Date.now();
    return;
  }
  const awayFor = hiddenAt ? Date.now() - hiddenAt : 0;
  if (pollNow) pollNow();
  if (!listener.active) return;
  reacquireWakeLock();
  listener.nudge();
  if (listener.audioState && listener.audioState !== "running") {
    // iOS suspends audio in the background; resuming may need a fresh tap.
    await Promise.race([listener.unlock().catch(() => {}), sleep(800)]);
    if (listener.audioState !== "running") away = true;
  }
  if (awayFor > AWAY_LIMIT_MS && !listener.connected) away = true;
  render();
});

window.addEventListener("online", () => {
  listener.nudge();
  if (pollNow) pollNow();
});

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------- rendering ----------

function phase() {
  if (ended) return "ended";
  if (away) return "away";
  if (needTap && listener.active) return "tap";
  if (listener.state === "refused" && listener.refusal) {
    return PIN_REASONS.has(listener.refusal.refused) ? "pin" : "refused";
  }
  if (!listener.active) return party.state === "starting" ? "starting" : "idle";
  if (listener.state === "waiting") return "waiting";
  if (listener.state === "lost") return "reconnecting";
  if (!listener.connected) return "connecting";
  return listener.playing ? "listening" : "tuning";
}

const PIN_REASONS = new Set(["pin", "wrong-pin", "throttled"]);
const REFUSED_TITLE = { full: "The party is full", blocked: "You can't join this party" };

const COPY = {
  pin: ["Enter the party PIN", ""],
  refused: ["You were disconnected", ""],
  idle: ["Put your headphones on", "Tap the button to join the party."],
  starting: ["The music is about to start", "Tap the button and you'll hear it the moment it does."],
  connecting: ["Joining the party…", ""],
  waiting: ["Waiting for the music", "The host hasn't started yet — you'll hear it as soon as they do."],
  tuning: ["Connected", "Waiting for the music…"],
  listening: ["You're listening", "Every phone hears the same beat."],
  reconnecting: ["Reconnecting…", "Hang on, the music will be right back."],
  away: ["Welcome back!", "Your phone paused the music while you were away. Tap to jump back in."],
  tap: ["One more tap", "Your browser wants another tap before it plays sound."],
  ended: ["The party has ended", "Thanks for dancing! If the host starts again, this page will tell you."],
};

function render() {
  const current = phase();
  ui.app.dataset.phase = current;

  ui.name.textContent = party.name;
  const [message, detail] = COPY[current];
  ui.message.textContent = message;
  let extra = detail;
  if (current === "idle" && channels.active()) extra = "Pick a channel, then tap the button.";
  if (current === "idle" && comeback) extra = `${comeback} Tap the button to join.`;
  if (current === "ended" && party.misses >= UNREACHABLE_TIMES) {
    extra = "We can't reach the party any more. Check that you're on the host's Wi-Fi.";
  }
  if ((current === "idle" || current === "starting") && party.state === "error" && party.message) {
    extra = party.message;
  }
  if ((current === "pin" || current === "refused") && listener.refusal) {
    extra = listener.refusal.message;
    if (current === "refused") {
      ui.message.textContent = REFUSED_TITLE[listener.refusal.refused] || message;
    }
  }
  ui.detail.textContent = extra;
  $("pin-form").hidden = current !== "pin";
  ui.start.hidden = current === "pin" || listener.refusal?.refused === "blocked";
  $("share-pin").hidden = !savedPin();
  $("share-pin").textContent = savedPin() ? `PIN: ${savedPin()}` : "";

  ui.startLabel.textContent =
    { away: "Resume", tap: "Play", refused: "Try again" }[current] || "Start listening";
  ui.start.disabled = current === "connecting";

  // Never a made-up figure: only a count the server reported for a running party.
  const count = party.listeners;
  const showCount = count !== null && party.state === "live" && !ended;
  ui.listeners.hidden = !showCount;
  ui.listeners.dataset.count = showCount ? String(count) : "";
  ui.listenerCount.textContent = !showCount ? "" : count === 0 ? "No one yet" : `${count} listening`;

  ui.sync.hidden = !(current === "listening" || current === "tuning" || current === "reconnecting");
  $("calibrate-open").hidden = current !== "listening";
  sync.render();
  channels.render();
  renderNowPlaying(nowPlaying(), { listening: listener.active && !ended, partyName: party.name });
}

function nowPlaying() {
  if (ended) return null;
  const playerState = listener.connected && !channels.active() ? listener.serverState : null;
  return currentTrack(playerState, channels.statusTrack(party.nowPlaying));
}

// ---------- diagnostics for tests and the listener panel (read-only) ----------

window.partyStream = {
  calibration,
  /** What this phone plays: codec ("opus", "flac", "pcm" or null before a stream) and how
   *  Opus would be decoded here ("native", "wasm", null = cannot; undefined = not probed). */
  audio() {
    return { codec: listener.codec, opusDecoder: listener.opusDecoder };
  },
  snapshot() {
    const player = listener.player;
    return {
      phase: phase(),
      refused: listener.refusal ? listener.refusal.refused : null,
      calibration: calibration.snapshot(),
      connected: listener.connected,
      playing: listener.playing,
      codec: listener.codec,
      opusDecoder: listener.opusDecoder,
      syncErrorMs: sync.errorMs(),
      sync: { ...sync.state(), badge: ui.syncText.textContent },
      rawSyncErrorMs: player ? player.syncInfo.syncErrorMs : null,
      clock: player ? player.timeSyncInfo : null,
      audioState: listener.audioState,
      worker: listener.worker,
      joins: listener.joins,
      listenersShown: ui.listeners.hidden ? null : Number(ui.listeners.dataset.count),
      volume: player ? player.volume : listener.volume,
      muted: listener.muted,
      partyName: ui.name.textContent,
      nowPlaying: nowPlaying(),
      channels: channels.snapshot(),
      lockScreen: navigator.mediaSession && navigator.mediaSession.metadata
        ? {
          title: navigator.mediaSession.metadata.title,
          artist: navigator.mediaSession.metadata.artist,
          artwork: [...navigator.mediaSession.metadata.artwork].map((a) => a.src),
        }
        : null,
      wakeLock: hasWakeLock(),
      secure: window.isSecureContext,
    };
  },
};

render();
statusLoop();
