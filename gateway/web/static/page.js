// Live updates for the patient's page: wait (long polling) until the gateway says something changed,
// then swap in the live part of the page. Forms work without this script.
"use strict";
(function () {
  const live = document.getElementById("live");
  if (!live) return;
  let version = Number(live.dataset.version);
  window.__dhoShown = [];

  async function refresh() {
    const response = await fetch("/live", { credentials: "same-origin", cache: "no-store" });
    if (!response.ok) return;
    const html = await response.text();
    const focused = document.activeElement && live.contains(document.activeElement)
      ? document.activeElement.getAttribute("value") : null;
    live.innerHTML = html;
    window.__dhoShown.push({ version: version, at: Date.now() });
    if (focused) {
      const again = live.querySelector('[value="' + CSS.escape(focused) + '"]');
      if (again) again.focus();
    }
  }

  async function follow() {
    for (;;) {
      try {
        const response = await fetch("/api/changes?since=" + version, { credentials: "same-origin", cache: "no-store" });
        if (!response.ok) throw new Error(String(response.status));
        const seen = (await response.json()).version;
        if (seen !== version) {
          version = seen;
          await refresh();
        }
      } catch (e) {
        await new Promise(function (resolve) { setTimeout(resolve, 2000); });
      }
    }
  }
  follow();
})();
