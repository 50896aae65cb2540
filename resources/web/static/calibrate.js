// "Headphones out of time?": a tap-along calibration and a fine nudge for this phone's delay.
//
// Bluetooth earbuds add 100–300 ms that no browser reports. The page plays clicks on a steady
// beat (with a visual pulse); the guest taps along with what they *hear*; each tap's lag
// behind its click is that unreported delay plus the guest's own timing noise. The median of
// several taps, with outliers dropped (median absolute deviation), is the estimate; the
// spread of the kept taps says how sure we are. The result goes into the player's own sync
// delay (sendspin-js `setSyncDelay`: it plays that much earlier, keeps the value on this
// device across reloads and rejoins, and tells the server in its client/state).
export const BEAT_MS = 750; // 80 bpm: a lag from -150 to +600 ms maps to one click
export const BEATS = 14;
const COUNT_IN = 2; // the first clicks are for finding the beat, not for measuring
const MIN_TAPS = 5;
const EARLY_MS = 150; // a tap this much before a click still belongs to it
const MAX_DELAY_MS = 5000; // sendspin-js clamps its sync delay to 0..5000 ms
const STORE_KEY = "sendspin-static-delay-ms"; // sendspin-js's own key, read at its start
const DEFAULT_KEY = "partystream-usual-delay-ms"; // sendspin-js's platform default (150–250)
const CLICK_S = 0.03;

/** Robust estimate of the lag from tap deviations (ms): median, MAD outlier rejection. */
export function estimate(deviations) {
  if (deviations.length < MIN_TAPS) return null;
  const median = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    const m = Math.floor(s.length / 2);
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
  };
  const center = median(deviations);
  const mad = median(deviations.map((d) => Math.abs(d - center))) * 1.4826;
  const limit = Math.max(3 * mad, 30);
  const kept = deviations.filter((d) => Math.abs(d - center) <= limit);
  const mean = kept.reduce((a, b) => a + b, 0) / kept.length;
  const spread = Math.sqrt(kept.reduce((a, d) => a + (d - mean) ** 2, 0) / kept.length);
  let confidence = "low";
  if (kept.length >= MIN_TAPS && spread <= 25) confidence = "high";
  else if (kept.length >= MIN_TAPS - 1 && spread <= 50) confidence = "medium";
  return {
    delayMs: Math.round(median(kept)),
    spreadMs: Math.round(spread),
    taps: deviations.length,
    outliers: deviations.length - kept.length,
    confidence,
  };
}

/** One run of clicks; `tapAt(performance time)` records a tap. */
class TapAlong {
  constructor({ onBeat, onEnd }) {
    this.clicks = []; // when each click is heard, as far as the browser knows (perf ms)
    this.deviations = [];
    this.onBeat = onBeat;
    this.onEnd = onEnd;
    this.timers = [];
  }

  /** Inside the guest's tap: a fresh AudioContext may start from it. */
  start() {
    const Context = window.AudioContext || window.webkitAudioContext;
    this.ctx = new Context({ latencyHint: "interactive" });
    this.ctx.resume();
    const ctx = this.ctx;
    const known = ((ctx.outputLatency || 0) + (ctx.baseLatency || 0)) * 1000;
    const t0 = ctx.currentTime + 0.3;
    const perf0 = performance.now() + 300;
    for (let k = 0; k < BEATS; k += 1) {
      const at = t0 + (k * BEAT_MS) / 1000;
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.frequency.value = k < COUNT_IN ? 660 : 1320;
      gain.gain.setValueAtTime(0.6, at);
      gain.gain.exponentialRampToValueAtTime(0.001, at + CLICK_S);
      osc.connect(gain).connect(ctx.destination);
      osc.start(at);
      osc.stop(at + CLICK_S + 0.01);
      const heard = perf0 + k * BEAT_MS + known;
      this.clicks.push(heard);
      this.timers.push(setTimeout(() => this.onBeat(k), Math.max(0, heard - performance.now())));
    }
    const end = perf0 + BEATS * BEAT_MS + known + 400;
    this.timers.push(setTimeout(() => this.stop(true), end - performance.now()));
  }

  tapAt(perfMs) {
    for (let k = COUNT_IN; k < this.clicks.length; k += 1) {
      const lag = perfMs - this.clicks[k];
      if (lag >= -EARLY_MS && lag < BEAT_MS - EARLY_MS) {
        this.deviations.push(lag);
        return lag;
      }
    }
    return null;
  }

  stop(finished) {
    this.timers.forEach(clearTimeout);
    this.timers = [];
    if (this.ctx) this.ctx.close().catch(() => {});
    this.ctx = null;
    if (finished) this.onEnd(estimate(this.deviations));
  }
}

