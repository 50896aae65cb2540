// On the "timestamp" clock, count the output latency once, not twice.
//
// sendspin-js 3.2.1 promotes its audio clock from the smoothed currentTime ("estimated") to
// AudioContext.getOutputTimestamp() ("timestamp") once the browser's timestamps pass its
// checks. That clock says what the speaker plays now: currentTime minus the output latency
// (measured here: 36-52 ms behind, as the latency read 44-60 ms). The scheduler then
// subtracts the output latency again, as it must for currentTime, so a page on that clock
// plays early by its whole output latency: heard 42-53 ms early against a page beside it
// on the estimated clock (bench/sync_heard.py, case timestamp-clock), and with Bluetooth
// earbuds that would be 150-250 ms. Chromium here never passes the checks ("context slope
// 0.92 out of range"), but a phone whose timestamps are steadier would.
// Here the clock source notes whether the time it handed out came from the timestamp, and
// the target play time subtracts the latency only when it did not. Upstream: sendspin-js
// #159 lifts the timestamp by the playout latency instead (same result); 3.2.1, the newest
// release, predates it.
export default [
  {
    file: "@sendspin/sendspin-js/dist/audio/clock-source.js",
    spots: [
      {
        name: "note which clock the time came from",
        find: `        let derivedTimeSec = this.activeSource === "timestamp" && timestampTimeSec !== null
            ? timestampTimeSec
            : estimatedTimeSec;
        if (!Number.isFinite(derivedTimeSec)) {
            derivedTimeSec = rawTimeSec;
        }`,
        replace: `        const fromTimestamp = this.activeSource === "timestamp" && timestampTimeSec !== null;
        let derivedTimeSec = fromTimestamp ? timestampTimeSec : estimatedTimeSec;
        if (!Number.isFinite(derivedTimeSec)) {
            derivedTimeSec = rawTimeSec;
        }
        this.derivedFromTimestamp = fromTimestamp && Number.isFinite(timestampTimeSec);`,
      },
    ],
  },
  {
    file: "@sendspin/sendspin-js/dist/audio/scheduler.js",
    spots: [
      {
        name: "the speaker's time already lies behind by the latency",
        find: "        return (audioContextTime + deltaSec + SCHEDULE_HEADROOM_SEC - outputLatencySec);",
        replace: `        const latencySec = this.clockSource.derivedFromTimestamp ? 0 : outputLatencySec;
        return (audioContextTime + deltaSec + SCHEDULE_HEADROOM_SEC - latencySec);`,
      },
    ],
  },
];
