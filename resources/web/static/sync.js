// The sync badge: it says "In sync" only when the player's estimate has settled, and then
// shows an error the page can vouch for. Before this the badge showed the median of the
// player's last readings from the first second on, and said "In sync · 3 ms" while the
// phones were heard 20-60 ms apart (bench/sync_heard.py measures what is heard).
//
// Settled means, from the player's own state:
// - its clock filter is synchronised and its own error estimate is small (CLOCK_TRUST_MS);
// - it has played WINDOW readings in a row (SAMPLE_MS apart) with no resync among them;
// - those readings agree: their spread is under SPREAD_MS (a correction still running, or a
//   clock still moving, shows as a spread).
// The figure shown is then the largest reading of the window plus the clock's error: a
// bound, not a best case. A resync or a restart starts over with "Syncing…".

export const SAMPLE_MS = 500;
export const WINDOW = 6; // 3 s of readings
export const SPREAD_MS = 8;
export const CLOCK_TRUST_MS = 5;
const GOOD_MS = 30; // under ~30 ms two phones side by side do not sound like an echo
const FAIR_MS = 80;

export function setupSync({ listener, badge, text, codec }) {
  let readings = []; // recent |sync error| in ms since the last (re)start or resync
  let resyncs = null;

  function reset() {
    readings = [];
    resyncs = null;
  }

  function clock() {
    const info = listener.player ? listener.player.timeSyncInfo : null;
    return info && info.synced ? info : null;
  }

  function sample() {
    if (!listener.playing) {
      if (readings.length) reset();
      render();
      return;
    }
    const { syncErrorMs, resyncCount } = listener.player.syncInfo;
    if (resyncs !== null && resyncCount !== resyncs) readings = []; // a jump: start over
    resyncs = resyncCount;
    if (Number.isFinite(syncErrorMs)) {
      readings.push(Math.abs(syncErrorMs));
      if (readings.length > WINDOW) readings.shift();
    }
    render();
  }

  /** The state the badge shows, and why (for tests and the host's panel). */
  function state() {
    const info = clock();
    const spread = readings.length ? Math.max(...readings) - Math.min(...readings) : null;
    const settled = Boolean(
      listener.playing && info && info.error <= CLOCK_TRUST_MS
        && readings.length >= WINDOW && spread <= SPREAD_MS,
    );
    return {
      settled,
      readings: readings.length,
      spreadMs: spread,
      clockErrorMs: info ? info.error : null,
      vouchedMs: settled ? Math.max(...readings) + info.error : null,
    };
  }

  /** Median of the recent readings (what the page reports to the host), null before 3. */
  function errorMs() {
    if (readings.length < 3) return null;
    const sorted = [...readings].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)];
  }

  function render() {
    const { settled, vouchedMs } = state();
    let level = "none";
    let words = "Syncing…";
    if (settled) {
      const shown = vouchedMs < 1 ? "<1 ms" : `${Math.round(vouchedMs)} ms`;
      if (vouchedMs <= GOOD_MS) [level, words] = ["good", `In sync · ${shown}`];
      else if (vouchedMs <= FAIR_MS) [level, words] = ["fair", `Out of sync · ${shown}`];
      else [level, words] = ["poor", `Catching up · ${shown}`];
    }
    badge.dataset.level = level;
    text.textContent = words;
    const current = listener.codec;
    codec.hidden = !current;
    codec.textContent = current ? current.toUpperCase() : "";
  }

  setInterval(sample, SAMPLE_MS);
  return { reset, render, errorMs, state };
}
