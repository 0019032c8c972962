// Wall board: a snapshot every second over SSE; numbers updated in place, no page reload. The times (in a
// state, on a call, the longest IVR wait) tick here between snapshots: each counts on from the snapshot's own
// seconds (the server's clock), so a browser clock that is off does not matter.
(function () {
  "use strict";
  // The screen's sentences: a JSON data block in the page (the Content-Security-Policy allows no inline script).
  const textBlock = document.getElementById("cc-text");
  const T = textBlock ? JSON.parse(textBlock.textContent) : {};
  let received = Date.now();  // when the shown snapshot arrived
  function pct(v) { return v === null || v === undefined ? "—" : (v * 100).toFixed(1) + "%"; }
  function two(n) { return (n < 10 ? "0" : "") + n; }
  function dur(s) {
    if (s === null || s === undefined || s === "" || isNaN(s)) return "—";
    s = Math.max(0, Math.floor(Number(s)));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    return h ? h + ":" + two(m) + ":" + two(sec) : m + ":" + two(sec);
  }
  function cell(text, num) { const td = document.createElement("td"); td.textContent = text; if (num) td.className = "num"; return td; }
  function timed(seconds) {  // a cell whose time ticks (data-seconds: its value when the snapshot was taken)
    const td = cell(dur(seconds), 1);
    if (seconds !== null && seconds !== undefined) td.dataset.seconds = seconds;
    return td;
  }
  function tick() {
    const extra = Math.floor((Date.now() - received) / 1000);
    document.querySelectorAll("[data-seconds]").forEach(function (el) {
      if (el.dataset.seconds !== "") el.textContent = dur(Number(el.dataset.seconds) + extra);
    });
  }
  function empty(body, text, cols) {
    const tr = document.createElement("tr"); tr.className = "empty";
    const td = cell(text || ""); td.colSpan = cols; td.className = "muted"; tr.appendChild(td);
    body.replaceChildren(tr);
  }
  function agents(rows) {
    const body = document.querySelector("#wb-agents tbody");
    if (!body) return;
    if (!rows.length) { empty(body, T.no_agents, 8); return; }
    body.replaceChildren.apply(body, rows.map(function (a) {
      const tr = document.createElement("tr");
      tr.dataset.agent = a.staff_id; tr.dataset.state = a.state; tr.className = "state-" + a.state;
      const state = cell((T["state." + a.state] || "") + (a.reason && T["reason." + a.reason] ? " · " + T["reason." + a.reason] : ""));
      state.className = "agent-state";
      [cell(a.name), cell(a.group || "—"), state, timed(a.state_s), cell(a.campaign || "—"),
       cell(a.direction ? (T[a.direction] || "") : "—"), timed(a.talk_s), cell(a.calls_today, 1)].forEach(function (td) { tr.appendChild(td); });
      return tr;
    }));
  }
  function groups(rows) {  // the queue per service group (the viewer's groups, and the callers of none)
    const body = document.querySelector("#wb-groups tbody");
    if (!body) return;
    if (!rows.length) { empty(body, T.no_groups, 6); return; }
    body.replaceChildren.apply(body, rows.map(function (g) {
      const tr = document.createElement("tr");
      tr.dataset.group = g.group_id === null ? "" : g.group_id;
      if (g.waiting) tr.className = "waiting";
      const waiting = cell(g.waiting, 1), longest = timed(g.longest_s), ready = cell(g.ready, 1), talking = cell(g.talking, 1);
      waiting.classList.add("group-waiting"); longest.classList.add("group-longest");
      ready.classList.add("group-ready"); talking.classList.add("group-talking");
      [cell(g.group || T.no_group || ""), waiting, longest, cell(g.signed_in, 1), ready, talking]
        .forEach(function (td) { tr.appendChild(td); });
      return tr;
    }));
  }
  function apply(w) {
    received = Date.now();
    document.getElementById("wb-updated").textContent = w.at.slice(11, 19);
    document.querySelectorAll("[data-agents]").forEach(function (el) { el.textContent = w.agents[el.dataset.agents] || 0; });
    document.getElementById("wb-ringing").textContent = w.ringing;
    document.getElementById("wb-answered").textContent = w.answered;
    document.getElementById("wb-connected").textContent = w.connected;
    document.getElementById("wb-in-flight").textContent = w.in_flight;
    document.getElementById("wb-ivr").textContent = w.ivr_waiting;
    const longest = document.getElementById("wb-ivr-longest");
    longest.dataset.seconds = w.ivr_longest_s === null ? "" : w.ivr_longest_s;
    longest.textContent = dur(w.ivr_longest_s);
    const sl = w.service_level || {};
    document.getElementById("wb-service-level").textContent = pct(sl.rate);
    document.getElementById("wb-service-level-hint").textContent = (T.service_level_hint || "")
      .replace("{seconds}", Math.round(sl.threshold_s || 0)).replace("{met}", sl.met || 0).replace("{offered}", sl.offered || 0);
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
    agents(w.agent_rows || []);
    groups(w.groups || []);
    const body = document.querySelector("#wb-campaigns tbody");
    const rows = w.campaigns.map(function (c) {
      const tr = document.createElement("tr"); tr.dataset.campaign = c.id;
      if (c.over_cap) { tr.className = "over-cap"; tr.title = T.over_cap || ""; }
      [cell(c.name), cell(T["cstate." + c.state] || c.state), cell(c.dials, 1), cell(c.contacts, 1),
       cell(pct(c.connect_rate), 1), cell(pct(c.abandon_today), 1), cell(pct(c.abandon_30d), 1),
       cell(pct(c.abandon_cap), 1)].forEach(function (td) { tr.appendChild(td); });
      return tr;
    });
    if (!rows.length) { empty(body, T.none, 8); } else { body.replaceChildren.apply(body, rows); }
  }
  setInterval(tick, 1000);
  const es = new EventSource("/live/wallboard");
  es.addEventListener("wallboard", function (msg) { apply(JSON.parse(msg.data)); });
})();
