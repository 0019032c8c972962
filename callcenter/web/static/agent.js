// Agent screen: status bar timers, live call events over SSE, the call card fragment, JSON actions.
(function () {
  "use strict";
  // The screen's sentences: a JSON data block in the page (the Content-Security-Policy allows no inline script).
  const textBlock = document.getElementById("cc-text");
  const T = textBlock ? JSON.parse(textBlock.textContent) : {};
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const bar = document.getElementById("statusbar");
  const slot = document.getElementById("card-slot");
  const waitingHtml = slot.innerHTML;
  const skew = Date.parse(bar.dataset.now) - Date.now();  // server clock minus this browser's clock
  function now() { return Date.now() + skew; }
  let since = new Date(bar.dataset.since);
  let callStart = null;

  function pad(n) { return String(n).padStart(2, "0"); }
  function fmt(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    return (h ? h + ":" : "") + pad(m) + ":" + pad(s % 60);
  }
  function tick() {
    document.getElementById("state-timer").textContent = fmt(now() - since.getTime());
    const wrap = document.getElementById("call-timer-wrap");
    if (callStart) { wrap.hidden = false; document.getElementById("call-timer").textContent = fmt(now() - callStart.getTime()); }
    else { wrap.hidden = true; }
  }
  setInterval(tick, 1000); tick();

  function toast(text, bad) {
    const el = document.getElementById("toast");
    el.textContent = text; el.hidden = false; el.className = "toast" + (bad ? " bad" : "");
    clearTimeout(toast.timer); toast.timer = setTimeout(function () { el.hidden = true; }, 3500);
  }

  async function post(url, body) {
    const res = await fetch(url, {method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf}, body: JSON.stringify(body || {})});
    const data = await res.json().catch(function () { return {}; });
    if (!res.ok) {
      const msg = (data.error && data.error.message) || res.status;
      toast((T.error || "{code}").replace("{code}", msg), true);
      throw new Error(String(msg));
    }
    return data;
  }

  function showState(state, reason, sinceIso) {
    bar.dataset.state = state;
    bar.className = "statusbar state-" + state;
    document.getElementById("state-label").textContent = (T["state." + state] || state) + (reason ? " · " + (T["reason." + reason] || reason) : "");
    since = sinceIso ? new Date(sinceIso) : new Date(now());
  }

  document.querySelectorAll(".state-btn").forEach(function (btn) {
    btn.addEventListener("click", async function () {
      const state = btn.dataset.state;
      const body = {state: state, reason: state === "paused" ? document.getElementById("pause-reason").value : ""};
      const data = await post("/api/desk/state", body);
      showState(data.state, data.reason, data.since);
      if (state === "ready" && !data.contact_id) { slot.innerHTML = waitingHtml; callStart = null; }
    });
  });

  async function loadCard(contactId) {
    const res = await fetch("/agent/contacts/" + contactId + "/card", {credentials: "same-origin"});
    if (!res.ok) { toast((T.error || "{code}").replace("{code}", res.status), true); return; }
    const kept = document.getElementById("care-box");  // survives re-renders of the same call's card
    if (kept) { kept.remove(); }
    slot.innerHTML = await res.text();
    const card = document.getElementById("call-card");
    if (card.dataset.hungup === "no") { callStart = callStart && bar.dataset.contact === String(contactId) ? callStart : new Date(card.dataset.started); }
    else { callStart = null; }
    bar.dataset.contact = String(contactId);
    bind(contactId);
    if (card.dataset.client) { openCare(card.dataset.client, contactId, kept); }
  }

  // Client care (财经秘书 alerts, opt-outs, complaints) for the client on screen: a collapsible section
  // below the client's holdings and contacts, loaded from /agent/care/clients/{id}; its actions post JSON.
  function careText(key, params) {
    let s = T["care." + key] || "";
    Object.keys(params || {}).forEach(function (k) { s = s.replace("{" + k + "}", params[k]); });
    return s;
  }
  function careMsg(box, text, bad) {
    const el = box.querySelector(".care-msg");
    el.textContent = text; el.className = "care-msg " + (bad ? "bad" : "ok"); el.hidden = false;
  }
  function dueText(iso) {
    const parts = {};
    new Intl.DateTimeFormat("en-GB", {timeZone: T["care.tz"] || undefined, year: "numeric", month: "2-digit",
      day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23"}).formatToParts(new Date(iso))
      .forEach(function (p) { parts[p.type] = p.value; });
    return parts.year + "-" + parts.month + "-" + parts.day + " " + parts.hour + ":" + parts.minute;
  }

  async function refreshCare(box) {
    const res = await fetch("/agent/care/clients/" + box.dataset.client, {credentials: "same-origin"});
    if (!res.ok) { careMsg(box, careText("load_failed", {code: res.status}), true); return false; }
    box.querySelector(".care-body").innerHTML = await res.text();
    return true;
  }

  async function careAction(box, url, body, okText) {
    try {
      const data = await post(url, body);
      await refreshCare(box);
      careMsg(box, okText ? okText(data) : careText("saved"));
      return data;
    } catch (err) {
      careMsg(box, careText("failed", {code: err.message}), true);
      return null;
    }
  }

  function bindCare(box) {
    const api = "/api/care/clients/" + box.dataset.client;
    box.addEventListener("click", async function (ev) {
      const btn = ev.target.closest("button[data-care-topic], button[data-care-optout]");
      if (!btn || btn.disabled) { return; }
      btn.disabled = true;
      if (btn.dataset.careTopic) {
        await careAction(box, api + "/subscriptions", {topic: btn.dataset.careTopic, enabled: btn.dataset.enable === "true"});
      } else {
        await careAction(box, api + "/optouts", {channel: btn.dataset.careOptout, opted_out: btn.dataset.value === "true"});
      }
      btn.disabled = false;
    });
    box.addEventListener("submit", async function (ev) {
      const form = ev.target.closest("form.care-complaint");
      if (!form) { return; }
      ev.preventDefault();
      const text = form.elements.text.value.trim();
      if (!text) { form.elements.text.focus(); return; }
      const submit = form.querySelector('button[type="submit"]');
      submit.disabled = true;
      const body = {category: form.elements.category.value, text: text};
      if (box.dataset.contact) { body.contact_id = Number(box.dataset.contact); }
      const done = await careAction(box, api + "/complaints", body, function (data) {
        return careText("opened", {id: data.id, due: dueText(data.due_at)});
      });
      if (!done) { submit.disabled = false; }  // on success the panel was re-rendered with an empty form
    });
  }

  async function openCare(clientId, contactId, kept) {
    const card = document.getElementById("call-card");
    const anchor = card && card.querySelector("section.client");
    if (!anchor) { return; }
    let box = kept && kept.dataset.client === String(clientId) ? kept : null;
    if (box) { box.dataset.contact = contactId ? String(contactId) : ""; anchor.after(box); return; }
    box = document.createElement("details");
    box.className = "card care"; box.id = "care-box"; box.open = true;
    box.style.gridColumn = "1 / -1";  // full width of the call card, between the client and the script
    box.dataset.client = String(clientId); box.dataset.contact = contactId ? String(contactId) : "";
    const summary = document.createElement("summary");
    summary.textContent = T["care.title"] || "";
    const msg = document.createElement("p");
    msg.className = "care-msg"; msg.setAttribute("role", "status"); msg.hidden = true;
    const body = document.createElement("div");
    body.className = "care-body";
    box.append(summary, msg, body);
    anchor.after(box);
    bindCare(box);
    await refreshCare(box);
  }

  function captured() {
    const out = {};
    document.querySelectorAll("[data-capture]").forEach(function (el) { if (el.value !== "") out[el.dataset.capture] = el.value; });
    return out;
  }

  function bind(contactId) {
    const base = "/api/desk/contacts/" + contactId;
    document.querySelectorAll("#script-panel .answer").forEach(function (btn) {
      btn.addEventListener("click", async function () {
        await post(base + "/script", {action: btn.dataset.action, answer: btn.dataset.answer || "", captured: btn.dataset.action === "back" ? {} : captured()});
        await loadCard(contactId);
      });
    });
    document.getElementById("save-note").addEventListener("click", async function () {
      await post(base + "/note", {note: document.getElementById("note").value});
      toast(T.note_saved || "OK");
    });
    document.querySelectorAll("#recording-actions button").forEach(function (btn) {
      btn.addEventListener("click", async function () {
        await post(base + "/recording", {action: btn.dataset.action});
        const paused = btn.dataset.action !== "resume";
        document.getElementById("recording-actions").dataset.state = paused ? "paused" : "recording";
        document.getElementById("rec-pause").hidden = paused;
        document.getElementById("rec-secure").hidden = paused;
        document.getElementById("rec-resume").hidden = !paused;
        document.getElementById("rec-state").textContent =
          (btn.dataset.action === "secure" ? T.rec_secure_on : paused ? T.rec_paused : T.rec_on) || "";
      });
    });
    document.getElementById("hang-up").addEventListener("click", async function () {
      await post(base + "/hangup");
      callStart = null;
      document.getElementById("hang-up").disabled = true;
      toast(T.hung_up || "");
    });
    bindControls(contactId);
    const toIvr = document.getElementById("to-ivr-orders");
    if (toIvr) {  // agents never order for a client: the client goes to the hotline's order menu
      toIvr.addEventListener("click", async function () {
        await post(base + "/ivr-orders");
        callStart = null;
        toIvr.disabled = true;
        document.getElementById("hang-up").disabled = true;
        toast(toIvr.dataset.ok || "");
      });
    }
    const alertSet = document.getElementById("alert-set");
    if (alertSet) {  // 行情报警 at the client's request
      alertSet.addEventListener("click", async function () {
        await post(base + "/price-alerts", {code: document.getElementById("alert-code").value,
          direction: document.getElementById("alert-direction").value,
          price: document.getElementById("alert-price").value});
        toast(alertSet.dataset.ok || "");
      });
    }
    const book = document.getElementById("appt-book");
    if (book) {  // 预约服务: book the chosen slot for the client of this call
      book.addEventListener("click", async function () {
        const choice = document.getElementById("appt-slot").value.split("|");
        if (choice.length !== 2) { return; }
        await post(base + "/appointments", {kind: choice[0], slot_start: choice[1],
          note: document.getElementById("appt-note").value});
        toast(book.dataset.ok || "");
        await loadCard(contactId);
      });
    }
    document.querySelectorAll("#dispositions .disp").forEach(function (btn) {
      btn.addEventListener("click", async function () {
        const at = document.getElementById("callback-at").value;
        const who = document.querySelector('input[name="cb-who"]:checked').value;
        await post(base + "/dispose", {disposition: btn.dataset.disposition, note: document.getElementById("note").value,
          callback_at: at ? at : null, callback_agent_only: who === "agent", dnc: document.getElementById("dnc").checked});
        callStart = null;
        bar.dataset.contact = "";
        slot.innerHTML = '<div class="waiting closed" id="closed">' + (T.closed || "") + "</div>";
      });
    });
  }

  // Call controls (issue 13): each button is a call command the dialler's call core decides on; the outcome is
  // read back as a sentence (GET /api/desk/commands/{id}).
  async function settle(commandId) {
    for (let i = 0; i < 100; i++) {
      const res = await fetch("/api/desk/commands/" + commandId, {credentials: "same-origin"});
      const out = await res.json().catch(function () { return {}; });
      if (out.state && out.state !== "pending" && out.state !== "claimed") { return out; }
      await new Promise(function (ok) { setTimeout(ok, 150); });
    }
    return {state: "pending", message: ""};
  }

  async function loadTargets() {
    const sel = document.getElementById("ctl-target");
    if (!sel) { return; }
    const res = await fetch("/api/desk/transfer-targets", {credentials: "same-origin"});
    const rows = res.ok ? await res.json() : [];
    sel.replaceChildren.apply(sel, rows.map(function (r) {
      const o = document.createElement("option");
      o.value = String(r.staff_id);
      o.textContent = r.name + " · " + (T["state." + r.state] || "");
      o.dataset.state = r.state;
      return o;
    }));
  }

  function bindControls(contactId) {
    const box = document.getElementById("call-controls");
    if (!box) { return; }
    loadTargets();
    box.querySelectorAll(".ctl").forEach(function (btn) {
      btn.addEventListener("click", async function () {
        const body = {kind: btn.dataset.kind};
        const target = document.getElementById("ctl-target").value;
        if (["transfer", "consult", "conference"].indexOf(body.kind) >= 0 && target) { body.target = Number(target); }
        if (body.kind === "dtmf") { body.digits = document.getElementById("ctl-digits").value; }
        if (body.kind === "transfer_ivr") { body.menu = document.getElementById("ctl-menu").value; }
        const status = document.getElementById("ctl-status");
        const queued = await post("/api/desk/contacts/" + contactId + "/control", body);
        const out = await settle(queued.command_id);
        status.textContent = btn.textContent + ": " + (out.message || "");
        status.dataset.state = out.state;
        status.dataset.kind = body.kind;
        if (out.state !== "done") { toast(out.message || "", true); }
        loadTargets();
      });
    });
  }

  // Preview mode: the dialler shows a lead; the agent dials or skips it.
  const preview = document.getElementById("preview-panel");
  document.querySelectorAll(".preview-btn").forEach(function (btn) {
    btn.addEventListener("click", async function () {
      await post("/api/desk/preview", {action: btn.dataset.action});
      preview.hidden = true;
    });
  });
  function showPreview(ev) {
    document.getElementById("preview-name").textContent = ev.name || "";
    document.getElementById("preview-phone").textContent = ev.phone || "";
    document.getElementById("preview-campaign").textContent = ev.campaign_id ? "#" + ev.campaign_id : "";
    document.getElementById("preview-attempt").textContent = ev.attempt_no || "";
    preview.hidden = false;
  }

  // The truth from the database (GET /api/desk/status): on load, and whenever the live stream (re)connects or
  // drops, so a screen that missed events (or had no browser open when the call came) shows the open call.
  let shown = null;  // the contact whose card is on screen
  function applyStatus(data) {
    showState(data.state, data.reason, data.since);
    const c = data.contact;
    if (c && shown !== String(c.id)) { preview.hidden = true; shown = String(c.id); loadCard(c.id); }
    else if (!c && bar.dataset.contact) { bar.dataset.contact = ""; shown = null; callStart = null; slot.innerHTML = waitingHtml; }
  }
  async function refreshStatus() {
    try {
      const res = await fetch("/api/desk/status", {credentials: "same-origin"});
      if (res.ok) { applyStatus(await res.json()); }
    } catch (e) { /* offline: the next reconnection tries again */ }
  }

  // Live events: state changes and calls routed to this agent.
  const live = document.getElementById("live-indicator");
  function connect() {
    const es = new EventSource("/live/agent");
    es.onopen = function () { live.className = "live ok"; live.title = live.dataset.ok; refreshStatus(); };
    es.onerror = function () { live.className = "live lost"; live.title = live.dataset.lost; refreshStatus(); };
    es.onmessage = function (msg) {
      const ev = JSON.parse(msg.data);
      if (ev.type === "call") {
        preview.hidden = true; callStart = new Date(now()); shown = String(ev.contact_id); loadCard(ev.contact_id);
        showState("talking", "", null);
      }
      else if (ev.type === "status") { applyStatus(ev); }
      else if (ev.type === "preview") { showPreview(ev); }
      else if (ev.type === "state") { showState(ev.state, ev.reason, ev.since); }
    };
  }
  connect();
  refreshStatus();
})();
