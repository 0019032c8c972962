// Wall board: a snapshot every second over SSE; numbers updated in place, no page reload.
(function () {
  "use strict";
  // The screen's sentences: a JSON data block in the page (the Content-Security-Policy allows no inline script).
  const textBlock = document.getElementById("cc-text");
  const T = textBlock ? JSON.parse(textBlock.textContent) : {};
  function pct(v) { return v === null || v === undefined ? "—" : (v * 100).toFixed(1) + "%"; }
  function cell(text, num) { const td = document.createElement("td"); td.textContent = text; if (num) td.className = "num"; return td; }
  function apply(w) {
    document.getElementById("wb-updated").textContent = w.at.slice(11, 19);
    document.querySelectorAll("[data-agents]").forEach(function (el) { el.textContent = w.agents[el.dataset.agents] || 0; });
    document.getElementById("wb-ringing").textContent = w.ringing;
    document.getElementById("wb-connected").textContent = w.connected;
    document.getElementById("wb-ivr").textContent = w.ivr_waiting;
    const parts = document.getElementById("wb-parts");
    if (parts && w.parts) {
      const label = parts.firstElementChild;
      const items = w.parts.map(function (p) {
        const span = document.createElement("span");
        span.className = "part part-" + p.state; span.dataset.part = p.name;
        span.title = p.since + (p.error ? " — " + p.error : "");
        span.textContent = p.label + " " + p.state_label + (p.error ? " (" + p.error + ")" : "");
        return span;
      });
      parts.replaceChildren.apply(parts, [label].concat(items));
      parts.hidden = !items.length;
    }
    const body = document.querySelector("#wb-campaigns tbody");
    const rows = w.campaigns.map(function (c) {
      const tr = document.createElement("tr"); tr.dataset.campaign = c.id;
      [cell(c.name), cell(T["cstate." + c.state] || c.state), cell(c.dials, 1), cell(c.contacts, 1),
       cell(pct(c.connect_rate), 1), cell(pct(c.abandon_today), 1), cell(pct(c.abandon_30d), 1)].forEach(function (td) { tr.appendChild(td); });
      return tr;
    });
    if (!rows.length) { const tr = document.createElement("tr"); tr.className = "empty"; const td = cell(T.none || ""); td.colSpan = 7; td.className = "muted"; tr.appendChild(td); rows.push(tr); }
    body.replaceChildren.apply(body, rows);
  }
  const es = new EventSource("/live/wallboard");
  es.addEventListener("wallboard", function (msg) { apply(JSON.parse(msg.data)); });
})();
