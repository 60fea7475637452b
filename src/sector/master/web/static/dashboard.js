"use strict";
// Keeps a dashboard page current without reloading it: every few seconds it asks
// /live/<this page> for the page's live block (JSON: {"live": html, "time": unix})
// and swaps it in when it changed. The HTML comes from the master's own templates
// (escaped there), so there is one way to render a page. A 401 means the session
// ended: back to the login form.
(function () {
  const body = document.body;
  const url = body.dataset.liveUrl;
  const live = document.getElementById("live");
  const stamp = document.getElementById("updated");
  if (!url || !live) {
    return;
  }
  const every = Number(body.dataset.pollMs) || 1000;
  let shown = null;

  async function refresh() {
    try {
      const response = await fetch(url + location.search, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (response.status === 401) {
        location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
        return;
      }
      const data = await response.json();
      if (data.live !== shown) {
        live.innerHTML = data.live;
        shown = data.live;
      }
      stamp.textContent = "Updated " + new Date(data.time * 1000).toLocaleTimeString();
      stamp.classList.remove("stale");
      body.dataset.updates = String(Number(body.dataset.updates || "0") + 1);
    } catch (error) {
      stamp.textContent = "The master does not answer (" + error.message + "); trying again";
      stamp.classList.add("stale");
    }
    setTimeout(refresh, every);
  }

  setTimeout(refresh, every);
})();