/** The player's current sync delay (ms), also before it exists (sendspin-js's stored one). */
function currentDelay(listener) {
  const core = listener.player && listener.player.core;
  if (core && typeof core.getSyncDelayMs === "function") return core.getSyncDelayMs();
  try {
    const saved = Number(localStorage.getItem(STORE_KEY));
    return Number.isFinite(saved) ? saved : 0;
  } catch {
    return 0;
  }
}

/** sendspin-js starts from a per-platform default when nothing is stored: "Reset" goes back
 * to that, not to 0. It is the player's value before anything was ever stored. */
function usualDelay(listener) {
  try {
    const known = localStorage.getItem(DEFAULT_KEY);
    if (known !== null) return Number(known);
    const core = listener.player && listener.player.core;
    if (localStorage.getItem(STORE_KEY) === null && core && core.getSyncDelayMs) {
      const value = core.getSyncDelayMs();
      localStorage.setItem(DEFAULT_KEY, String(value));
      return value;
    }
  } catch {
    // no storage: fall through
  }
  return null;
}

function resetDelay(listener) {
  const usual = usualDelay(listener);
  applyDelay(listener, usual ?? 0);
  try {
    localStorage.removeItem(STORE_KEY); // the next start takes the player's own default
  } catch {
    // ignore
  }
}

function applyDelay(listener, ms) {
  usualDelay(listener); // learn the default before the first change hides it
  const value = Math.max(0, Math.min(MAX_DELAY_MS, Math.round(ms)));
  if (listener.player) listener.player.setSyncDelay(value);
  else {
    try {
      localStorage.setItem(STORE_KEY, String(value));
    } catch {
      // private mode: it lasts as long as the page
    }
  }
  return value;
}

export function setupCalibration({ listener, open, sheet, close, ui }) {
  const state = { run: null, result: null, delayMs: currentDelay(listener), mutedBefore: false };

  function paint() {
    state.delayMs = currentDelay(listener);
    const usual = usualDelay(listener);
    ui.current.textContent =
      `Timing adjustment: ${state.delayMs} ms` +
      (state.delayMs === usual ? " (the usual for this phone)" : "");
    ui.reset.disabled = usual !== null && state.delayMs === usual;
    ui.tap.disabled = !state.run;
    ui.start.disabled = Boolean(state.run);
  }

  function finish(result) {
    const run = state.run;
    state.run = null;
    state.result = result;
    listener.setMuted(state.mutedBefore);
    if (!result) {
      ui.result.textContent = `Not enough taps (${run ? run.deviations.length : 0}). Try again?`;
    } else if (result.confidence === "low") {
      ui.result.textContent =
        `Your taps were too spread out (±${result.spreadMs} ms) to be sure. Try again?`;
    } else {
      const applied = applyDelay(listener, result.delayMs);
      const sure = result.confidence === "high" ? "quite sure" : "fairly sure";
      ui.result.textContent =
        `Your headphones lag by about ${result.delayMs} ms (${sure}: ±${result.spreadMs} ms). ` +
        `Adjusted by ${applied} ms.`;
    }
    paint();
  }

  function begin() {
    if (state.run) return;
    state.mutedBefore = listener.muted;
    listener.setMuted(true); // clicks only: music over them would make tapping guesswork
    ui.result.textContent = "Tap the big button with every click you hear.";
    state.run = new TapAlong({
      onBeat() {
        ui.pulse.classList.remove("beat");
        void ui.pulse.offsetWidth; // restart the animation
        ui.pulse.classList.add("beat");
      },
      onEnd: finish,
    });
    state.run.start();
    paint();
  }

  open.addEventListener("click", () => {
    sheet.hidden = false;
    paint();
  });
  close.addEventListener("click", () => {
    if (state.run) {
      state.run.stop(false);
      state.run = null;
      listener.setMuted(state.mutedBefore);
    }
    sheet.hidden = true;
  });
  ui.start.addEventListener("click", begin);
  ui.tap.addEventListener("pointerdown", (event) => {
    if (state.run) state.run.tapAt(event.timeStamp);
  });
  for (const button of ui.nudges) {
    button.addEventListener("click", () => {
      applyDelay(listener, currentDelay(listener) + Number(button.dataset.ms));
      paint();
    });
  }
  ui.reset.addEventListener("click", () => {
    resetDelay(listener);
    ui.result.textContent = "Back to the usual timing for this phone.";
    paint();
  });

  // For the browser test (tests/test_browser_calibration.py): the clicks' times and a way
  // to tap at a given time, so a known output delay can be injected.
  return {
    get clicks() {
      return state.run ? state.run.clicks : [];
    },
    tapAt: (perfMs) => (state.run ? state.run.tapAt(perfMs) : null),
    snapshot: () => ({
      usualMs: usualDelay(listener),
      running: Boolean(state.run),
      result: state.result,
      delayMs: currentDelay(listener),
    }),
  };
}
