// Wall board: the live calls a supervisor may monitor, each with listen / whisper / barge (explicit: the button
// says who will hear the supervisor) and stop; every press is audited on the server.
(function () {
  "use strict";
  const block = document.getElementById("cc-monitor-text");
  const T = block ? JSON.parse(block.textContent) : {};
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const body = document.querySelector("#wb-live tbody");
  const status = document.getElementById("wb-monitor-status");

  async function settle(commandId) {
    for (let i = 0; i < 100; i++) {
      const res = await fetch("/api/desk/commands/" + commandId, {credentials: "same-origin"});
      const out = await res.json().catch(function () { return {}; });
      if (out.state && out.state !== "pending" && out.state !== "claimed") { return out; }
      await new Promise(function (ok) { setTimeout(ok, 150); });
    }
    return {state: "pending", message: ""};
  }

  async function press(agentId, mode) {
    const res = await fetch("/api/supervisor/monitor", {method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf}, body: JSON.stringify({agent_id: agentId, mode: mode})});
    const data = await res.json().catch(function () { return {}; });
    if (!res.ok) {
      status.textContent = (data.error && data.error.message) || "";
      status.dataset.state = "refused";
      return;
    }
    const out = await settle(data.command_id);
    status.textContent = (T["mode." + mode] || T[mode] || "") + ": " + (out.message || "");
    status.dataset.state = out.state;
    status.dataset.mode = mode;
  }

  async function refresh() {
    const res = await fetch("/api/supervisor/live-calls", {credentials: "same-origin"});
    if (!res.ok) { return; }
    const calls = await res.json();
    if (!calls.length) {
      const tr = document.createElement("tr"); tr.className = "empty";
      const td = document.createElement("td"); td.className = "muted"; td.textContent = T.no_live_calls || "";
      tr.appendChild(td); body.replaceChildren(tr);
      return;
    }
    body.replaceChildren.apply(body, calls.map(function (c) {
      const tr = document.createElement("tr");
      tr.dataset.agent = String(c.agent_id);
      const who = document.createElement("td");
      who.textContent = c.agent + (c.direction === "inbound" ? " · " + (T.inbound || "") : "");
      tr.appendChild(who);
      ["listen", "whisper", "barge", "monitor_stop"].forEach(function (mode) {
        const td = document.createElement("td");
        const b = document.createElement("button");
        b.type = "button"; b.className = "monitor"; b.dataset.mode = mode;
        b.textContent = T[mode] || mode;
        if (T["mode." + mode]) { b.title = T["mode." + mode]; }
        b.addEventListener("click", function () { press(c.agent_id, mode); });
        td.appendChild(b); tr.appendChild(td);
      });
      return tr;
    }));
  }
  refresh();
  setInterval(refresh, 3000);
})();
