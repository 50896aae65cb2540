// Silent-disco channels on the phone: one big coloured button per channel (name, who listens,
// what plays), one tap to switch, and the page's colour follows the channel like the light on
// silent-disco headphones. A party with one channel shows nothing here: the page is as before.
//
// The switch is a POST to the worker this phone is connected to (docs/ARCHITECTURE.md, "HTTP
// contract"): the Sendspin connection stays, only the audio routed to it changes, so there is
// no reconnect to see. A guest may pick before tapping Listen: the choice is kept (per tab, in
// sessionStorage, so a reload keeps it) and applied as soon as the player is connected, and
// again after every reconnect (a new worker knows nothing of it).

const KEY = "partystream-channel";
const SWITCH_TIMEOUT_MS = 2500;
const RETRY_MS = 700; // e.g. the worker has not seen our hello yet (404)
const TRIES = 5; // per pick and connection; then the page shows where the worker has us
const HEX_COLOUR = /^#[0-9a-f]{6}$/i;

function savedChannel() {
  try {
    const saved = sessionStorage.getItem(KEY);
    const index = saved === null ? NaN : Number(saved);
    return Number.isInteger(index) && index >= 0 ? index : null;
  } catch {
    return null; // private mode: the choice lasts as long as the page
  }
}

function saveChannel(index) {
  try {
    if (index === null) sessionStorage.removeItem(KEY);
    else sessionStorage.setItem(KEY, String(index));
  } catch {
    // ignore
  }
}

/** The valid rows of the status's `channels` list (never trust a page's input blindly). */
function cleanChannels(list) {
  if (!Array.isArray(list)) return [];
  return list
    .filter((c) => c && Number.isInteger(c.index) && typeof c.name === "string")
    .map((c) => ({
      index: c.index,
      name: c.name,
      colour: HEX_COLOUR.test(c.colour || "") ? c.colour : "#a855f7",
      listeners: Number.isInteger(c.listeners) ? c.listeners : null,
      nowPlaying: c.now_playing || null,
    }));
}

/** "#rrggbb" at opacity `alpha`, as rgba(): what color-mix() would do, on every phone. */
function tint(hex, alpha) {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  return `rgba(${r}, ${g}, ${b}, ${alpha})`;
}

/** "#rrggbb" a share `towardWhite` of the way to white: the accent's lighter partner. */
function lighter(hex, towardWhite) {
  const parts = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  const mixed = parts.map((v) => Math.round(v + (255 - v) * towardWhite));
  return `#${mixed.map((v) => v.toString(16).padStart(2, "0")).join("")}`;
}

function trackLine(track) {
  if (!track) return "";
  const title = track.title || track.label || "";
  return track.artist && title ? `${title} — ${track.artist}` : title;
}

function countText(listeners) {
  if (listeners === null) return "";
  return listeners === 1 ? "1 listening" : `${listeners} listening`;
}

// The page re-renders on every player event: touch the DOM only for a real change.
function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

function setAttr(element, name, value) {
  if (element.getAttribute(name) !== value) element.setAttribute(name, value);
}

/**
 * @param {{root: HTMLElement, announce: HTMLElement, listener: any,
 *          playerId: () => string, onChange: () => void, onSwitched: () => void}} parts
 */
