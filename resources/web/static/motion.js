// Keep the page light on the phone: its animations pause while nobody looks (tab hidden,
// screen locked) or the battery is low and not charging, so audio keeps the CPU it needs.
// Reduced motion is honoured in CSS. Sets `.is-still` on <html>.

const LOW_BATTERY = 0.2;
let hidden = document.hidden;
let lowPower = false;

function apply() {
  document.documentElement.classList.toggle("is-still", hidden || lowPower);
}

export function setupMotion() {
  document.addEventListener("visibilitychange", () => {
    hidden = document.hidden;
    apply();
  });
  // Battery Status exists in Chrome/Android only; elsewhere the page just keeps moving.
  navigator.getBattery?.().then((battery) => {
    const update = () => {
      lowPower = !battery.charging && battery.level <= LOW_BATTERY;
      apply();
    };
    battery.addEventListener("levelchange", update);
    battery.addEventListener("chargingchange", update);
    update();
  }).catch(() => {});
  apply();
}
