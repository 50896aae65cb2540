// Let the output-latency estimate settle in a second or two, alike for every codec.
//
// sendspin-js 3.2.1 schedules audio earlier by the output's latency (AudioContext
// baseLatency + outputLatency), smoothed with an EMA of weight 0.01 per reading, seeded by
// the very first reading. Two faults, both heard (bench/sync_heard.py):
// - In Chromium on Linux the first reading is taken as the output starts and says ~12 ms;
//   the settled value is ~45 ms. The EMA crept up for ~20 s, moving every phone's schedule
//   ~35 ms earlier meanwhile: phones drifting 1-4 ms a second, apart for half a minute.
// - A reading is taken per scheduling pass, i.e. per chunk: 50 a second for 20 ms Opus
//   chunks, 10 for the 100 ms PCM/FLAC chunks our workers send (server/frames.py). The
//   same EMA is 2 s of smoothing on an Opus phone and 10 s on a PCM one, which kept a low
//   early estimate for ~10 s: a PCM page beside an Opus page was heard 8-21 ms late.
// Until the output has started, Chromium reports outputLatency 0 (the reading is then the
// baseLatency alone, ~12 ms here): such readings are skipped for up to 2 s (a browser that
// keeps reporting 0 is taken at its word after that), so the estimate starts from the first
// real reading (~45 ms) rather than from 12 ms: pages started ~25 ms late and took 4-5 s to
// learn it as the average rose (bench/README.md, "Sync as heard", item 12).
// Here the readings of the first 0.5 s are averaged by the time each stands for (the first
// one weighs nothing), then the EMA runs in time: weight 1 - 0.99^(dt / 20 ms), i.e. what
// an Opus phone had, for every codec. Only the first half second is a mean: a mean that
// follows readings for longer also follows Chromium's bogus spikes (a PCM page reported
// 150 -> 675 ms within 4 s at 1.5 s, played ~290 ms early as heard with a long mean).
// Upstream: the same in OutputLatencyTracker.getSmoothedUs.
export default {
  file: "@sendspin/sendspin-js/dist/audio/output-latency-tracker.js",
  spots: [
    {
      name: "a mean over the first half second, then an EMA in time",
      find: `        if (this.smoothedOutputLatencyUs === null) {
            this.smoothedOutputLatencyUs = rawLatencyUs;
        }
        else {
            this.smoothedOutputLatencyUs =
                OUTPUT_LATENCY_ALPHA * rawLatencyUs +
                    (1 - OUTPUT_LATENCY_ALPHA) * this.smoothedOutputLatencyUs;
        }
        const nowMs = typeof performance !== "undefined" ? performance.now() : Date.now();`,
      replace: `        const nowMs = typeof performance !== "undefined" ? performance.now() : Date.now();
        this.firstReadingAtMs ??= nowMs;
        if (audioContext && audioContext.outputLatency === 0 &&
            nowMs - this.firstReadingAtMs < 2000) {
            return this.smoothedOutputLatencyUs ?? rawLatencyUs;
        }
        if (this.smoothedOutputLatencyUs === null || this.latencySinceMs == null) {
            this.smoothedOutputLatencyUs ??= rawLatencyUs;
            this.latencySinceMs = nowMs;
        }
        else {
            const dtMs = Math.max(0, nowMs - this.latencyAtMs);
            const sinceMs = nowMs - this.latencySinceMs;
            const alpha = sinceMs < 500
                ? (sinceMs > 0 ? dtMs / sinceMs : 0)
                : 1 - Math.pow(1 - OUTPUT_LATENCY_ALPHA, dtMs / 20);
            this.smoothedOutputLatencyUs =
                alpha * rawLatencyUs + (1 - alpha) * this.smoothedOutputLatencyUs;
        }
        this.latencyAtMs = nowMs;`,
    },
    {
      name: "a reset starts the mean over",
      find: `    reset() {
        this.smoothedOutputLatencyUs = null;`,
      replace: `    reset() {
        this.smoothedOutputLatencyUs = null;
        this.latencySinceMs = null;
        this.firstReadingAtMs = null;`,
    },
  ],
};
