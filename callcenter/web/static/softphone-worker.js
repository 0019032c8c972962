// The softphone's heartbeat (issue 18): a dedicated worker's timer is not throttled like a hidden tab's timers
// (Chrome aligns a hidden page's chained timers to one wake-up a minute after five minutes), and each message it
// posts wakes the page. The page checks its registration, its socket and reports to the engine on every tick.
"use strict";
let timer = null;
self.onmessage = function (msg) {
  const every = Math.max(200, Number(msg.data && msg.data.every_ms) || 1000);
  if (timer) { clearInterval(timer); }
  timer = setInterval(function () { self.postMessage({tick: Date.now()}); }, every);
};
