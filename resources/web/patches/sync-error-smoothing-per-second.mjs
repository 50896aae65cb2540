// Smooth the sync error per second of audio, not per chunk.
//
// sendspin-js 3.2.1 feeds each scheduled chunk's sync error into an EMA of weight 0.05 and
// corrects from that. Its chunks are 20 ms for Opus but 100 ms for FLAC and PCM here
// (server/frames.py: a quarter of the messages), so a FLAC or PCM phone saw errors through
// a 2 s lag instead of 0.4 s: it corrected late and overshot, and phones on different
// codecs converged at different speeds (bench/sync_heard.py). Here a chunk counts for its
// duration: weight 1 - 0.95^(duration / 20 ms), the same smoothing in time for every codec.
// (The recorrection check's own samples, every 250 ms, keep the plain weight.)
// Upstream: pass the chunk's duration to applySyncErrorEma.
export default {
  file: "@sendspin/sendspin-js/dist/audio/scheduler.js",
  spots: [
    {
      name: "the chunk's duration goes with its error",
      find: "const correctionErrorMs = this.applySyncErrorEma(syncErrorMs);",
      replace: "const correctionErrorMs = this.applySyncErrorEma(syncErrorMs, chunk.buffer.duration);",
    },
    {
      name: "weight by duration",
      find: `    applySyncErrorEma(inputMs) {
        this.currentSyncErrorMs = inputMs;
        this.smoothedSyncErrorMs =
            SYNC_ERROR_ALPHA * inputMs +
                (1 - SYNC_ERROR_ALPHA) * this.smoothedSyncErrorMs;`,
      replace: `    applySyncErrorEma(inputMs, durationSec = 0.02) {
        this.currentSyncErrorMs = inputMs;
        const alpha = 1 - Math.pow(1 - SYNC_ERROR_ALPHA, Math.max(0, durationSec) / 0.02);
        this.smoothedSyncErrorMs =
            alpha * inputMs + (1 - alpha) * this.smoothedSyncErrorMs;`,
    },
  ],
};
