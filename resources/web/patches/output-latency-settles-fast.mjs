// Let the output-latency estimate settle in a second or two, not in tens of seconds.
//
// sendspin-js 3.2.1 schedules audio earlier by the output's latency (AudioContext
// baseLatency + outputLatency), smoothed with an EMA of weight 0.01 per reading, starting
// from the very first reading. In Chromium on Linux that first reading is taken as the
// output starts and says ~12 ms; the settled value is ~45 ms. The EMA then crept up for
// ~20 s, moving every phone's schedule ~35 ms earlier meanwhile: heard as phones drifting
// 1-4 ms a second and apart from each other for half a minute (bench/sync_heard.py).
// Here the first 20 readings are averaged (weight 1/n), so an odd first reading
// is outvoted within a second; then the EMA as before. Only the first ones: a mean that
// follows readings for longer also follows Chromium's bogus spikes (a PCM page reported
// 150 -> 675 ms within 4 s at 1.5 s, played ~290 ms early as heard with a 100-reading mean).
// Upstream: the same in OutputLatencyTracker.getSmoothedUs.
export default {
  file: "@sendspin/sendspin-js/dist/audio/output-latency-tracker.js",
  spots: [
    {
      name: "a running mean first",
      find: `            this.smoothedOutputLatencyUs =
                OUTPUT_LATENCY_ALPHA * rawLatencyUs +
                    (1 - OUTPUT_LATENCY_ALPHA) * this.smoothedOutputLatencyUs;`,
      replace: `            this.latencyReadings = (this.latencyReadings ?? 0) + 1;
            const alpha = this.latencyReadings < 20
                ? 1 / (this.latencyReadings + 1)
                : OUTPUT_LATENCY_ALPHA;
            this.smoothedOutputLatencyUs =
                alpha * rawLatencyUs + (1 - alpha) * this.smoothedOutputLatencyUs;`,
    },
    {
      name: "a reset starts the mean over",
      find: `    reset() {
        this.smoothedOutputLatencyUs = null;`,
      replace: `    reset() {
        this.smoothedOutputLatencyUs = null;
        this.latencyReadings = 0;`,
    },
  ],
};
