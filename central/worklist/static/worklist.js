// The worklist follows itself: wait (long polling) until the tenant's list changes, then swap in the
// new rows. Forms and links work without this script.
"use strict";
(function () {
  const live = document.getElementById("live");
  if (!live) return;
  let mark = Number(live.dataset.mark);
  const query = live.dataset.query || "";

  async function refresh() {
    const response = await fetch("/list?" + query, { credentials: "same-origin", cache: "no-store" });
    if (!response.ok) return;
    live.innerHTML = await response.text();
  }

  async function follow() {
    for (;;) {
      try {
        const response = await fetch("/api/changes?since=" + mark, { credentials: "same-origin", cache: "no-store" });
        if (!response.ok) throw new Error(String(response.status));
        const seen = (await response.json()).mark;
        if (seen !== mark) {
          mark = seen;
          await refresh();
        }
      } catch (e) {
        await new Promise(function (resolve) { setTimeout(resolve, 2000); });
      }
    }
  }
  follow();
})();
