// The "invite a friend" sheet: our own QR code (rendered by the server, no CDN) and the link.

/** Copy text; navigator.clipboard exists only in secure contexts, so fall back to execCommand. */
async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // fall through to the old way
    }
  }
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.style.position = "fixed";
  area.style.opacity = "0";
  document.body.appendChild(area);
  area.select();
  area.setSelectionRange(0, text.length);
  let ok = false;
  try {
    ok = document.execCommand("copy");
  } catch {
    ok = false;
  }
  area.remove();
  return ok;
}

export function setupShare({ toggle, sheet, close, qr, urlText, copyButton, shareButton, getUrl }) {
  // Without a QR image the link alone still works: never show a broken-image icon.
  const qrImage = qr.querySelector("img");
  qrImage.addEventListener("error", () => {
    qr.hidden = true;
  });
  qrImage.addEventListener("load", () => {
    qr.hidden = false;
  });
  if (qrImage.complete && qrImage.naturalWidth === 0) qr.hidden = true; // failed before we looked
  const open = (show) => {
    sheet.hidden = !show;
    toggle.setAttribute("aria-expanded", String(show));
    if (show) urlText.textContent = getUrl();
  };
  toggle.addEventListener("click", () => open(sheet.hidden));
  close.addEventListener("click", () => open(false));

  copyButton.addEventListener("click", async () => {
    const ok = await copyText(getUrl());
    const label = copyButton.querySelector(".label");
    label.textContent = ok ? "Link copied" : "Press and hold the link to copy";
    copyButton.classList.toggle("done", ok);
    setTimeout(() => {
      label.textContent = "Copy link";
      copyButton.classList.remove("done");
    }, 2500);
  });

  // Web Share (the phone's own share sheet) is secure-context only: offer it where it exists.
  if (navigator.share) {
    shareButton.hidden = false;
    shareButton.addEventListener("click", () => {
      navigator.share({ title: document.title, url: getUrl() }).catch(() => {});
    });
  }
}
