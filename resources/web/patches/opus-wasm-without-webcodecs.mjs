// Opus for browsers without WebCodecs (every phone on plain http://LAN-IP).
//
// sendspin-js 3.2.1 offers Opus only where WebCodecs' AudioDecoder exists (secure contexts)
// or on Safari; everyone else asks for FLAC (5-8x the bytes). Its decoder already falls back
// to the bundled WASM libopus (opus-encdec) when AudioDecoder is missing, so offering Opus is
// all it takes. The page probes that decoder first (entry.js, probeWasmOpus) and records the
// result in globalThis.__partystreamWasmOpus: true = offer Opus, false = FLAC/PCM as before,
// unset (no probe yet) = upstream behaviour.
export default {
  file: "@sendspin/sendspin-js/dist/core/codec-support.js",
  spots: [
    {
      name: "decide codecs when WebCodecs is missing",
      find: 'const hasNativeOpus = typeof AudioDecoder !== "undefined";',
      replace: `const hasNativeOpus = typeof AudioDecoder !== "undefined";
    const wasmOpus = globalThis.__partystreamWasmOpus;
    if (!hasNativeOpus && typeof wasmOpus === "boolean") {
        const codecs = wasmOpus ? ["pcm", "opus"] : ["pcm"];
        if (!isSafari) codecs.push("flac"); // Safari cannot decode FLAC
        return new Set(codecs);
    }`,
    },
  ],
};
