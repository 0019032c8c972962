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
  let wrapLimit = Number(bar.dataset.wrapLimit || 0);  // the server's wrap_up_limit_s (0: the agent ends it)
  let wrapPolled = 0;

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
    showWrap();
  }

  // Wrap-up: with a limit the dialler ends it by itself (it decides; this screen only counts down and then reads
  // GET /api/desk/status until the state it shows is the server's); without one the agent ends it.
  function showWrap() {
    const info = document.getElementById("wrap-info");
    if (bar.dataset.state !== "wrap_up") { info.hidden = true; info.dataset.mode = ""; return; }
    info.hidden = false;
    if (!(wrapLimit > 0)) { info.dataset.mode = "manual"; info.textContent = T["wrap.manual"] || ""; return; }
    const left = since.getTime() + wrapLimit * 1000 - now();
    if (left > 0) {
      info.dataset.mode = "countdown";
      info.dataset.left = String(Math.ceil(left / 1000));
      info.textContent = (T["wrap.left"] || "{time}").replace("{time}", fmt(left + 999));
    } else {
      info.dataset.mode = "ending";
      info.textContent = T["wrap.ending"] || "";
      if (now() - wrapPolled > 2000) { wrapPolled = now(); refreshStatus(); }
    }
  }
  setInterval(tick, 1000);

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
    showWrap();
  }

  document.querySelectorAll(".state-btn").forEach(function (btn) {
    btn.addEventListener("click", async function () {
      const state = btn.dataset.state;
      const body = {state: state, reason: state === "paused" ? document.getElementById("pause-reason").value : ""};
      const choice = document.getElementById("phone-choice");  // at login: the phone the agent sits at (issue 18)
      if (choice && bar.dataset.state === "logged_out" && state !== "logged_out") { body.phone = choice.value; }
      if (state === "ready" && window.ccSoftphone && !window.ccSoftphone.registered() && (!choice || choice.value === "webrtc")) {
        toast(T["sp.not_registered"] || "", true);  // the server refuses it too (phone_not_registered)
        return;
      }
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

  // Client care (财经秘书 alerts, opt-outs, complaints) for the client on screen: a collapsed section
  // below the client's holdings and contacts (under the script), loaded from /agent/care/clients/{id}; its actions post JSON.
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
    box.className = "card care"; box.id = "care-box"; box.open = false;  // collapsed: never pushes the script down
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
        refreshToday();
        refreshCallbacks();
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
        refreshStatus();  // hold / mute as the call core now has them
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
  function showFlags(c) {  // on hold / muted: the call core's facts (GET /api/desk/status), so a reload keeps them
    const flags = document.getElementById("call-flags");
    if (!flags || !c || flags.closest("#call-card").dataset.contact !== String(c.id)) { return; }
    flags.dataset.held = c.on_hold ? "yes" : "no";
    flags.dataset.muted = c.muted ? "yes" : "no";
    document.getElementById("flag-held").hidden = !c.on_hold;
    document.getElementById("flag-muted").hidden = !c.muted;
  }
  function showPauses(codes) {  // the pause codes of the agent's call's (or campaign's) kind
    const sel = document.getElementById("pause-reason");
    if (!sel || !codes || !codes.length) { return; }
    const was = sel.value;
    sel.replaceChildren.apply(sel, codes.map(function (c) {
      const o = document.createElement("option");
      o.value = c.code; o.textContent = c.label; T["reason." + c.code] = c.label;
      return o;
    }));
    if (codes.some(function (c) { return c.code === was; })) { sel.value = was; }
  }
  function applyStatus(data) {
    if (typeof data.wrap_up_limit_s === "number") { wrapLimit = data.wrap_up_limit_s; }
    showState(data.state, data.reason, data.since);
    showPauses(data.pause_codes);
    const c = data.contact;
    showFlags(c);
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
      else if (ev.type === "state") { showState(ev.state, ev.reason, ev.since); refreshSide(); }
    };
  }
  // The agent's own figures today (GET /api/desk/today): on load and after each disposition.
  async function refreshToday() {
    const res = await fetch("/api/desk/today", {credentials: "same-origin"}).catch(function () { return null; });
    if (!res || !res.ok) { return; }
    const d = await res.json();
    const mins = Math.floor(d.talk_seconds / 60);
    document.getElementById("today-calls").textContent = String(d.calls);
    document.getElementById("today-talk").textContent =
      (T["today.talk_fmt"] || "{h}:{m}").replace("{h}", String(Math.floor(mins / 60))).replace("{m}", String(mins % 60));
    document.getElementById("today-appointments").textContent = String(d.appointments);
    document.getElementById("today-callbacks").textContent = String(d.callbacks_due);
    const panel = document.getElementById("today-panel");
    panel.dataset.calls = String(d.calls);
    document.getElementById("today-dispositions").textContent = Object.keys(d.dispositions).sort().map(function (k) {
      return (T["disposition." + k] || k) + " " + d.dispositions[k];
    }).join(" · ");
  }

  // A state change (a call ended, a callback placed, a wrap-up over) may change both: read them again, at most
  // once a second.
  let sideTimer = null;
  function refreshSide() {
    if (sideTimer) { return; }
    sideTimer = setTimeout(function () { sideTimer = null; refreshToday(); refreshCallbacks(); }, 1000);
  }

  // The callbacks to place (GET /api/desk/callbacks): refreshed after a disposition; a click shows that
  // callback and its client's care panel beside the list.
  let callbacks = [];
  function callbackButton(cb) {
    const li = document.createElement("li");
    const btn = document.createElement("button");
    btn.type = "button"; btn.className = "callback-item" + (cb.overdue ? " overdue" : "");
    btn.dataset.callback = String(cb.id);
    btn.textContent = dueText(cb.due_at).slice(5) + " · " + (cb.name || cb.phone) + (cb.overdue ? " " + (T.overdue || "") : "");
    li.append(btn);
    return li;
  }
  async function refreshCallbacks() {
    const res = await fetch("/api/desk/callbacks", {credentials: "same-origin"}).catch(function () { return null; });
    if (!res || !res.ok) { return; }
    callbacks = await res.json();
    const list = document.getElementById("callback-list");
    const selected = list.querySelector('[aria-pressed="true"]');
    list.replaceChildren.apply(list, callbacks.map(callbackButton));
    list.dataset.count = String(callbacks.length);
    document.getElementById("no-callbacks").hidden = callbacks.length > 0;
    if (selected) {
      const again = list.querySelector('[data-callback="' + selected.dataset.callback + '"]');
      if (again) { again.setAttribute("aria-pressed", "true"); } else { document.getElementById("callback-detail").hidden = true; }
    }
  }
  async function selectCallback(id) {
    const cb = callbacks.find(function (c) { return String(c.id) === String(id); });
    if (!cb) { return; }
    document.querySelectorAll("#callback-list .callback-item").forEach(function (b) {
      b.setAttribute("aria-pressed", b.dataset.callback === String(id) ? "true" : "false");
    });
    const box = document.getElementById("callback-detail");
    box.dataset.callback = String(cb.id);
    box.dataset.client = cb.client_id ? String(cb.client_id) : "";
    document.getElementById("cb-name").textContent = cb.name || "—";
    document.getElementById("cb-phone").textContent = cb.phone;
    document.getElementById("cb-due").textContent = dueText(cb.due_at);
    document.getElementById("cb-who").textContent = cb.agent_only ? (T["cb.agent_only"] || "") : (T["cb.anyone"] || "");
    document.getElementById("cb-note").textContent = cb.note || "";
    const care = document.getElementById("cb-care");
    care.replaceChildren();
    box.hidden = false;
    if (cb.client_id) {  // the client's care panel (alerts, opt-outs, complaints), as on a call's card
      const inner = document.createElement("div");
      inner.className = "care"; inner.dataset.client = String(cb.client_id); inner.dataset.contact = "";
      const msg = document.createElement("p");
      msg.className = "care-msg"; msg.setAttribute("role", "status"); msg.hidden = true;
      const body = document.createElement("div");
      body.className = "care-body";
      inner.append(msg, body);
      care.append(inner);
      bindCare(inner);
      await refreshCare(inner);
    }
  }
  // Manual dial: a number through the campaign the agent works (DNC and calling hours checked by the server)
  document.getElementById("manual-dial").addEventListener("submit", async function (ev) {
    ev.preventDefault();
    const phone = document.getElementById("manual-phone").value.trim();
    if (!phone) { return; }
    await post("/api/desk/dial", {phone: phone});
    toast(T["cb.dialing"] || "");
    document.getElementById("manual-dial").dataset.dialing = "yes";
    refreshStatus();
  });
  // "Call now": the callback becomes due now and this agent's; the agent goes ready and the dialler places it
  document.getElementById("cb-dial").addEventListener("click", async function () {
    const id = document.getElementById("callback-detail").dataset.callback;
    if (!id) { return; }
    const data = await post("/api/desk/callbacks/" + id + "/dial", {});
    toast(T["cb.dialing"] || "");
    document.getElementById("callback-detail").dataset.dialing = data.state;
    refreshStatus();
  });
  document.getElementById("callback-list").addEventListener("click", function (ev) {
    const btn = ev.target.closest(".callback-item");
    if (btn) { selectCallback(btn.dataset.callback); }
  });

  // Keyboard shortcuts (listed in the ? overlay; the keys are the page's SHORTCUTS): never while typing.
  // The overlay is a modal dialog: focus stays inside while it is open (Tab / Shift+Tab cycle its controls) and
  // goes back where it was when it closes.
  const help = document.getElementById("help-overlay");
  let helpReturn = null;  // what had the focus before the overlay opened
  function toggleHelp(open) {
    if (open === !help.hidden) { return; }
    help.hidden = !open;
    if (open) {
      helpReturn = document.activeElement;
      document.getElementById("help-close").focus();
    } else if (helpReturn && document.contains(helpReturn) && typeof helpReturn.focus === "function") {
      helpReturn.focus();
      helpReturn = null;
    }
  }
  function helpFocusables() {
    return Array.prototype.filter.call(
      help.querySelectorAll('button, [href], input, select, textarea, [tabindex]:not([tabindex="-1"])'),
      function (el) { return !el.disabled && el.getClientRects().length > 0; });
  }
  help.addEventListener("keydown", function (ev) {
    if (ev.key !== "Tab") { return; }
    const items = helpFocusables();
    if (!items.length) { ev.preventDefault(); return; }
    const at = items.indexOf(document.activeElement);
    const next = ev.shiftKey ? (at <= 0 ? items.length - 1 : at - 1) : (at < 0 || at === items.length - 1 ? 0 : at + 1);
    items[next].focus();
    ev.preventDefault();
  });
  document.addEventListener("focusin", function (ev) {  // a click or a script cannot move the focus out either
    if (!help.hidden && !help.contains(ev.target)) { document.getElementById("help-close").focus(); }
  });
  document.getElementById("btn-help").addEventListener("click", function () { toggleHelp(help.hidden); });
  document.getElementById("help-close").addEventListener("click", function () { toggleHelp(false); });
  help.addEventListener("click", function (ev) { if (ev.target === help) { toggleHelp(false); } });
  function typing(el) {
    if (!el) { return false; }
    const tag = el.tagName;
    return tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable ||
      (tag === "INPUT" && ["button", "checkbox", "radio", "submit", "reset"].indexOf(el.type) < 0);
  }
  function press(selector) {
    const el = document.querySelector(selector);
    if (el && !el.disabled && !el.closest("fieldset:disabled")) { el.click(); return true; }
    return false;
  }
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "Escape") {
      if (!help.hidden) { toggleHelp(false); ev.preventDefault(); }
      else if (typing(document.activeElement)) { document.activeElement.blur(); }
      return;
    }
    if (ev.ctrlKey || ev.metaKey || ev.altKey || typing(ev.target)) { return; }
    const key = ev.key;
    let done = false;
    if (key === "?") { toggleHelp(help.hidden); done = true; }
    else if (!help.hidden) { return; }
    else if (key === "r" || key === "R") { done = press("#btn-ready"); }
    else if (key === "p" || key === "P") { done = press("#btn-pause"); }
    else if (key === "h" || key === "H") { done = press("#hang-up"); }
    else if (key === "n" || key === "N") {
      const note = document.getElementById("note");
      if (note) { note.focus(); done = true; }
    } else if (key === "d" || key === "D") {
      const first = document.querySelector("#dispositions .disp");
      if (first) { first.scrollIntoView({block: "nearest"}); first.focus(); done = true; }
    } else if (/^[1-9]$/.test(key)) {
      const answers = document.querySelectorAll('#script-panel .answer[data-action="answer"], #script-panel .answer[data-action="finish"]');
      const btn = answers[Number(key) - 1];
      if (btn) { btn.click(); done = true; }
    }
    if (done) { ev.preventDefault(); }
  });

  connect();
  refreshStatus();
  refreshToday();
  refreshCallbacks();
  tick();
})();
