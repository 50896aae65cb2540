// One guest's connection to the party: the Sendspin player, which worker it talks to, and
// how it finds a live worker again when the one it had goes away.
import { SendspinPlayer, probeWasmOpus } from "./vendor/sendspin.js";
import { joinParty } from "./party-api.js";
import { savePin, savedPin } from "./pin.js";

const CONNECT_TIMEOUT_MS = 8000;
const RETRY_DELAYS_MS = [300, 1000, 2000, 4000, 8000, 10000];

// How this browser can decode Opus: "native" (WebCodecs, secure contexts only), "wasm" (the
// bundled libopus, which every phone on plain http://LAN-IP uses) or null (FLAC/PCM instead).
// Started at page load so it has settled by the first connect, whose hello lists the codecs.
const opusDecoder = probeWasmOpus();

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function withTimeout(promise, ms) {
  return Promise.race([
    promise,
    sleep(ms).then(() => {
      throw new Error("timed out");
    }),
  ]);
}

/** Stable per tab (survives a reload), distinct between tabs: two tabs must not share an id. */
export function tabPlayerId() {
  const key = "partystream-player-id";
  try {
    let id = sessionStorage.getItem(key);
    if (!id) {
      id = `guest-${Math.random().toString(36).slice(2, 10)}`;
      sessionStorage.setItem(key, id);
    }
    return id;
  } catch {
    return `guest-${Math.random().toString(36).slice(2, 10)}`;
  }
}

function deviceName() {
  const ua = navigator.userAgent;
  if (/iPhone/.test(ua)) return "iPhone";
  if (/iPad/.test(ua)) return "iPad";
  if (/Android/.test(ua)) return "Android phone";
  return "Web browser";
}

// sendspin-js 3.2.1 only ever connects to the baseUrl it was built with, and its own retry
// loop dials that same worker forever. When a worker dies we move this very player (its
// AudioContext was unlocked by the guest's tap and cannot be unlocked again without another
// one) to the worker the front door names, by re-pointing that private setting. The version
// is pinned and the browser test covers this; fail loudly if the library changes shape.
function pointAt(player, url) {
  const config = player.core && player.core.config;
  if (!config || !("baseUrl" in config)) {
    throw new Error("sendspin-js internals changed: update pointAt() in listener.js");
  }
  config.baseUrl = url;
}

export class PartyListener {
  /** @param {{onChange: () => void}} hooks */
  constructor({ onChange }) {
    this.onChange = onChange;
    this.player = null;
    this.active = false;
    this.state = "idle"; // idle | joining | waiting | connected | lost | refused
    this.refusal = null; // {refused: reason, message} from /api/join
    this.waitMessage = "";
    this.worker = null;
    this.joins = 0;
    this.volume = 100;
    this.muted = false;
    this.serverState = null; // the player's server/state (metadata): what plays now
    this._looping = false;
    this._wake = null;
    this.opusDecoder = undefined; // settled probeWasmOpus() answer, once known
  }

  /** Must run synchronously inside the guest's tap: browsers only start audio from a gesture. */
  unlock() {
    if (!this.player) this.player = this._createPlayer();
    if (navigator.audioSession) navigator.audioSession.type = "playback";
    return this.player.unlock();
  }

  _createPlayer() {
    return new SendspinPlayer({
      playerId: tabPlayerId(),
      clientName: deviceName(),
      baseUrl: `${location.origin}/sendspin`, // replaced by pointAt() before every connect
      // Opus first: ~100 kbit/s on the Wi-Fi against ~500-1000 for FLAC. Without WebCodecs
      // (plain http) Opus is offered only if the WASM probe worked (patches/ in the build);
      // otherwise FLAC (a third of PCM's bytes), then PCM (Safari: no FLAC).
      codecs: ["opus", "flac", "pcm"],
      // Correct small errors sooner than the library's defaults (rate above 8 and 35 ms):
      // between phones in one room 10 ms is already heard as a flam. Its rates stay within
      // the protocol's inaudible ±0.5 %; sample nudges below 3 ms, nothing below 1 ms.
      correctionThresholds: { sync: { samplesBelowMs: 3, rate1AboveMs: 3, rate2AboveMs: 6 } },
      // No built-in retries: a dead worker must send us back to the front door instead.
      reconnect: { maxAttempts: 0, onExhausted: () => this._lost() },
      onStateChange: (state) => {
        this.serverState = state && state.serverState ? state.serverState : null;
        this.onChange();
      },
    });
  }

