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

/** Ask the front door for a live worker: {port, path, worker} or {busy: message} on 503. */
export async function joinParty() {
  const { ok, status, body } = await getJson("/api/join", 4000);
  if (ok && body && Number.isInteger(body.port)) {
    return { port: body.port, path: body.path || "/sendspin", worker: body.worker };
  }
  if (status === 503) {
    return { busy: (body && body.error) || "The music has not started yet." };
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
