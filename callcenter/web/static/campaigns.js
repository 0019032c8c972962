// Campaign pages: the script defaults to the one written for the campaign's kind (until the supervisor picks one),
// and the segment form shows the segment's parameters and a live count of the clients it selects.
(function () {
  document.querySelectorAll('script[data-kind-scripts]').forEach(function (data) {
    var form = data.closest('form'), kind = form.querySelector('[data-script-default]'),
        script = form.querySelector('select[name=script_id]'), map = JSON.parse(data.textContent),
        touched = data.dataset.touched === 'yes';
    script.addEventListener('change', function () { touched = true; });
    function pick() {
      if (touched) return;
      var want = map[kind.value];
      for (var i = 0; i < script.options.length; i++) {
        if (script.options[i].dataset.kind === want) { script.selectedIndex = i; return; }
      }
    }
    kind.addEventListener('change', pick);
    pick();
  });

  var f = document.getElementById('segment-form');
  if (!f) return;
  var out = document.getElementById('segment-count'), timer = null;
  function show() {
    var seg = f.segment.value;
    f.querySelectorAll('label[data-for]').forEach(function (l) { l.hidden = l.dataset.for !== seg; });
  }
  function count() {
    clearTimeout(timer);
    timer = setTimeout(function () {
      var q = new URLSearchParams({segment: f.segment.value, months: f.months.value, days: f.days.value,
                                   code: f.code.value, within_days: f.within_days.value});
      fetch('/supervisor/segments/count?' + q, {credentials: 'same-origin'})
        .then(function (r) { return r.json(); })
        .then(function (d) {
          out.textContent = d.count === undefined ? ((d.error && d.error.message) || '—') : d.count;
        })
        .catch(function () { out.textContent = '—'; });
    }, 200);
  }
  f.addEventListener('input', function () { show(); count(); });
  show();
  count();
})();
