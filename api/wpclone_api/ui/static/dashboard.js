// The dashboard's only script: refreshes the live parts of a page, counts down each clone's time
// left, and asks before a form marked data-confirm is sent. Every page works without it.
"use strict";

function countDown() {
  const now = Date.now();
  for (const time of document.querySelectorAll("time[data-expires]")) {
    const seconds = Math.floor((Date.parse(time.dataset.expires) - now) / 1000);
    time.textContent = seconds <= 0 ? "expired"
      : `${Math.floor(seconds / 60)} min ${String(seconds % 60).padStart(2, "0")} s`;
  }
}

async function refresh() {
  if (document.hidden) return;
  for (const live of document.querySelectorAll("[data-live]")) {
    try {
      const response = await fetch(live.dataset.live, {credentials: "same-origin", redirect: "manual"});
      if (response.type === "opaqueredirect" || response.status === 401) {
        window.location.assign("/ui/login");  // the session ended
        return;
      }
      if (!response.ok) continue;  // a refusal or a blip: keep what is shown, try again next time
      const html = await response.text();
      if (html !== live.dataset.shown) {
        live.innerHTML = html;
        live.dataset.shown = html;
        countDown();
      }
    } catch (error) {
      // the API is restarting or the network is down: the next round tries again
    }
  }
}

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!form.dataset || !form.dataset.confirm) return;
  if (!window.confirm(form.dataset.confirm)) {
    event.preventDefault();
    return;
  }
  if (!form.querySelector("input[name=confirm]")) {
    const confirmed = document.createElement("input");
    confirmed.type = "hidden";
    confirmed.name = "confirm";
    confirmed.value = "yes";
    form.appendChild(confirmed);
  }
});

countDown();
setInterval(countDown, 1000);
setInterval(refresh, 2000);
