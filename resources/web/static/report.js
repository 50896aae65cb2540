// Tells the host's listener panel how this phone is doing: playing, buffering or in the
// background, its sync error, and the name the guest chose ("Anna's phone").
// A small GET to the worker this phone is connected to (the party's HTTP takes no bodies,
// and the Sendspin protocol has no field for it): sent on change, at most every MIN_GAP_MS,
// and every EVERY_MS; the worker accepts it only from this phone's own address.
const CHECK_MS = 2000;
const MIN_GAP_MS = 2000;
const EVERY_MS = 15000;
const NAME_KEY = "partystream-name";
const MAX_NAME = 40;

export function savedName() {
  try {
    return localStorage.getItem(NAME_KEY) || "";
  } catch {
    return "";
  }
}

export function saveName(name) {
  const clean = name.replace(/\s+/g, " ").trim().slice(0, MAX_NAME);
  try {
    if (clean) localStorage.setItem(NAME_KEY, clean);
    else localStorage.removeItem(NAME_KEY);
  } catch {
    // private mode
  }
  return clean;
}

/** @param {{listener: any, playerId: () => string, syncErrorMs: () => number|null,
 *           onChannel: (index: number, askedAt: number) => void}} hooks */
export function startReports({ listener, playerId, syncErrorMs, onChannel }) {
  let last = "";
  let sentAt = 0;

  function state() {
    if (document.visibilityState === "hidden") return "background";
    return listener.playing ? "playing" : "buffering";
  }

  async function tick(force) {
    const worker = listener.worker;
    if (!listener.connected || !worker) return;
    const sync = syncErrorMs();
    const query = new URLSearchParams({ id: playerId(), state: state() });
    if (sync !== null) query.set("sync", String(Math.round(sync / 5) * 5));
    if (savedName()) query.set("name", savedName());
    const text = query.toString();
    const now = Date.now();
    if (!force && now - sentAt < MIN_GAP_MS) return;
    if (!force && text === last && now - sentAt < EVERY_MS) return;
    last = text;
    sentAt = now;
    try {
      const url = `${location.protocol}//${location.hostname}:${worker.port}/api/me?${text}`;
      const askedAt = performance.now();
      // Another port is another origin: the worker answers with CORS, {"channel": n}.
      const response = await fetch(url, { cache: "no-store", credentials: "omit" });
      const body = response.ok ? await response.json().catch(() => null) : null;
      if (body && listener.worker === worker) onChannel(body.channel, askedAt);
    } catch {
      // the next tick tries again
    }
  }

  setInterval(() => tick(false), CHECK_MS);
  document.addEventListener("visibilitychange", () => tick(true));
  return { now: () => tick(true) };
}
