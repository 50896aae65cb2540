// The front door's read-only JSON endpoints (docs/ARCHITECTURE.md, "HTTP contract").
// Every request has a timeout: a phone on flaky Wi-Fi must never hang on a fetch.

async function getJson(path, timeoutMs) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    const response = await fetch(path, { cache: "no-store", signal: controller.signal });
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    return { ok: response.ok, status: response.status, body };
  } finally {
    clearTimeout(timer);
  }
}

/** Ask the front door for a live worker: {port, path, worker, ticket}, {busy: message} on
 * 503, or {refused: reason, message} when the party's PIN, cap or host says no. */
export async function joinParty({ id, pin } = {}) {
  const query = new URLSearchParams();
  if (id) query.set("id", id);
  if (pin) query.set("pin", pin);
  const { ok, status, body } = await getJson(`/api/join?${query}`, 4000);
  if (ok && body && Number.isInteger(body.port)) {
    const path = body.path || "/sendspin";
    // sendspin-js keeps only host and path of its URL: the ticket rides in the path.
    const ticketed = body.ticket ? `/t/${encodeURIComponent(body.ticket)}${path}` : path;
    return { port: body.port, path: ticketed, worker: body.worker };
  }
  if (status === 503) {
    return { busy: (body && body.error) || "The music has not started yet." };
  }
  if ((status === 403 || status === 429) && body && body.reason) {
    return { refused: body.reason, message: body.error || "" };
  }
  throw new Error(`join failed: HTTP ${status}`);
}

/** The party's public status, or null when the front door cannot be reached. */
export async function fetchStatus() {
  try {
    const { ok, body } = await getJson("/api/status", 2500);
    return ok && body ? body : null;
  } catch {
    return null;
  }
}
