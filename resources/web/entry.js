// Entry point of the bundle (static/vendor/sendspin.js): sendspin-js as published, plus a
// probe of its WASM Opus decoder, which patches/opus-wasm-without-webcodecs.mjs relies on.
import { SendspinDecoder } from "@sendspin/sendspin-js";

export * from "@sendspin/sendspin-js";

// One 20 ms stereo CELT frame with no payload (TOC byte only): libopus answers with 960
// samples of concealment, so a decoder that produces them has compiled, started and decoded.
const PROBE_PACKET = new Uint8Array([0xfc]);
const PROBE_FORMAT = { codec: "opus", sample_rate: 48000, channels: 2, bit_depth: 16 };

/**
 * Can this browser play Opus? Natively (WebCodecs, secure contexts) or through the bundled
 * WASM decoder, which is started and fed one packet here, through the same code path the
 * player uses. Resolves to "native", "wasm" or null, and records the answer for the patched
 * codec negotiation (globalThis.__partystreamWasmOpus). Never rejects.
 */
export async function probeWasmOpus(timeoutMs = 4000) {
  if (typeof AudioDecoder !== "undefined") return "native";
  let works = false;
  try {
    const decoder = new SendspinDecoder(() => {}, () => 0);
    if (typeof decoder.decode !== "function") throw new Error("sendspin-js decoder changed");
    const decoded = await Promise.race([
      decoder.decode(PROBE_PACKET.buffer.slice(0), PROBE_FORMAT),
      new Promise((resolve) => setTimeout(() => resolve(null), timeoutMs)),
    ]);
    works = Boolean(decoded && decoded.samples.length === 2 && decoded.samples[0].length > 0);
  } catch (err) {
    console.warn("[Opus] WASM decoder unavailable, falling back to FLAC/PCM:", err);
  }
  globalThis.__partystreamWasmOpus = works;
  return works ? "wasm" : null;
}