export function setupChannels({ root, announce, listener, playerId, onChange, onSwitched }) {
  let channels = [];
  let chosen = savedChannel(); // what the guest picked (null: never picked, the server's 0)
  let confirmed = null; // what the worker said we are on, for the current connection
  let appliedJoin = -1; // listener.joins for which the choice was applied
  let inFlight = false;
  let retryAt = 0;
  let failures = 0; // failed sends of the current pick on the current connection
  let triedJoin = -1; // the connection `failures` counts for
  let answeredAt = 0; // performance.now() of the worker's last answer to a switch
  let tappedAt = 0; // performance.now() of the last tap, for the switch time below
  let switchMs = null; // tap to the worker's answer, last switch (diagnostics)
  const buttons = [];
  const lights = []; // made on first use: a party with one channel has none
  let lit = 0; // which of the two glows shows the current colour
  let shownColour = null;

  /** The channel the page shows as current: the guest's pick, else what the worker said. */
  function current() {
    const pick = chosen ?? confirmed ?? 0;
    return channels.some((c) => c.index === pick) ? pick : channels.length ? channels[0].index : 0;
  }

  function nameOf(index) {
    const channel = channels.find((c) => c.index === index);
    return channel ? channel.name : null;
  }

  /** For screen readers (a polite live region): the switch, whoever made it. */
  function announceCurrent() {
    const channel = channels.find((c) => c.index === current());
    if (channel) announce.textContent = `Now on ${channel.name}`;
  }

  function active() {
    return channels.length > 1;
  }

  function choose(index) {
    if (!channels.some((c) => c.index === index)) return;
    const changed = index !== current();
    chosen = index;
    saveChannel(index);
    tappedAt = performance.now();
    if (changed) announceCurrent();
    appliedJoin = -1; // (re)send for this connection
    failures = 0;
    onChange(); // the page repaints (and render() sends the choice when connected)
  }

  /** Tell the worker our channel; one request at a time, the latest choice wins. */
  async function apply() {
    if (!active() || chosen === null || !listener.connected || !listener.worker) return;
    if (inFlight || appliedJoin === listener.joins || Date.now() < retryAt) return;
    const join = listener.joins;
    if (join !== triedJoin) [triedJoin, failures, confirmed] = [join, 0, null]; // a new connection
    if (failures >= TRIES) return;
    inFlight = true;
    const want = chosen;
    const worker = listener.worker;
    const query = new URLSearchParams({ id: playerId(), channel: String(want) });
    const url = `${location.protocol}//${location.hostname}:${worker.port}/api/channel?${query}`;
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), SWITCH_TIMEOUT_MS);
    try {
      const response = await fetch(url, {
        method: "POST", cache: "no-store", credentials: "omit", signal: abort.signal,
      });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const body = await response.json().catch(() => null);
      confirmed = body && Number.isInteger(body.channel) ? body.channel : want;
      answeredAt = performance.now();
      if (tappedAt) switchMs = answeredAt - tappedAt;
      tappedAt = 0;
      if (join === listener.joins && want === chosen) appliedJoin = join;
      failures = 0;
      onSwitched(); // soon: the counts with this phone on its new channel
    } catch (err) {
      retryAt = Date.now() + RETRY_MS; // the next render (status poll, player event) retries
      failures += 1;
      console.warn("channel switch failed", err);
      if (failures >= TRIES) chosen = confirmed; // show where the worker has us, not the wish
    } finally {
      clearTimeout(timer);
      inFlight = false;
    }
    onChange();
    if (appliedJoin !== listener.joins && failures < TRIES) {
      setTimeout(apply, Math.max(0, retryAt - Date.now()));
    }
  }

  function build() {
    root.replaceChildren();
    buttons.length = 0;
    for (const channel of channels) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "channel";
      button.dataset.index = String(channel.index);
      button.style.setProperty("--ch", channel.colour);
      button.style.setProperty("--ch-fill", tint(channel.colour, 0.18));
      button.style.setProperty("--ch-edge", tint(channel.colour, 0.55));
      button.innerHTML =
        '<span class="channel-dot" aria-hidden="true"></span>' +
        '<span class="channel-text"><span class="channel-name"></span>' +
        '<span class="channel-now"></span></span><span class="channel-count">' +
        '<svg class="icon" aria-hidden="true"><use href="#i-people"/></svg><span></span></span>';
      button.addEventListener("click", () => choose(channel.index));
      root.append(button);
      buttons.push(button);
    }
  }

  function render() {
    if (root.hidden === active()) root.hidden = !active();
    document.documentElement.classList.toggle("has-channels", active());
    if (!active()) {
      paintColour(null);
      return;
    }
    if (buttons.length !== channels.length) build();
    const now = current();
    channels.forEach((channel, i) => {
      const button = buttons[i];
      setText(button.querySelector(".channel-name"), channel.name);
      setText(button.querySelector(".channel-now"), trackLine(channel.nowPlaying));
      const count = button.querySelector(".channel-count");
      const unknown = channel.listeners === null; // never a made-up figure
      if (count.hidden !== unknown) count.hidden = unknown;
      setText(count.lastChild, channel.listeners === null ? "" : String(channel.listeners));
      setAttr(button, "aria-pressed", String(channel.index === now));
      const parts = [channel.name, countText(channel.listeners), trackLine(channel.nowPlaying)];
      setAttr(button, "aria-label", parts.filter(Boolean).join(", "));
    });
    paintColour(channels.find((c) => c.index === now).colour);
    if (listener.connected && appliedJoin !== listener.joins) apply();
  }

  /** The accent follows the channel. Swapping two custom properties repaints (no layout);
   *  the glow behind the page fades on the compositor (opacity only), see channels.css. */
  function paintColour(colour) {
    if (colour === shownColour) return;
    shownColour = colour;
    const style = document.documentElement.style;
    const accents = {
      "--accent": colour,
      "--accent-2": colour && lighter(colour, 0.4),
      "--accent-haze": colour && tint(colour, 0.38),
      "--accent-edge": colour && tint(colour, 0.45),
      "--accent-glow": colour && tint(colour, 0.55),
    };
    for (const [name, value] of Object.entries(accents)) {
      if (value) style.setProperty(name, value);
      else style.removeProperty(name);
    }
    // The browser's own bar too (Android Chrome), like the light on the headphones.
    document.querySelector('meta[name="theme-color"]')?.setAttribute("content", colour || "#0c0a14");
    if (colour && !lights.length) {
      for (let i = 0; i < 2; i += 1) {
        const light = document.createElement("div");
        light.className = "channel-light";
        light.setAttribute("aria-hidden", "true");
        document.body.prepend(light);
        lights.push(light);
      }
    }
    if (!lights.length) return;
    lights[lit].classList.remove("is-lit"); // the old colour fades out ...
    lit = 1 - lit;
    if (colour) {
      lights[lit].style.setProperty("--light-top", tint(colour, 0.42)); // ... while the new
      lights[lit].style.setProperty("--light-bottom", tint(colour, 0.22)); // one fades in
      lights[lit].classList.add("is-lit");
    }
  }

  return {
    /** The status poll's `channels` list; true when the set changed (add, remove, rename,
     *  recolour): then the page asks the worker where we are (the host may have moved us). */
    update(list) {
      const next = cleanChannels(list);
      const shape = (l) => l.map((c) => `${c.index}:${c.name}:${c.colour}`).join("|");
      const reshaped = shape(next) !== shape(channels);
      const was = active() ? nameOf(current()) : null;
      if (reshaped && channels.length) {
        // Follow our channel by name, as the server does first (server/channels.py plan());
        // otherwise the worker's answer tells (heard()).
        const follow = (index) => {
          const same = next.find((c) => c.name === nameOf(index));
          return same ? same.index : null;
        };
        [chosen, confirmed] = [follow(chosen), follow(confirmed)];
        saveChannel(chosen);
      }
      if (reshaped) buttons.length = 0; // rebuilt at the next render
      channels = next;
      if (was !== null && active() && nameOf(current()) !== was) announceCurrent();
      render();
      return reshaped && channels.length > 0;
    },
    render,
    active,
    /** What the now-playing card shows: with channels, the current channel's track from the
     *  status (the Sendspin metadata role is per group, so the player only ever hears the
     *  first channel's titles); without, the party's (`fallback`). */
    statusTrack(fallback) {
      if (!active()) return fallback;
      const channel = channels.find((c) => c.index === current());
      return channel ? channel.nowPlaying : null;
    },
    /** The worker's answer to a report (report.js): the channel it has us on. Adopted when
     *  the host moved us (a channel removed or reordered), never over a pick in flight. */
    heard(index, askedAt) {
      if (!active() || !Number.isInteger(index) || inFlight || askedAt < answeredAt) return;
      if (appliedJoin !== listener.joins && chosen !== null) return; // ours is still to send
      if (index === current() && confirmed === index) return;
      const before = current();
      confirmed = index;
      if (chosen !== null) {
        chosen = index;
        saveChannel(index);
      }
      if (current() !== before) announceCurrent();
      onChange();
    },
    snapshot() {
      return {
        shown: !root.hidden,
        current: active() ? current() : null,
        chosen,
        confirmed,
        switchMs,
        colour: shownColour,
        buttons: buttons.map((b) => ({
          name: b.querySelector(".channel-name").textContent,
          count: b.querySelector(".channel-count").hidden
            ? null : Number(b.querySelector(".channel-count").textContent),
          now: b.querySelector(".channel-now").textContent,
          pressed: b.getAttribute("aria-pressed") === "true",
        })),
      };
    },
  };
}
