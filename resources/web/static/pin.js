// The party PIN on the guest's side: it may arrive in the QR code's link (#pin=1234, a URL
// fragment, so it never reaches a server log), or be typed on the PIN screen. Kept on this
// device, so a reload or a rejoin needs no typing. The server checks it (/api/join).
const KEY = "partystream-pin";

function readHash() {
  const match = /(?:^#|&)pin=([A-Za-z0-9]{1,12})(?:&|$)/.exec(location.hash);
  if (!match) return null;
  // Out of the address bar: a screenshot of the page must not show it to the next person.
  history.replaceState(null, "", location.pathname + location.search);
  return match[1];
}

export function savedPin() {
  try {
    return localStorage.getItem(KEY) || null;
  } catch {
    return null;
  }
}

export function savePin(pin) {
  try {
    if (pin) localStorage.setItem(KEY, pin);
    else localStorage.removeItem(KEY);
  } catch {
    // private mode: the PIN lives as long as the page
  }
}

const fromLink = readHash();
if (fromLink) savePin(fromLink);

/** The PIN screen: calls `onPin(pin)` from the submit (a user gesture, so audio may start). */
export function setupPinForm({ form, input, onPin }) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const pin = input.value.replace(/\s+/g, "");
    if (!pin) return;
    savePin(pin);
    input.blur();
    onPin(pin);
  });
}
