// Converge the clock in seconds, not after the second 10 s burst.
//
// sendspin-js 3.2.1 measures the server's clock with one burst of 8 probes at connect and
// then one burst every 10 s. The first burst alone decides when the first 10 s of audio
// play; on a busy phone (or Wi-Fi) its best probes can still be 20+ ms off (the reply waits
// for a busy main thread, so the round trip is lopsided), and the error stays until the
// second burst, 10 s later, which then moves the schedule by that much: heard as two phones
// 20 ms apart, converging for another 10 s (bench/sync_heard.py, resources/web/README.md).
// Here the next burst follows 1 s later until the Kalman filter has STARTUP_BURSTS
// measurements and trusts itself to TRUSTED_ERROR_US (at most MAX_STARTUP_BURSTS), then the
// usual 10 s rhythm. Upstream: make the startup cadence part of TimeSyncManager.
export default {
  file: "@sendspin/sendspin-js/dist/core/time-sync-manager.js",
  spots: [
    {
      name: "startup cadence constants",
      find: "const TIME_SYNC_BURST_INTERVAL_MS = 10000;",
      replace: `const TIME_SYNC_BURST_INTERVAL_MS = 10000;
const TIME_SYNC_STARTUP_INTERVAL_MS = 1000;
const TIME_SYNC_STARTUP_BURSTS = 5;
const TIME_SYNC_MAX_STARTUP_BURSTS = 10;
const TIME_SYNC_TRUSTED_ERROR_US = 2000;`,
    },
    {
      name: "next burst sooner while the filter is young or unsure",
      find: "        }, TIME_SYNC_BURST_INTERVAL_MS);",
      replace: `        }, this.nextTimeSyncBurstDelayMs());`,
    },
    {
      name: "the delay itself",
      find: "    startTimeSyncBurstIfIdle() {",
      replace: `    nextTimeSyncBurstDelayMs() {
        const { count, error } = this.timeFilter;
        const young = count < TIME_SYNC_STARTUP_BURSTS;
        const unsure = count < TIME_SYNC_MAX_STARTUP_BURSTS && error > TIME_SYNC_TRUSTED_ERROR_US;
        return young || unsure ? TIME_SYNC_STARTUP_INTERVAL_MS : TIME_SYNC_BURST_INTERVAL_MS;
    }
    startTimeSyncBurstIfIdle() {`,
    },
  ],
};
