// Let the player's audio clock follow a real jump of AudioContext.currentTime at once.
//
// sendspin-js 3.2.1 smooths currentTime (which advances in steps of one audio callback)
// into an "estimated" clock that may move at most 2 ms per reading off the wall clock,
// stays within 100 ms ahead of currentTime, and snaps only past a 0.5 s error. When
// currentTime really jumps, the estimate is then wrong by up to that jump and the player
// cannot tell: it schedules and measures its own error against the same wrong clock, plays
// that much off, and creeps back at ~2 ms per reading. Heard twice (bench/sync_heard.py):
// - at start, while the output starts, currentTime lags the wall clock by 100-200 ms: every
//   page played ~85-100 ms late for its first 2-3 s while its badge said ~10 ms;
// - when a page's renderer is held up (a 0.4 s stall here; on CI the WASM page on a busy
//   machine), currentTime catches up in one step: the estimate lagged by 100-225 ms, and the
//   page played that much early for 5-10 s while it believed itself in sync (CI: two phones
//   92-109 ms apart).
// Here the estimate snaps to currentTime once it is more than 50 ms off, i.e. more than
// any audio callback's step (10-25 ms with the default "interactive" latency hint): the
// player then sees its real error and resyncs, as it does after any other jump.
// Upstream: the same in ClockSource.getEstimatedTime (TIMING_RESET_THRESHOLD_SEC).
export default {
  file: "@sendspin/sendspin-js/dist/audio/clock-source.js",
  spots: [
    {
      name: "snap past one callback's step, not half a second",
      find: "const TIMING_RESET_THRESHOLD_SEC = 0.5;",
      replace: "const TIMING_RESET_THRESHOLD_SEC = 0.05;",
    },
  ],
};
