// After a cutover, start the chunk that straddles the kept audio part-way in, not late.
//
// sendspin-js 3.2.1 keeps what is already playing when it re-schedules (a "guarded
// cutover": on the clock's promotion to output timestamps, a delay change, a recorrection)
// and schedules again from the end of that kept tail. The first chunk that reaches past the
// tail was started whole at the tail's end (`scheduleTime = max(scheduleTime, tail)`), so the
// page played on late by (tail - the chunk's own start): anything from 0 to one chunk. With
// 20 ms Opus chunks that is at most 20 ms; with the 100 ms FLAC/PCM chunks our workers send
// (server/frames.py) it was 0-100 ms, and every page promotes its clock in its first
// seconds: FLAC and PCM pages were heard 10-65 ms behind Opus pages (bench/sync_heard.py).
// The scheduler does see that error, but corrects it at the 0.5 % rate cap (10 s for 50 ms)
// and only in audio scheduled after the seconds already queued.
// Here that chunk starts at the tail's end *offset into the buffer* by the same amount
// (AudioBufferSourceNode.start(when, offset)), all on the scheduler's own start() clock, so
// the chunk's remainder and everything after it play at their own times; the next chunk
// follows the chunk's nominal end.
// Upstream: the same in AudioScheduler.processAudioQueue.
export default {
  file: "@sendspin/sendspin-js/dist/audio/scheduler.js",
  spots: [
    {
      name: "an offset into the chunk, zero unless it straddles a kept tail",
      find: "            let playbackRate;\n",
      replace: "            let playbackRate;\n            let startOffsetSec = 0;\n",
    },
    {
      name: "keep the chunk's own times; skip its head instead of starting it late",
      find: `                    scheduleTime = Math.max(scheduleTime, minScheduleTimeSec);
                    playbackTime = scheduleTime + syncDelaySec;`,
      replace: `                    startOffsetSec = Math.max(0, minScheduleTimeSec - scheduleTime);`,
    },
    {
      name: "a straddling chunk is not dropped as past",
      find: "            if (playbackTime < audioContextRawTimeSec) {",
      replace: "            if (playbackTime + startOffsetSec < audioContextRawTimeSec) {",
    },
    {
      name: "start at the offset; the schedule goes on from the chunk's nominal end",
      find: `            const effectiveScheduleTime = Math.max(scheduleTime, audioContextRawTimeSec);
            const effectivePlaybackTime = effectiveScheduleTime + (playbackTime - scheduleTime);`,
      replace: `            const startedAtSec = Math.max(scheduleTime + startOffsetSec, audioContextRawTimeSec);
            const skipSec = startOffsetSec > 0
                ? Math.min((startedAtSec - scheduleTime) * playbackRate, chunk.buffer.duration)
                : 0;
            const effectiveScheduleTime = startedAtSec - skipSec / playbackRate;
            const effectivePlaybackTime = effectiveScheduleTime + (playbackTime - scheduleTime);`,
    },
    {
      name: "start() with the offset",
      find: "            source.start(effectiveScheduleTime);",
      replace: "            source.start(startedAtSec, skipSec);",
    },
    {
      name: "the scheduled entry starts when the sound does",
      find: `                startTime: effectiveScheduleTime,`,
      replace: `                startTime: startedAtSec,`,
    },
  ],
};
