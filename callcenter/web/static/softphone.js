// The browser softphone in the agent screen (issue 18): JsSIP (fetched by `make setup`, /static/softphone/jssip.min.js)
// registers the agent's WebRTC endpoint to Asterisk over WSS and answers the engine's agent-leg call by itself.
//
// What it shows is what holds, never more: "registered" only between a 2xx to REGISTER and the first of the
// socket closing, a refused or failed refresh, the registration's own expiry passing, or the liveness probe (an
// OPTIONS every few seconds) going unanswered -- a socket that died silently (no FIN: Wi-Fi lost, a NAT timed out)
// is found within seconds, not after SIP's 32 s, and a new one is opened. The page reports its registration to the
// engine (POST /api/desk/phone/registration) on every change and every few seconds while it holds: the desk
// refuses "ready" while the phone is not registered, and a page that stops reporting stops counting.
// A dedicated worker's heartbeat and a silent audio context keep a hidden tab from being throttled into missing
// its refreshes and probes.
(function () {
  "use strict";
  const box = document.getElementById("softphone");
  if (!box) { return; }
  const T = JSON.parse((document.getElementById("cc-text") || {textContent: "{}"}).textContent);
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const regEl = document.getElementById("sp-reg"), micEl = document.getElementById("sp-mic");
  const callEl = document.getElementById("sp-call"), levelEl = document.getElementById("sp-level");
  const deviceSel = document.getElementById("sp-device"), muteBtn = document.getElementById("sp-mute");
  const remoteAudio = document.getElementById("sp-remote");
  const PROBE_EVERY_MS = 5000, PROBE_TIMEOUT_MS = 4000, REFRESH_MARGIN_MS = 15000;

  const STUCK_MS = 8000;  // a REGISTER unanswered this long (the socket is up): a new socket, a new registration
  let config = null, ua = null, generation = 0, regSince = Date.now(), lastExpiresMs = 60000;
  let reg = "connecting", registeredUntil = 0, lastReported = null, lastReportAt = 0;
  let probeSentAt = 0, probeOk = 0, probing = false;
  let localStream = null, session = null, muted = false;
  let audioCtx = null, analyser = null, samples = null;

  function setReg(state) {
    if (state !== reg) { regSince = Date.now(); }
    if (state === "lost" && reg !== "lost") { box.dataset.losses = String(Number(box.dataset.losses || 0) + 1); }
    reg = state;
    box.dataset.reg = state;
    regEl.textContent = T["sp.reg." + state] || state;
    if (state !== "registered") { registeredUntil = 0; }
    report(false);
  }
  function setMic(state) { box.dataset.mic = state; micEl.textContent = T["sp.mic." + state] || state; }
  function setCall(state) {
    box.dataset.call = state;
    callEl.textContent = T["sp.call." + state] || state;
    muteBtn.disabled = state !== "active";
    if (state !== "active") { muted = false; muteBtn.textContent = T["sp.mute"] || "mute"; }
    controlsEnabled();
  }
  function isRegistered() { return reg === "registered" && registeredUntil > Date.now(); }
  // the page's own view, for the agent's screen and for tests: packets received/sent on the call (getStats)
  async function callStats() {
    const out = {received: 0, sent: 0};
    if (!session || !session.connection) { return out; }
    (await session.connection.getStats()).forEach(function (r) {
      if (r.type === "inbound-rtp" && r.kind === "audio") { out.received += r.packetsReceived || 0; }
      if (r.type === "outbound-rtp" && r.kind === "audio") { out.sent += r.packetsSent || 0; }
    });
    return out;
  }
  window.ccSoftphone = {registered: isRegistered, state: function () { return reg; }, stats: callStats};

  // --- the engine's word ----------------------------------------------------------------------------------------
  async function report(periodic) {
    const now = Date.now(), yes = isRegistered();
    if (periodic && !(yes && now - lastReportAt >= config.report_every_s * 1000)) { return; }
    if (!periodic && lastReported === yes) { return; }
    lastReported = yes; lastReportAt = now;
    try {
      await fetch("/api/desk/phone/registration", {method: "POST", credentials: "same-origin",
        headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
        body: JSON.stringify({kind: "webrtc", registered: yes})});
      box.dataset.reported = String(yes);
    } catch (e) { lastReported = null; /* offline: the next tick tries again */ }
  }

  // --- microphone: permission, device choice, level meter ---------------------------------------------------
  async function openMic(deviceId) {
    const constraints = {audio: deviceId ? {deviceId: {exact: deviceId}} : true, video: false};
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia(constraints);
    } catch (e) {
      setMic(e && (e.name === "NotFoundError" || e.name === "OverconstrainedError") ? "none" : "denied");
      return null;
    }
    setMic("granted");
    if (localStream) { localStream.getTracks().forEach(function (t) { t.stop(); }); }
    localStream = stream;
    box.dataset.device = stream.getAudioTracks()[0] ? stream.getAudioTracks()[0].getSettings().deviceId || "" : "";
    meter(stream);
    if (session && session.connection) {  // a device changed mid-call: the new track replaces the old one
      const track = stream.getAudioTracks()[0];
      session.connection.getSenders().forEach(function (s) { if (s.track && s.track.kind === "audio") { s.replaceTrack(track); } });
      track.enabled = !muted;
    }
    await listDevices();
    return stream;
  }
  async function listDevices() {
    const devices = (await navigator.mediaDevices.enumerateDevices()).filter(function (d) { return d.kind === "audioinput"; });
    const current = localStream && localStream.getAudioTracks()[0] ? localStream.getAudioTracks()[0].getSettings().deviceId : "";
    deviceSel.replaceChildren.apply(deviceSel, devices.map(function (d, i) {
      const o = document.createElement("option");
      o.value = d.deviceId; o.textContent = d.label || ("#" + (i + 1)); o.selected = d.deviceId === current;
      return o;
    }));
  }
  deviceSel.addEventListener("change", function () { openMic(deviceSel.value); });
  if (navigator.mediaDevices && navigator.mediaDevices.addEventListener) {
    navigator.mediaDevices.addEventListener("devicechange", listDevices);
  }

  function context() {
    if (!audioCtx) {
      audioCtx = new AudioContext();
      // the keep-alive: a page that plays audio is not throttled when hidden; a silent oscillator is enough
      const osc = audioCtx.createOscillator(), gain = audioCtx.createGain();
      gain.gain.value = 0; osc.connect(gain); gain.connect(audioCtx.destination); osc.start();
    }
    if (audioCtx.state === "suspended") { audioCtx.resume().catch(function () {}); }
    return audioCtx;
  }
  document.addEventListener("click", function () { if (audioCtx) { audioCtx.resume().catch(function () {}); } }, true);
  function meter(stream) {
    const ctx = context();
    analyser = ctx.createAnalyser(); analyser.fftSize = 512;
    samples = new Float32Array(analyser.fftSize);
    ctx.createMediaStreamSource(stream).connect(analyser);
  }
  setInterval(function () {  // the level: RMS of the microphone, 0..1 (zero while muted)
    if (!analyser) { return; }
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (let i = 0; i < samples.length; i++) { sum += samples[i] * samples[i]; }
    const level = muted ? 0 : Math.min(1, Math.sqrt(sum / samples.length) * 4);
    levelEl.value = level;
    box.dataset.level = level.toFixed(3);
  }, 150);

  // --- SIP --------------------------------------------------------------------------------------------------
  // JsSIP says "registered" once, at the first 2xx; a refresh that succeeds or fails later is not an event. So the
  // page reads every 2xx to REGISTER itself, through a wrapper around JsSIP's WebSocket socket (JsSIP's documented
  // Socket interface: connect, disconnect, send, ondata...): each one moves the registration's end.
  function watchedSocket(url, mine) {
    const inner = new JsSIP.WebSocketInterface(url);
    let handler = null;
    Object.defineProperty(inner, "ondata", {
      configurable: true,
      get: function () { return function (data) { if (mine === generation) { watch(data); } if (handler) { handler(data); } }; },
      set: function (fn) { handler = fn; }
    });
    return inner;
  }
  function watch(data) {
    if (typeof data !== "string" || !/^SIP\/2\.0 2\d\d/.test(data)) { return; }
    const head = data.split("\r\n\r\n")[0];
    if (!/^CSeq:\s*\d+\s+REGISTER\s*$/im.test(head)) { return; }
    const m = /^(?:Contact|m):.*;\s*expires=(\d+)/im.exec(head) || /^Expires:\s*(\d+)/im.exec(head);
    const expires = m ? Number(m[1]) : 60;
    if (!(expires > 0)) { return; }  // our own un-REGISTER
    lastExpiresMs = expires * 1000;
    registeredUntil = Date.now() + lastExpiresMs;
    probeOk = Date.now();
    if (reg !== "registered") { setReg("registered"); }
    else { report(false); }
  }

  function start() {
    const mine = ++generation;
    if (ua) { try { ua.stop(); } catch (e) { /* the old socket is gone anyway */ } }
    probing = false; probeOk = Date.now();
    const socket = watchedSocket(config.ws_url, mine);
    ua = new JsSIP.UA({sockets: [socket], uri: config.uri, authorization_user: config.user, realm: config.realm,
      ha1: config.ha1, register: true, register_expires: 60, session_timers: false, user_agent: "callcenter-softphone",
      connection_recovery_min_interval: 1, connection_recovery_max_interval: 8});
    const current = function () { return mine === generation; };
    ua.on("connecting", function () { if (current() && reg !== "lost") { setReg("connecting"); } });
    ua.on("connected", function () { if (current()) { probeOk = Date.now(); setReg("registering"); } });
    ua.on("disconnected", function () { if (current()) { setReg("lost"); } });
    ua.on("unregistered", function () { if (current() && reg === "registered") { setReg("unregistered"); } });
    ua.on("registrationFailed", function (e) {
      if (!current()) { return; }
      setReg(e && e.response && e.response.status_code >= 400 && e.response.status_code < 500 ? "failed" : "lost");
    });
    ua.on("newRTCSession", function (e) { if (current()) { incoming(e.session, e.originator); } });
    ua.start();
  }

  // the liveness probe: an OPTIONS to the registrar; no answer within PROBE_TIMEOUT_MS is a dead socket
  function probe() {
    if (!ua || !ua.isConnected()) { return; }
    const now = Date.now();
    if (probing) {
      if (now - probeSentAt > PROBE_TIMEOUT_MS) { probing = false; setReg("lost"); start(); }
      return;
    }
    if (now - probeOk < PROBE_EVERY_MS) { return; }
    probing = true; probeSentAt = now;
    const mine = generation;
    const target = "sip:" + config.uri.split("@")[1];
    const answered = function () { if (mine === generation) { probing = false; probeOk = Date.now(); } };
    try {
      ua.sendOptions(target, null, {eventHandlers: {succeeded: answered, failed: function (ev) {
        // any answer (even an error response) proves the socket; a timeout or a transport error does not
        if (ev && ev.originator === "remote") { answered(); }
      }}});
    } catch (e) { probing = false; }
  }

  function tick() {
    if (!ua) { return; }
    const now = Date.now();
    if (reg === "registered" && registeredUntil <= now) { setReg("unregistered"); ua.register(); }
    else if (reg === "registered" && registeredUntil - now < Math.min(REFRESH_MARGIN_MS, lastExpiresMs / 3) && !tick.refreshing) {
      tick.refreshing = true;  // JsSIP's own refresh timer was throttled or lost: renew now
      ua.register();
      setTimeout(function () { tick.refreshing = false; }, 5000);
    }
    else if ((reg === "unregistered" || reg === "failed") && ua.isConnected() && now - (tick.retried || 0) > 30000) {
      tick.retried = now; ua.register();
    }
    else if ((reg === "registering" || reg === "lost") && now - regSince > STUCK_MS) {
      regSince = now; start();  // JsSIP would wait for SIP's 32 s timeout, then not try again
    }
    probe();
    report(true);
  }

  // --- the agent leg ----------------------------------------------------------------------------------------
  function incoming(s, originator) {
    if (originator !== "remote") { return; }
    if (session && !session.isEnded()) { s.terminate({status_code: 486}); return; }
    session = s;
    setCall("ringing");
    s.on("peerconnection", function (ev) { attach(ev.peerconnection); });
    s.on("confirmed", function () { setCall("active"); });
    s.on("ended", function () { if (session === s) { session = null; setCall("idle"); } });
    s.on("failed", function () { if (session === s) { session = null; setCall("idle"); } });
    const answer = function () {  // the engine's agent leg is answered at once, no click
      const opts = {mediaConstraints: {audio: true, video: false}, pcConfig: {iceServers: []}};
      if (localStream) { opts.mediaStream = localStream; }
      s.answer(opts);
      if (s.connection) { attach(s.connection); }
    };
    if (localStream) { answer(); } else { openMic(deviceSel.value).then(answer); }
  }
  function attach(pc) {
    if (attach.seen === pc) { return; }
    attach.seen = pc;
    pc.addEventListener("track", function (ev) {
      remoteAudio.srcObject = ev.streams && ev.streams[0] ? ev.streams[0] : new MediaStream([ev.track]);
      remoteAudio.play().catch(function () {});
    });
  }
  muteBtn.addEventListener("click", function () {
    if (!session) { return; }
    muted = !muted;
    if (muted) { session.mute({audio: true}); } else { session.unmute({audio: true}); }
    muteBtn.textContent = muted ? (T["sp.unmute"] || "unmute") : (T["sp.mute"] || "mute");
    box.dataset.muted = String(muted);
  });
  // hold, resume, transfer and conference are the call core's (the card's controls): the bar presses them
  function cardControl(kind) { return document.querySelector('#call-controls:not([disabled]) .ctl[data-kind="' + kind + '"]'); }
  function controlsEnabled() {
    box.querySelectorAll(".sp-ctl").forEach(function (b) { b.disabled = !cardControl(b.dataset.kind); });
  }
  box.querySelectorAll(".sp-ctl").forEach(function (b) {
    b.addEventListener("click", function () { const c = cardControl(b.dataset.kind); if (c) { c.click(); } });
  });
  new MutationObserver(controlsEnabled).observe(document.getElementById("card-slot"), {childList: true, subtree: true});

  // --- start ------------------------------------------------------------------------------------------------
  async function boot() {
    if (typeof JsSIP === "undefined") { setReg("nolib"); return; }
    const res = await fetch("/api/desk/phone", {credentials: "same-origin"});
    const data = res.ok ? await res.json() : {};
    if (!data.softphone) { setReg("unregistered"); return; }
    config = data.softphone;
    await openMic("");
    start();
    try {
      const worker = new Worker("/static/softphone-worker.js");
      worker.onmessage = tick;
      worker.postMessage({every_ms: 1000});
    } catch (e) {
      setInterval(tick, 1000);
    }
  }
  boot();
})();
