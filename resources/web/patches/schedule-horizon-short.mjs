// Schedule 1.5 s ahead, not everything the server has sent, so corrections are heard soon.
//
// sendspin-js 3.2.1 hands the Web Audio graph up to 20 s of audio ahead once its clock filter
// trusts itself to 2 ms (8 s, 4 s when it does not). Our workers send a file or stream party
// ~5 s ahead, so in practice a page schedules all it holds: 5 s (bench/sync_heard.py traces).
// Whatever the scheduler decides (a rate correction, a better clock, a sample nudge) applies
// to the newest chunk only, and is heard once the ~5 s already queued have played. The
// page's own error converged in 2-4 s, the ear followed 5 s later: every early clock error
// was heard for 5 s, and a recorrection kept a wrong schedule for another 5 s. With 1.5 s
// ahead (the library's own value for Cast receivers) what the page knows is heard 1.5 s
// later: two pages were heard < 5 ms p95 apart from 2.2 s after both played (opus-flac).
// The trade: the page's JavaScript must run every ~0.75 s to refill (a stall of > 1.5 s is a
// dropout, before it took 5 s). Audible pages are not timer-throttled by Chromium; the
// WebSocket and the clock sync need the page to run anyway.
// Upstream: a `scheduleHorizonSec` option (the Cast value already exists).
export default {
  file: "@sendspin/sendspin-js/dist/audio/scheduler.js",
  spots: [
    {
      name: "every page schedules as far ahead as a Cast receiver",
      find: `        if (this.isCastRuntime) {
            return CAST_SCHEDULE_HORIZON_SEC;
        }
        const errorMs = this.timeFilter.error / 1000;`,
      replace: `        return CAST_SCHEDULE_HORIZON_SEC; // every page (the tiers below stay unused)
        const errorMs = this.timeFilter.error / 1000;`,
    },
  ],
};