  /** Start (or keep) listening; safe to call again at any time. */
  start() {
    this.active = true;
    this._connectLoop();
  }

  stop() {
    this.active = false;
    this._set("idle");
    this._wakeUp();
    if (this.player) this.player.disconnect("user_request");
  }

  /** Something suggests the network is back (tab visible again, "online"): retry now. */
  nudge() {
    if (!this.active) return;
    if (this.player && this.player.isConnected) return;
    this._connectLoop();
    this._wakeUp();
  }

  setVolume(volume) {
    this.volume = volume;
    if (this.player) this.player.setVolume(volume);
  }

  setMuted(muted) {
    this.muted = muted;
    if (this.player) this.player.setMuted(muted);
  }

  get connected() {
    return Boolean(this.player && this.player.isConnected);
  }

  /** The codec the server streams to us ("opus", "flac", "pcm"), null before a stream. */
  get codec() {
    const format = this.connected ? this.player.currentFormat : null;
    return format ? format.codec : null;
  }

  get playing() {
    return Boolean(this.connected && this.player.isPlaying);
  }

  /** AudioContext state: "running" unless the OS suspended us (e.g. iOS in the background). */
  get audioState() {
    const scheduler = this.player && this.player.scheduler;
    const context = scheduler && scheduler.audioContext;
    return context ? context.state : null;
  }

  _lost() {
    if (!this.active) return;
    this._set("lost");
    this._connectLoop();
  }

  async _connectLoop() {
    if (this._looping) return;
    this._looping = true;
    try {
      for (let attempt = 0; this.active && !this.connected; attempt += 1) {
        if (attempt > 0) {
          await this._pause(RETRY_DELAYS_MS[Math.min(attempt - 1, RETRY_DELAYS_MS.length - 1)]);
          if (!this.active) break;
        }
        if (await this._tryJoin()) break;
      }
    } finally {
      this.serverState = null; // the player's server/state (metadata): what plays now
    this._looping = false;
    }
  }

  async _tryJoin() {
    let join;
    try {
      join = await joinParty({ id: tabPlayerId(), pin: savedPin() });
    } catch {
      if (this.state !== "waiting") this._set("lost");
      return false;
    }
    if (!this.active) return false;
    if (join.refused) {
      this.refusal = join;
      if (join.refused === "wrong-pin") savePin(null); // never resend a wrong one by itself
      this.active = false; // a PIN, a full party or the host's no: the guest decides what next
      if (this.player) this.player.disconnect("user_request");
      this._set("refused");
      return true;
    }
    this.refusal = null;
    if (join.busy) {
      this.waitMessage = join.busy;
      this._set("waiting");
      return false;
    }
    if (this.state !== "lost") this._set("joining");
    this.opusDecoder = await opusDecoder; // never rejects; the hello must see its answer
    try {
      pointAt(this.player, `${location.protocol}//${location.hostname}:${join.port}${join.path}`);
      await withTimeout(this.player.connect(), CONNECT_TIMEOUT_MS);
    } catch (err) {
      if (String(err).includes("internals changed")) throw err;
      return false; // a retry's connect() closes this socket before opening the next one
    }
    if (!this.active) return false;
    this.worker = join;
    this.joins += 1;
    // Volume lives in the player's state, which a disconnect resets: re-apply ours.
    this.player.setVolume(this.volume);
    this.player.setMuted(this.muted);
    this._set("connected");
    return true;
  }

  _pause(ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this._wake = done;
    }).finally(() => {
      this._wake = null;
    });
  }

  _wakeUp() {
    if (this._wake) this._wake();
  }

  _set(state) {
    this.state = state;
    this.onChange();
  }
}
