/* waflog dashboard front end.
 * Plain ES2020, no modules, no external requests. Uses the global `Chart` (Chart.js 4 UMD).
 *
 * Report mode: a <script id="waflog-data" type="application/json"> holds one Snapshot.
 * Live mode: EventSource('api/events') with `snapshot` (replace) and `update` (merge) events.
 * Every string from the data is put in the DOM with textContent, never as markup.
 */
(function () {
  'use strict';

  var MAX_POINTS = 20000;
  var MAX_ANOMALIES = 5000;
  var LIST_LIMIT = 300;
  var HOUR = 3600e3;
  var DAY = 24 * HOUR;
  var RANGES = { '1h': HOUR, '6h': 6 * HOUR, '24h': DAY, '7d': 7 * DAY, all: Infinity };
  var TICK_STEPS = [
    60e3, 2 * 60e3, 5 * 60e3, 10 * 60e3, 15 * 60e3, 30 * 60e3,
    HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY, 14 * DAY, 30 * DAY
  ];
  var Y_AXIS_WIDTH = 54;
  var RIGHT_PAD = 36;

  // Dataset indices of a feature line chart.
  var DS_LOW = 0, DS_HIGH = 1, DS_EXPECTED = 2, DS_ACTUAL = 3, DS_ANOM = 4;

  var reportEl = document.getElementById('waflog-data');

  var state = {
    mode: reportEl ? 'report' : 'live',
    title: '',
    generatedAt: null,
    now: null,
    ackEnabled: false,
    kpis: null,
    detectors: [],            // in display order
    detByName: new Map(),
    anomalies: [],            // oldest first
    anomalyById: new Map(),
    anomalyByKey: new Map(),  // detector \0 entity \0 start -> anomaly
    counts: null,
    alerts: [],
    alertError: '',
    ackPending: new Set(),
    selectedId: null,
    range: reportEl ? 'all' : '6h',
    connected: false,
    entityChoice: new Map(),  // detector name -> { entity, user }
    filter: ''
  };

  var dirty = {
    header: true, kpis: true, alerts: true, counts: true, anomalies: true,
    explanation: true, structure: true, detectors: true
  };

  // Detector views: name -> { section, meta elements, charts }
  var views = new Map();
  // Charts scrolled far out of view are not redrawn on every update; they catch up when shown.
  var visibility = typeof IntersectionObserver === 'function' ? new IntersectionObserver(function (entries) {
    entries.forEach(function (e) {
      var v = e.target._view;
      if (!v) return;
      v.visible = e.isIntersecting;
      if (v.visible && v.stale) { dirty.detectors = true; schedule(); }
    });
  }, { rootMargin: '400px 0px' }) : null;
  var structureSig = '';
  var countsChart = null;

  // ---------------------------------------------------------------- helpers

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    if (attrs) {
      for (var k in attrs) {
        if (!Object.prototype.hasOwnProperty.call(attrs, k)) continue;
        var v = attrs[k];
        if (v == null || v === false) continue;
        if (k === 'text') e.textContent = String(v);
        else if (k === 'className') e.className = v;
        else e.setAttribute(k, v === true ? '' : String(v));
      }
    }
    if (children) {
      for (var i = 0; i < children.length; i++) {
        var c = children[i];
        if (c == null || c === false) continue;
        e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
      }
    }
    return e;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function pad2(n) { return n < 10 ? '0' + n : String(n); }

  function isNum(v) { return typeof v === 'number' && isFinite(v); }

  function fmtHM(ms) {
    var d = new Date(ms);
    return pad2(d.getUTCHours()) + ':' + pad2(d.getUTCMinutes());
  }
  function fmtMDHM(ms) {
    var d = new Date(ms);
    return pad2(d.getUTCMonth() + 1) + '-' + pad2(d.getUTCDate()) + ' ' + fmtHM(ms);
  }
  function fmtDate(ms) {
    var d = new Date(ms);
    return d.getUTCFullYear() + '-' + pad2(d.getUTCMonth() + 1) + '-' + pad2(d.getUTCDate());
  }
  function fmtFull(ms, seconds) {
    if (!isNum(ms)) return '—';
    var d = new Date(ms);
    var s = fmtDate(ms) + ' ' + fmtHM(ms);
    if (seconds) s += ':' + pad2(d.getUTCSeconds());
    return s + ' UTC';
  }
  function fmtRange(a, b) {
    if (!isNum(a)) return '—';
    if (!isNum(b)) return fmtFull(a, true);
    var sameDay = fmtDate(a) === fmtDate(b - 1);
    var secs = (a % 60000) !== 0 || (b % 60000) !== 0;
    var tb = fmtHM(b) + (secs ? ':' + pad2(new Date(b).getUTCSeconds()) : '');
    return fmtDate(a) + ' ' + fmtHM(a) + (secs ? ':' + pad2(new Date(a).getUTCSeconds()) : '') +
      ' – ' + (sameDay ? tb : fmtDate(b) + ' ' + tb) + ' UTC';
  }

  function fmtInt(v) {
    if (!isNum(v)) return '—';
    return Math.round(v).toLocaleString('en-US');
  }
  function fmtNum(v) {
    if (!isNum(v)) return '—';
    if (Number.isInteger(v)) return v.toLocaleString('en-US');
    var a = Math.abs(v);
    if (a >= 1000) return Math.round(v).toLocaleString('en-US');
    if (a >= 10) return v.toFixed(1);
    if (a >= 1) return v.toFixed(2);
    if (a === 0) return '0';
    if (a >= 0.01) return v.toFixed(3).replace(/0+$/, '').replace(/\.$/, '');
    return v.toPrecision(2);
  }
  function fmtCompact(v) {
    if (!isNum(v)) return '';
    var a = Math.abs(v);
    var trim = function (x) { return x.replace(/\.0$/, ''); };
    if (a >= 1e9) return trim((v / 1e9).toFixed(a >= 1e10 ? 0 : 1)) + 'G';
    if (a >= 1e6) return trim((v / 1e6).toFixed(a >= 1e7 ? 0 : 1)) + 'M';
    if (a >= 1e4) return trim((v / 1e3).toFixed(a >= 1e5 ? 0 : 1)) + 'k';
    return fmtNum(v);
  }
  function fmt2(v) { return isNum(v) ? v.toFixed(2) : '—'; }
  function fmtPct(v) { return isNum(v) ? Math.round(v * 100) + ' %' : '—'; }
  function fmtBand(lo, hi) {
    if (!isNum(lo) && !isNum(hi)) return '—';
    return fmtNum(lo) + ' – ' + fmtNum(hi);
  }

  function cssVar(name, fallback) {
    var v = getComputedStyle(document.documentElement).getPropertyValue(name);
    v = v ? v.trim() : '';
    return v || fallback;
  }

  function theme() {
    return {
      fg: cssVar('--fg', '#1b1f24'),
      muted: cssVar('--muted', '#4d5661'),
      grid: cssVar('--grid', 'rgba(0,0,0,0.1)'),
      panel: cssVar('--panel', '#ffffff'),
      border: cssVar('--border', '#d3d8de'),
      actual: cssVar('--c-actual', '#0072B2'),
      expected: cssVar('--c-expected', '#6b7280'),
      band: cssVar('--c-band', 'rgba(86,180,233,0.28)'),
      anomaly: cssVar('--c-anomaly', '#D55E00'),
      anomalyEdge: cssVar('--c-anomaly-edge', '#ffffff'),
      grade: cssVar('--c-grade', '#E69F00'),
      c24h: cssVar('--c-24h', '#0072B2'),
      c7d: cssVar('--c-7d', '#56B4E9'),
      font: cssVar('--font', 'system-ui, sans-serif')
    };
  }

  function anomalyKey(detector, entity, start) {
    return detector + '\u0000' + (entity == null ? '' : entity) + '\u0000' + start;
  }

  function lowerBound(series, t) {
    var lo = 0, hi = series.length;
    while (lo < hi) {
      var m = (lo + hi) >> 1;
      if (series[m].t < t) lo = m + 1; else hi = m;
    }
    return lo;
  }

  function validPoint(p) {
    return p && isNum(p.t) && Array.isArray(p.actual);
  }

  function addPoint(series, p) {
    var n = series.length;
    if (n === 0 || series[n - 1].t < p.t) { series.push(p); return; }
    if (series[n - 1].t === p.t) { series[n - 1] = p; return; }
    var i = lowerBound(series, p.t);
    if (i < n && series[i].t === p.t) series[i] = p; else series.splice(i, 0, p);
  }

  function capFront(arr, max) {
    if (arr.length > max) arr.splice(0, arr.length - max);
  }

  function normSeries(list) {
    var out = Array.isArray(list) ? list.filter(validPoint) : [];
    for (var i = 1; i < out.length; i++) {
      if (out[i].t < out[i - 1].t) { out.sort(function (a, b) { return a.t - b.t; }); break; }
    }
    capFront(out, MAX_POINTS);
    return out;
  }

  // ---------------------------------------------------------------- state

  function makeDetector(d) {
    var det = {
      name: String(d.name),
      features: Array.isArray(d.features) ? d.features.map(String) : [],
      category_field: d.category_field == null ? null : String(d.category_field),
      interval_ms: isNum(d.interval_ms) ? d.interval_ms : 60000,
      intervals: isNum(d.intervals) ? d.intervals : 0,
      warm_up: isNum(d.warm_up) ? d.warm_up : 0,
      confidence: isNum(d.confidence) ? d.confidence : null,
      series: normSeries(d.series),
      entities: new Map()
    };
    if (Array.isArray(d.entities)) {
      d.entities.forEach(function (e) {
        if (e && e.entity != null) det.entities.set(String(e.entity), normSeries(e.series));
      });
    }
    return det;
  }

  function applySnapshot(s) {
    if (!s || typeof s !== 'object') return;
    if (s.version !== 1 && window.console) console.warn('waflog dashboard: unexpected snapshot version', s.version);
    state.title = s.title || '';
    state.generatedAt = isNum(s.generated_at) ? s.generated_at : null;
    state.now = isNum(s.now) ? s.now : null;
    state.ackEnabled = !!s.ack_enabled && state.mode === 'live';
    state.kpis = s.kpis || null;
    state.detectors = (Array.isArray(s.detectors) ? s.detectors : []).map(makeDetector);
    state.detByName = new Map(state.detectors.map(function (d) { return [d.name, d]; }));
    state.anomalies = [];
    state.anomalyById = new Map();
    appendAnomalies(s.anomalies);
    state.counts = s.counts || null;
    state.alerts = Array.isArray(s.alerts) ? s.alerts.slice() : [];
    if (state.selectedId != null && !state.anomalyById.has(state.selectedId)) state.selectedId = null;
    for (var k in dirty) dirty[k] = true;
    schedule();
  }

  function appendAnomalies(list) {
    if (!Array.isArray(list) || list.length === 0) return;
    list.forEach(function (a) {
      if (!a || a.id == null) return;
      a.id = String(a.id);
      if (state.anomalyById.has(a.id)) {
        var i = state.anomalies.findIndex(function (x) { return x.id === a.id; });
        if (i >= 0) state.anomalies[i] = a;
        if (a.id === state.selectedId) dirty.explanation = true;
      } else {
        state.anomalies.push(a);
      }
      state.anomalyById.set(a.id, a);
    });
    // keep oldest first even if the server sent out of order
    for (var j = 1; j < state.anomalies.length; j++) {
      if (state.anomalies[j].start < state.anomalies[j - 1].start) {
        state.anomalies.sort(function (x, y) { return x.start - y.start; });
        break;
      }
    }
    if (state.anomalies.length > MAX_ANOMALIES) {
      var dropped = state.anomalies.splice(0, state.anomalies.length - MAX_ANOMALIES);
      dropped.forEach(function (a) { state.anomalyById.delete(a.id); });
      if (state.selectedId != null && !state.anomalyById.has(state.selectedId)) {
        state.selectedId = null;
        dirty.explanation = true;
      }
    }
    rebuildAnomalyIndex();
    dirty.anomalies = true;
    dirty.detectors = true;
  }

  function rebuildAnomalyIndex() {
    var m = new Map();
    state.anomalies.forEach(function (a) { m.set(anomalyKey(a.detector, a.entity, a.start), a); });
    state.anomalyByKey = m;
  }

  function applyUpdate(u) {
    if (!u || typeof u !== 'object') return;
    if ('now' in u) state.now = isNum(u.now) ? u.now : state.now;
    if (u.kpis) { state.kpis = u.kpis; dirty.kpis = true; dirty.header = true; }
    if (Array.isArray(u.detectors)) {
      u.detectors.forEach(function (p) {
        var d = p && state.detByName.get(p.name);
        if (!d) return;
        if (isNum(p.intervals)) d.intervals = p.intervals;
        if (isNum(p.confidence)) d.confidence = p.confidence;
        // Entities the server no longer charts are dropped here too, so the page
        // matches what a reload would show.
        if (d.category_field != null && Array.isArray(p.entities)) {
          var keep = new Set(p.entities.map(String));
          Array.from(d.entities.keys()).forEach(function (e) {
            if (!keep.has(e)) d.entities.delete(e);
          });
        }
      });
      dirty.kpis = true;
    }
    if (Array.isArray(u.points) && u.points.length) {
      var touched = new Set();
      u.points.forEach(function (x) {
        if (!x || !validPoint(x.point)) return;
        var d = state.detByName.get(x.detector);
        if (!d) return;
        var series;
        if (x.entity == null) {
          series = d.series;
        } else {
          var ent = String(x.entity);
          series = d.entities.get(ent);
          if (!series) { series = []; d.entities.set(ent, series); }
        }
        addPoint(series, x.point);
        touched.add(series);
      });
      touched.forEach(function (s) { capFront(s, MAX_POINTS); });
    }
    appendAnomalies(u.anomalies);
    if (u.counts) { state.counts = u.counts; dirty.counts = true; }
    if (Array.isArray(u.alerts)) { state.alerts = u.alerts.slice(); dirty.alerts = true; }
    dirty.header = true;
    dirty.detectors = true;
    schedule();
  }

  // ---------------------------------------------------------------- scheduling

  var rafId = 0, timerId = 0;

  function schedule() {
    if (rafId || timerId) return;
    // A hidden page renders once it is shown again (see the visibilitychange listener).
    if (document.hidden) return;
    rafId = requestAnimationFrame(flush);
    // Fallback when frames are not produced (background tab): still render within ~0.5 s.
    timerId = setTimeout(flush, 500);
  }

  function flush() {
    if (rafId) cancelAnimationFrame(rafId);
    if (timerId) clearTimeout(timerId);
    rafId = 0; timerId = 0;
    render();
  }

  function guarded(fn) {
    try { fn(); } catch (e) { if (window.console) console.error('waflog dashboard:', e); }
  }

  function render() {
    var d = Object.assign({}, dirty);
    for (var k in dirty) dirty[k] = false;
    if (d.header) guarded(renderHeader);
    if (d.kpis) guarded(renderKpis);
    if (d.alerts) guarded(renderAlerts);
    if (d.counts) guarded(renderCounts);
    if (d.anomalies) guarded(renderAnomalyList);
    if (d.explanation) guarded(renderExplanation);
    if (d.structure) guarded(buildDetectorViews);
    if (d.detectors || d.structure) guarded(renderDetectors);
  }

  // ---------------------------------------------------------------- header

  function statusText() {
    if (state.mode === 'report') return 'report';
    if (!state.connected) return 'reconnecting';
    if (state.kpis && state.kpis.input_done) return 'input ended';
    return 'live';
  }

  function renderStatus() {
    var s = statusText();
    var b = $('status');
    if (b.textContent !== s) b.textContent = s;
    b.setAttribute('data-status', s === 'input ended' ? 'ended' : s);
  }

  function renderHeader() {
    renderStatus();
    var t = $('title');
    var title = state.title || 'waflog dashboard';
    if (t.textContent !== title) t.textContent = title;
    var now = $('now');
    if (isNum(state.now)) {
      now.textContent = fmtFull(state.now, true);
      now.setAttribute('datetime', new Date(state.now).toISOString());
    } else {
      now.textContent = '—';
      now.removeAttribute('datetime');
    }
    var g = $('generated');
    if (state.mode === 'report' && isNum(state.generatedAt)) {
      g.textContent = 'report generated ' + fmtFull(state.generatedAt, true);
      g.hidden = false;
    } else {
      g.hidden = true;
    }
  }

  // ---------------------------------------------------------------- KPIs

  function setKpi(name, value, sub, level) {
    var tile = document.querySelector('#kpis [data-kpi="' + name + '"]');
    if (!tile) return;
    var v = tile.querySelector('.kpi-value');
    if (v.textContent !== value) v.textContent = value;
    var s = tile.querySelector('.kpi-sub');
    if (s) s.textContent = sub || '';
    if (level) tile.setAttribute('data-level', level); else tile.removeAttribute('data-level');
  }

  function renderKpis() {
    var k = state.kpis || {};
    var eps = k.events_per_second;
    setKpi('events_per_second', isNum(eps) ? (eps < 100 ? eps.toFixed(1) : fmtInt(eps)) : '—');
    setKpi('events', fmtInt(k.events));
    setKpi('dead_lettered', fmtInt(k.dead_lettered), '', k.dead_lettered > 0 ? 'warn' : null);
    setKpi('late', fmtInt(k.late), '', k.late > 0 ? 'warn' : null);
    setKpi('active_alerts', fmtInt(k.active_alerts), '', k.active_alerts > 0 ? 'bad' : (isNum(k.active_alerts) ? 'ok' : null));
    setKpi('anomalies', fmtInt(k.anomalies), isNum(k.results) ? 'in ' + fmtInt(k.results) + ' results' : '');
    var dets = state.detectors;
    if (dets.length === 0) {
      setKpi('warm_up', '—', '');
    } else {
      var warm = dets.filter(function (d) { return d.intervals >= d.warm_up; }).length;
      var confs = dets.map(function (d) { return d.confidence; }).filter(isNum);
      var minConf = confs.length ? Math.min.apply(null, confs) : null;
      setKpi('warm_up', warm + ' / ' + dets.length,
        'lowest confidence ' + fmt2(minConf), warm < dets.length ? 'warn' : 'ok');
    }
  }

  // ---------------------------------------------------------------- alerts

  function setAlertError(msg) {
    state.alertError = msg || '';
    var e = $('alert-error');
    e.textContent = state.alertError;
    e.hidden = !state.alertError;
  }

  var alertRows = new Map();

  function buildAlertRow(a) {
    var tr = el('tr');
    tr.setAttribute('data-alert-id', a.id);
    var sev = el('span', { className: 'sev' });
    var mon = el('span', { className: 'mon' });
    var det = el('span', { className: 'sub' });
    var stateSpan = el('span', { className: 'alert-state state-pill' });
    var btn = el('button', { type: 'button', className: 'ack', text: 'Acknowledge' });
    btn.addEventListener('click', function () { ackAlert(tr.getAttribute('data-alert-id'), btn, null); });
    // Feedback: the detector learns the level as normal and the alert completes.
    var normal = el('button', { type: 'button', className: 'ack not-anomaly', text: 'Not an anomaly' });
    normal.addEventListener('click', function () { ackAlert(tr.getAttribute('data-alert-id'), normal, 'not_anomaly'); });
    tr.appendChild(el('td', null, [sev]));
    tr.appendChild(el('td', { className: 'mon-cell' }, [mon, det]));
    tr.appendChild(el('td', { className: 'mono ent' }));
    var stateTd = el('td', null, [stateSpan]);
    tr.appendChild(stateTd);
    tr.appendChild(el('td', { className: 'when' }));
    tr.appendChild(el('td', { className: 'summary' }));
    tr.appendChild(el('td', { className: 'ack-col' }, [btn, normal]));
    tr._parts = { sev: sev, mon: mon, det: det, state: stateSpan, btn: btn, normal: normal };
    return tr;
  }

  function updateAlertRow(tr, a) {
    var p = tr._parts;
    var cells = tr.children;
    p.sev.textContent = isNum(a.severity) ? String(a.severity) : '—';
    p.sev.setAttribute('data-sev', String(a.severity));
    p.sev.setAttribute('title', 'severity ' + a.severity + ' (1 highest, 5 lowest)');
    p.mon.textContent = a.monitor || '—';
    p.det.textContent = a.detector || '';
    p.mon.setAttribute('title', a.trigger ? 'trigger ' + a.trigger : '');
    cells[2].textContent = a.entity == null ? '—' : String(a.entity);
    p.state.textContent = String(a.state) + (a.label === 'not_anomaly' ? ' · not an anomaly' : '') +
      (a.merged_into != null ? ' · in ' + String(a.merged_into) : '');
    tr.setAttribute('data-state', String(a.state));
    var when = cells[4];
    clear(when);
    when.appendChild(document.createTextNode(isNum(a.start_time) ? fmtMDHM(a.start_time) : '—'));
    var extra = [];
    if (isNum(a.last_fired)) extra.push('last ' + fmtMDHM(a.last_fired));
    if (isNum(a.acknowledged_time)) extra.push('ack ' + fmtMDHM(a.acknowledged_time));
    if (isNum(a.end_time)) extra.push('end ' + fmtMDHM(a.end_time));
    if (extra.length) {
      var sub = el('span', { className: 'sub' });
      extra.forEach(function (x, i) {
        if (i) sub.appendChild(document.createTextNode(' · '));
        sub.appendChild(el('span', { className: 'nowrap', text: x }));
      });
      when.appendChild(sub);
    }
    when.setAttribute('title', fmtFull(a.start_time, true));
    cells[5].textContent = a.summary || '—';
    var showAck = state.mode === 'live' && state.ackEnabled;
    p.btn.hidden = !showAck;
    p.btn.disabled = !showAck || a.state !== 'ACTIVE' || state.ackPending.has(a.id);
    p.btn.setAttribute('aria-label', 'Acknowledge ' + (a.monitor || 'alert') + (a.entity != null ? ' for ' + a.entity : ''));
    p.normal.hidden = !showAck;
    p.normal.disabled = !showAck || (a.state !== 'ACTIVE' && a.state !== 'ACKNOWLEDGED') || state.ackPending.has(a.id);
    p.normal.setAttribute('aria-label', 'Mark ' + (a.monitor || 'alert') + (a.entity != null ? ' for ' + a.entity : '') + ' as not an anomaly');
  }

  function renderAlerts() {
    var showAck = state.mode === 'live' && state.ackEnabled;
    document.body.classList.toggle('no-ack', !showAck);
    var body = $('alerts-body');
    var list = state.alerts.filter(function (a) { return a && a.id != null; });
    list.forEach(function (a) { a.id = String(a.id); });
    reconcile(body, list, function (a) { return a.id; }, alertRows, buildAlertRow, updateAlertRow);
    $('alerts-empty').hidden = list.length > 0;
    setAlertError(state.alertError);
  }

  function ackAlert(id, btn, label) {
    if (!id || state.ackPending.has(id)) return;
    state.ackPending.add(id);
    btn.disabled = true;
    setAlertError('');
    fetch('api/alerts/' + encodeURIComponent(id) + '/ack', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: label ? JSON.stringify({ label: label }) : '{}'
    }).then(function (res) {
      return res.text().then(function (text) {
        if (!res.ok) {
          throw new Error(text && text.trim() ? text.trim() : ('HTTP ' + res.status + ' ' + res.statusText));
        }
        var updated = null;
        try { updated = JSON.parse(text); } catch (e) { updated = null; }
        var idx = state.alerts.findIndex(function (a) { return a && String(a.id) === id; });
        if (updated && typeof updated === 'object' && updated.id != null) {
          if (idx >= 0) state.alerts[idx] = updated; else state.alerts.unshift(updated);
        } else if (idx >= 0) {
          state.alerts[idx] = Object.assign({}, state.alerts[idx], { state: 'ACKNOWLEDGED', acknowledged_time: Date.now() });
        }
      });
    }).catch(function (e) {
      setAlertError('Could not acknowledge: ' + (e && e.message ? e.message : String(e)));
    }).then(function () {
      state.ackPending.delete(id);
      guarded(renderAlerts);
    });
  }

  // Keyed DOM list update: reuses existing nodes so focus and scroll survive.
  function reconcile(parent, items, keyOf, cache, create, update) {
    var keep = new Set();
    var ref = parent.firstChild;
    for (var i = 0; i < items.length; i++) {
      var it = items[i];
      var key = keyOf(it);
      if (keep.has(key)) continue;
      keep.add(key);
      var node = cache.get(key);
      if (!node) { node = create(it); cache.set(key, node); }
      update(node, it);
      if (node === ref) ref = ref.nextSibling;
      else parent.insertBefore(node, ref);
    }
    // Every child before `ref` is a placed node, in order; everything from `ref` on is stale.
    while (ref) { var next = ref.nextSibling; parent.removeChild(ref); ref = next; }
    cache.forEach(function (node, key) { if (!keep.has(key)) cache.delete(key); });
  }

  // ---------------------------------------------------------------- counts

  function windowRows(name) {
    var ws = state.counts && Array.isArray(state.counts.windows) ? state.counts.windows : [];
    for (var i = 0; i < ws.length; i++) if (ws[i] && ws[i].name === name) return ws[i];
    return null;
  }

  function renderCounts() {
    var w24 = windowRows('24h'), w7 = windowRows('7d');
    var names = state.detectors.map(function (d) { return d.name; });
    [w24, w7].forEach(function (w) {
      if (w && Array.isArray(w.by_detector)) w.by_detector.forEach(function (r) {
        if (r && names.indexOf(r.detector) < 0) names.push(String(r.detector));
      });
    });
    function countsFor(w) {
      var m = new Map();
      if (w && Array.isArray(w.by_detector)) w.by_detector.forEach(function (r) { if (r) m.set(r.detector, r.count); });
      return names.map(function (n) { return m.has(n) ? m.get(n) : 0; });
    }
    var box = document.querySelector('.counts-box');
    box.style.height = Math.max(120, 36 + names.length * 30) + 'px';
    var th = theme();
    var data = {
      labels: names,
      datasets: [
        { label: 'last 24h', data: countsFor(w24), backgroundColor: th.c24h, borderWidth: 0, barPercentage: 0.9, categoryPercentage: 0.8 },
        { label: 'last 7d', data: countsFor(w7), backgroundColor: th.c7d, borderWidth: 0, barPercentage: 0.9, categoryPercentage: 0.8 }
      ]
    };
    if (!countsChart) {
      countsChart = new Chart($('chart-by-detector'), {
        type: 'bar',
        data: data,
        options: {
          indexAxis: 'y',
          animation: false,
          responsive: true,
          maintainAspectRatio: false,
          plugins: {
            legend: { position: 'top', align: 'end', labels: { boxWidth: 12, boxHeight: 12 } },
            tooltip: { mode: 'index', intersect: false }
          },
          scales: {
            x: { beginAtZero: true, ticks: { precision: 0 } },
            y: {
              ticks: {
                autoSkip: false,
                callback: function (v) {
                  var s = this.getLabelForValue(v);
                  return s.length > 26 ? s.slice(0, 25) + '…' : s;
                }
              }
            }
          }
        }
      });
      themeCountsChart();
    } else {
      countsChart.data.labels = data.labels;
      countsChart.data.datasets[0].data = data.datasets[0].data;
      countsChart.data.datasets[1].data = data.datasets[1].data;
      countsChart.update('none');
    }
    countsChart.canvas.setAttribute('aria-label', 'Anomaly count by detector: ' + names.map(function (n, i) {
      return n + ' ' + data.datasets[0].data[i] + ' in 24h, ' + data.datasets[1].data[i] + ' in 7d';
    }).join('; '));
    renderByEntity(w24, w7);
  }

  function themeCountsChart() {
    if (!countsChart) return;
    var th = theme();
    var o = countsChart.options;
    o.color = th.fg;
    o.font = { family: th.font, size: 11 };
    o.plugins.legend.labels.color = th.fg;
    ['x', 'y'].forEach(function (ax) {
      o.scales[ax].ticks.color = th.fg;
      o.scales[ax].grid = { color: th.grid };
      o.scales[ax].border = { color: th.border };
    });
    countsChart.data.datasets[0].backgroundColor = th.c24h;
    countsChart.data.datasets[1].backgroundColor = th.c7d;
    countsChart.update('none');
  }

  function renderByEntity(w24, w7) {
    var rows = new Map();
    function add(w, col) {
      if (!w || !Array.isArray(w.by_entity)) return;
      w.by_entity.forEach(function (r) {
        if (!r) return;
        var key = r.detector + '\u0000' + r.entity;
        var row = rows.get(key);
        if (!row) { row = { detector: String(r.detector), entity: String(r.entity), c24: 0, c7: 0 }; rows.set(key, row); }
        row[col] = r.count;
      });
    }
    add(w24, 'c24');
    add(w7, 'c7');
    var list = Array.from(rows.values()).sort(function (a, b) { return (b.c24 - a.c24) || (b.c7 - a.c7); }).slice(0, 10);
    var table = $('by-entity');
    var tbody = table.querySelector('tbody');
    clear(tbody);
    list.forEach(function (r) {
      tbody.appendChild(el('tr', null, [
        el('td', { text: r.detector }),
        el('th', { scope: 'row', className: 'mono', text: r.entity }),
        el('td', { className: 'num', text: fmtInt(r.c24) }),
        el('td', { className: 'num', text: fmtInt(r.c7) })
      ]));
    });
    table.hidden = list.length === 0;
  }

  // ---------------------------------------------------------------- anomaly list

  var anomalyItems = new Map();

  function topFeature(a) {
    var fs = Array.isArray(a.features) ? a.features : [];
    var best = null;
    fs.forEach(function (f) {
      if (!f) return;
      if (!best || (isNum(f.attribution) ? f.attribution : -1) > (isNum(best.attribution) ? best.attribution : -1)) best = f;
    });
    return best;
  }

  function buildAnomalyItem(a) {
    var li = el('li');
    var b = el('button', { type: 'button', className: 'anomaly' });
    b.setAttribute('data-id', a.id);
    b.addEventListener('click', function () { selectAnomaly(b.getAttribute('data-id'), 'list'); });
    var time = el('span', { className: 'a-time' });
    var det = el('span', { className: 'a-det' });
    var grade = el('span', { className: 'a-grade' });
    var feat = el('span', { className: 'a-feat' });
    b.appendChild(time); b.appendChild(det); b.appendChild(grade); b.appendChild(feat);
    li.appendChild(b);
    li._parts = { b: b, time: time, det: det, grade: grade, feat: feat, sig: '' };
    return li;
  }

  function updateAnomalyItem(li, a) {
    var p = li._parts;
    p.b.setAttribute('aria-pressed', a.id === state.selectedId ? 'true' : 'false');
    var sig = a.start + '|' + a.grade + '|' + a.detector + '|' + a.entity + '|' + (a.features ? a.features.length : 0);
    if (p.sig === sig) return;
    p.sig = sig;
    p.b.setAttribute('data-detector', a.detector);
    p.time.textContent = isNum(a.start) ? fmtMDHM(a.start) : '—';
    p.time.setAttribute('title', fmtRange(a.start, a.end));
    p.det.textContent = String(a.detector);
    p.grade.textContent = 'grade ' + fmt2(a.grade);
    clear(p.feat);
    if (a.entity != null) p.feat.appendChild(el('span', { className: 'a-ent', text: String(a.entity) }));
    var f = topFeature(a);
    if (f) {
      p.feat.appendChild(el('b', { text: String(f.name) }));
      p.feat.appendChild(document.createTextNode(' ' + fmtNum(f.actual) + ' vs ' + fmtNum(f.expected) + ' expected'));
    } else {
      p.feat.appendChild(document.createTextNode('no feature details'));
    }
  }

  function renderAnomalyFilter() {
    var sel = $('anomaly-filter');
    var names = state.detectors.map(function (d) { return d.name; });
    var have = Array.from(sel.options).slice(1).map(function (o) { return o.value; });
    if (have.join('\u0000') !== names.join('\u0000')) {
      while (sel.options.length > 1) sel.remove(1);
      names.forEach(function (n) { sel.appendChild(el('option', { value: n, text: n })); });
    }
    if (state.filter && names.indexOf(state.filter) < 0) state.filter = '';
    sel.value = state.filter;
  }

  function renderAnomalyList() {
    renderAnomalyFilter();
    var list = [];
    var total = 0;
    for (var i = state.anomalies.length - 1; i >= 0; i--) {
      var a = state.anomalies[i];
      if (state.filter && a.detector !== state.filter) continue;
      total++;
      if (list.length < LIST_LIMIT) list.push(a);
    }
    reconcile($('anomalies'), list, function (a) { return a.id; }, anomalyItems, buildAnomalyItem, updateAnomalyItem);
    $('anomalies-empty').hidden = total > 0;
    var note = $('anomalies-note');
    if (total > list.length) {
      note.textContent = 'Showing the newest ' + list.length + ' of ' + fmtInt(total) + '.';
      note.hidden = false;
    } else {
      note.hidden = true;
    }
  }

  // ---------------------------------------------------------------- selection + explanation

  function selectAnomaly(id, from) {
    if (id == null || !state.anomalyById.has(id)) return;
    state.selectedId = id;
    var a = state.anomalyById.get(id);
    var det = state.detByName.get(a.detector);
    if (det && det.category_field != null && a.entity != null && det.entities.has(String(a.entity))) {
      state.entityChoice.set(det.name, { entity: String(a.entity), user: true });
    }
    dirty.anomalies = true;
    dirty.explanation = true;
    dirty.detectors = true;
    render();
    if (from === 'chart') {
      var ex = $('explanation');
      var r = ex.getBoundingClientRect();
      if (r.bottom < 0 || r.top > window.innerHeight) ex.scrollIntoView({ block: 'nearest' });
      var item = document.querySelector('#anomalies button.anomaly[aria-pressed="true"]');
      if (item) {
        var list = $('anomalies');
        var ir = item.getBoundingClientRect(), lr = list.getBoundingClientRect();
        if (ir.top < lr.top || ir.bottom > lr.bottom) list.scrollTop += ir.top - lr.top - 4;
      }
    }
  }

  function simpleTable(className, caption, headers, rows) {
    var t = el('table', { className: 'compact ' + (className || '') });
    if (caption) t.appendChild(el('caption', { text: caption }));
    var hr = el('tr');
    headers.forEach(function (h) {
      hr.appendChild(el('th', { scope: 'col', className: h.num ? 'num' : null, text: h.label }));
    });
    t.appendChild(el('thead', null, [hr]));
    var tb = el('tbody');
    rows.forEach(function (r) { tb.appendChild(r); });
    t.appendChild(tb);
    return t;
  }

  function fact(label, value, cls) {
    return el('div', null, [el('dt', { text: label }), el('dd', { className: cls || null, text: value })]);
  }

  function renderExplanation() {
    var body = $('explanation-body');
    var a = state.selectedId != null ? state.anomalyById.get(state.selectedId) : null;
    // Do not rebuild (and re-announce) an unchanged explanation.
    var sig = a ? JSON.stringify(a) : '';
    if (body._sig === sig && body.firstChild) return;
    body._sig = sig;
    clear(body);
    if (!a) {
      body.appendChild(el('p', { className: 'placeholder', text: 'Select an anomaly to see why it was flagged.' }));
      return;
    }
    var det = state.detByName.get(a.detector);
    var head = el('div', { className: 'explain-head' }, [
      el('h3', { text: String(a.detector) + (a.entity != null ? ' · ' + a.entity : '') }),
      el('span', { className: 'note', text: fmtRange(a.start, a.end) })
    ]);
    body.appendChild(head);

    var f0 = topFeature(a);
    if (f0) {
      var sentence = el('p', { className: 'explain-sentence' });
      sentence.appendChild(el('b', { className: 'mono', text: String(f0.name) }));
      var txt = ' was ' + fmtNum(f0.actual) + ' (actual) where ' + fmtNum(f0.expected) + ' was expected';
      if (isNum(f0.low) || isNum(f0.high)) txt += ' (band ' + fmtBand(f0.low, f0.high) + ')';
      txt += '.';
      sentence.appendChild(document.createTextNode(txt));
      body.appendChild(sentence);
    }

    var dl = el('dl', { className: 'facts' });
    dl.appendChild(fact('detector', String(a.detector)));
    dl.appendChild(fact(det && det.category_field ? 'entity (' + det.category_field + ')' : 'entity', a.entity == null ? '—' : String(a.entity), 'mono'));
    dl.appendChild(fact('interval', fmtRange(a.start, a.end)));
    dl.appendChild(fact('grade', fmt2(a.grade)));
    dl.appendChild(fact('confidence', fmt2(a.confidence)));
    if (isNum(a.records)) dl.appendChild(fact('records in interval', fmtInt(a.records)));
    body.appendChild(dl);

    var feats = Array.isArray(a.features) ? a.features.filter(Boolean) : [];
    var frows = feats.map(function (f) {
      var attr = isNum(f.attribution) ? Math.max(0, Math.min(1, f.attribution)) : null;
      var bar = el('span', { className: 'attr-bar', 'aria-hidden': 'true' }, [el('span')]);
      bar.firstChild.style.width = (attr == null ? 0 : attr * 100) + '%';
      return el('tr', null, [
        el('th', { scope: 'row', className: 'mono', text: String(f.name) }),
        el('td', { className: 'num', text: fmtNum(f.actual) }),
        el('td', { className: 'num', text: fmtNum(f.expected) }),
        el('td', { className: 'num', text: fmtBand(f.low, f.high) }),
        el('td', { className: 'num' }, [el('span', { className: 'attr' }, [bar, el('span', { text: fmtPct(attr) })])])
      ]);
    });
    body.appendChild(el('div', { className: 'table-wrap' }, [simpleTable('features', 'Features', [
      { label: 'feature' }, { label: 'actual', num: true }, { label: 'expected', num: true },
      { label: 'band', num: true }, { label: 'attribution', num: true }
    ], frows)]));

    var contribs = Array.isArray(a.contributors) ? a.contributors.filter(function (c) { return c && Array.isArray(c.top) && c.top.length; }) : [];
    if (contribs.length) {
      var grid = el('div', { className: 'contrib-grid' });
      contribs.forEach(function (c) {
        var rows = c.top.map(function (t) {
          return el('tr', null, [
            el('th', { scope: 'row', className: 'mono', text: t.value == null ? '—' : String(t.value) }),
            el('td', { className: 'num', text: fmtInt(t.count) }),
            el('td', { className: 'num', text: fmtNum(t.expected) })
          ]);
        });
        grid.appendChild(el('div', { className: 'table-wrap' }, [simpleTable('contrib', 'Top ' + c.field,
          [{ label: 'value' }, { label: 'count', num: true }, { label: 'expected', num: true }], rows)]));
      });
      body.appendChild(grid);
    }

    var exs = Array.isArray(a.examples) ? a.examples.filter(Boolean) : [];
    if (exs.length) {
      var erows = exs.map(function (x) {
        return el('tr', null, [
          el('td', { className: 'mono nowrap', text: x.clientIp == null ? '—' : String(x.clientIp) }),
          el('td', { className: 'mono uri', text: x.uri == null ? '—' : String(x.uri) }),
          el('td', { text: x.country == null ? '—' : String(x.country) }),
          el('td', { text: x.action == null ? '—' : String(x.action) })
        ]);
      });
      body.appendChild(el('div', { className: 'table-wrap' }, [simpleTable('examples', 'Example records',
        [{ label: 'clientIp' }, { label: 'uri' }, { label: 'country' }, { label: 'action' }], erows)]));
    }

    var show = el('button', { type: 'button', className: 'linkish', text: 'Show in chart' });
    show.addEventListener('click', function () { showInChart(a); });
    body.appendChild(el('p', { className: 'explain-actions' }, [show]));
  }

  function showInChart(a) {
    var b = windowBounds();
    if (b && isNum(a.start) && a.start < b.start) {
      var need = b.end - a.start;
      var order = ['1h', '6h', '24h', '7d', 'all'];
      for (var i = 0; i < order.length; i++) {
        if (RANGES[order[i]] >= need) { setRange(order[i]); break; }
      }
    }
    render();
    var sec = views.get(a.detector);
    if (sec) {
      sec.section.scrollIntoView({ block: 'start' });
      sec.section.focus({ preventScroll: true });
    }
  }

  // ---------------------------------------------------------------- detector charts

  function sigOf(dets) {
    return dets.map(function (d) {
      return d.name + '\u0001' + d.features.join('\u0002') + '\u0001' + (d.category_field || '');
    }).join('\u0003');
  }

  function destroyViews() {
    if (visibility) visibility.disconnect();
    views.forEach(function (v) {
      v.lineCharts.forEach(function (c) { c.destroy(); });
      if (v.gradeChart) v.gradeChart.destroy();
    });
    views.clear();
    clear($('detectors'));
  }

  function buildDetectorViews() {
    var sig = sigOf(state.detectors);
    $('detectors-empty').hidden = state.detectors.length > 0;
    if (sig === structureSig && views.size === state.detectors.length) return;
    structureSig = sig;
    destroyViews();
    var container = $('detectors');
    state.detectors.forEach(function (d, idx) {
      var hid = 'det-h-' + idx;
      var section = el('section', { className: 'detector', 'aria-labelledby': hid, tabindex: '-1' });
      section.setAttribute('data-detector', d.name);
      var header = el('div', { className: 'det-header' });
      header.appendChild(el('h3', { id: hid, text: d.name }));
      var meta = el('p', { className: 'det-meta' });
      var featSpan = el('span', { className: 'det-features', text: d.features.join(', ') || '—' });
      var intervals = el('span', { className: 'det-intervals' });
      var conf = el('span', { className: 'det-conf' });
      var warm = el('span', { className: 'warm' });
      meta.appendChild(featSpan); meta.appendChild(intervals); meta.appendChild(conf); meta.appendChild(warm);
      if (d.category_field) meta.appendChild(el('span', { className: 'det-cat', text: 'per ' + d.category_field }));
      header.appendChild(meta);
      var select = null;
      if (d.category_field != null) {
        select = el('select', { 'aria-label': 'Entity shown in the ' + d.name + ' charts' });
        select.addEventListener('change', function () {
          state.entityChoice.set(d.name, { entity: select.value, user: true });
          dirty.detectors = true;
          schedule();
        });
        header.appendChild(el('label', { className: 'entity-select' }, [d.category_field + ' ', select]));
      }
      section.appendChild(header);
      var empty = el('p', { className: 'det-empty', hidden: true });
      section.appendChild(empty);

      var view = {
        name: d.name, section: section, intervals: intervals, conf: conf, warm: warm, select: select, empty: empty,
        lineCharts: [], gradeChart: null, entity: null, visible: true, stale: false
      };
      section._view = view;
      var th = theme();
      d.features.forEach(function (f, fi) {
        var canvas = el('canvas', { role: 'img', 'aria-label': d.name + ', ' + f + ': actual and expected over time, anomalies marked with triangles' });
        canvas.textContent = f + ': actual vs expected over time.';
        var box = el('div', { className: 'chart-box line-box' }, [canvas]);
        section.appendChild(el('div', { className: 'feat' }, [d.features.length > 1 ? el('h4', { text: f }) : null, box]));
        view.lineCharts.push(makeLineChart(canvas, view, fi, th));
      });
      var gcanvas = el('canvas', { role: 'img', 'aria-label': d.name + ': anomaly grade per interval, 0 to 1' });
      gcanvas.textContent = 'Anomaly grade over time.';
      section.appendChild(el('p', { className: 'grade-label', text: 'anomaly grade (0–1)' }));
      section.appendChild(el('div', { className: 'chart-box grade-box' }, [gcanvas]));
      view.gradeChart = makeGradeChart(gcanvas, view, th);
      container.appendChild(section);
      views.set(d.name, view);
      if (visibility) visibility.observe(section);
    });
  }

  function timeTicks(scale) {
    var min = scale.min, max = scale.max;
    if (!isNum(min) || !isNum(max) || max <= min) return;
    var span = max - min;
    var multi = span > DAY;
    var px = multi ? 92 : 58;
    var maxTicks = Math.max(2, Math.floor((scale.width || 400) / px));
    var step = TICK_STEPS[TICK_STEPS.length - 1];
    for (var i = 0; i < TICK_STEPS.length; i++) {
      if (span / TICK_STEPS[i] <= maxTicks) { step = TICK_STEPS[i]; break; }
    }
    var ticks = [];
    for (var t = Math.ceil(min / step) * step; t <= max; t += step) ticks.push({ value: t });
    scale.ticks = ticks;
  }

  function tickLabel(value) {
    var span = this.max - this.min;
    return span > DAY ? fmtMDHM(value) : fmtHM(value);
  }

  function xScale(showLabels) {
    return {
      type: 'linear',
      offset: false,
      grid: { offset: false, drawTicks: showLabels },
      ticks: { display: showLabels, maxRotation: 0, autoSkip: true, includeBounds: false, callback: tickLabel },
      afterBuildTicks: timeTicks
    };
  }

  function fixedYWidth(scale) { scale.width = Y_AXIS_WIDTH; }

  function makeLineChart(canvas, view, fi, th) {
    var base = { parsing: false, normalized: true, pointRadius: 0, pointHoverRadius: 0, spanGaps: false, data: [] };
    var chart = new Chart(canvas, {
      type: 'line',
      data: {
        datasets: [
          Object.assign({}, base, { label: 'band low', borderWidth: 0, fill: false, order: 5 }),
          Object.assign({}, base, { label: 'band high', borderWidth: 0, fill: '-1', order: 4 }),
          Object.assign({}, base, { label: 'expected', borderWidth: 1.5, borderDash: [6, 4], fill: false, order: 3 }),
          Object.assign({}, base, { label: 'actual', borderWidth: 1.6, fill: false, order: 2, pointHoverRadius: 3 }),
          Object.assign({}, base, {
            label: 'anomaly', showLine: false, fill: false, order: 1,
            pointStyle: 'triangle',
            pointRadius: function (ctx) { return ctx.raw && ctx.raw.sel ? 10 : 6.5; },
            pointHoverRadius: 9,
            pointBorderWidth: function (ctx) { return ctx.raw && ctx.raw.sel ? 2.5 : 1; }
          })
        ]
      },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        normalized: true,
        parsing: false,
        layout: { padding: { right: RIGHT_PAD, top: 8 } },
        interaction: { mode: 'index', intersect: false },
        plugins: {
          legend: { display: false },
          decimation: { enabled: false },
          tooltip: {
            mode: 'index', intersect: false,
            itemSort: function (a, b) { return tipRank(a.datasetIndex) - tipRank(b.datasetIndex); },
            filter: function (item) { return item.datasetIndex !== DS_HIGH; },
            callbacks: {
              title: function (items) { return items.length ? fmtFull(items[0].parsed.x) : ''; },
              label: function (item) {
                var i = item.datasetIndex;
                var ds = item.chart.data.datasets;
                if (i === DS_LOW) {
                  var hi = ds[DS_HIGH].data[item.dataIndex];
                  return 'band: ' + fmtBand(item.raw.y, hi ? hi.y : null);
                }
                if (i === DS_ANOM) return 'anomaly, grade ' + fmt2(item.raw.g);
                return item.dataset.label + ': ' + fmtNum(item.raw.y);
              }
            }
          }
        },
        scales: {
          x: xScale(false),
          y: { suggestedMin: 0, afterFit: fixedYWidth, ticks: { maxTicksLimit: 5, callback: function (v) { return fmtCompact(v); } } }
        },
        onClick: function (evt, els, chart) { chartClick(view, chart, evt, DS_ANOM); },
        onHover: function (evt, els, chart) { chartHover(chart, evt, DS_ANOM); }
      }
    });
    themeLineChart(chart, th);
    return chart;
  }

  function tipRank(i) {
    return i === DS_ACTUAL ? 0 : i === DS_EXPECTED ? 1 : i === DS_LOW ? 2 : i === DS_ANOM ? 3 : 4;
  }

  function makeGradeChart(canvas, view, th) {
    var chart = new Chart(canvas, {
      type: 'bar',
      data: {
        datasets: [{
          label: 'grade', parsing: false, normalized: true, data: [],
          barPercentage: 1, categoryPercentage: 1, borderWidth: 0, minBarLength: 0
        }]
      },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        parsing: false,
        normalized: true,
        layout: { padding: { right: RIGHT_PAD } },
        interaction: { mode: 'nearest', axis: 'x', intersect: false },
        plugins: {
          legend: { display: false },
          tooltip: {
            filter: function (item) { return item.raw && item.raw.y > 0; },
            callbacks: {
              title: function (items) { return items.length ? fmtFull(items[0].raw.t) : ''; },
              label: function (item) { return 'grade ' + fmt2(item.raw.y); }
            }
          }
        },
        scales: {
          x: xScale(true),
          y: { min: 0, max: 1, afterFit: fixedYWidth, ticks: { stepSize: 0.5, callback: function (v) { return v === 0 ? '0' : v.toFixed(1); } } }
        },
        onClick: function (evt, els, chart) { chartClick(view, chart, evt, 0); },
        onHover: function (evt, els, chart) { chartHover(chart, evt, 0); }
      }
    });
    themeGradeChart(chart, th);
    return chart;
  }

  function themeAxes(chart, th) {
    var o = chart.options;
    o.color = th.fg;
    o.font = { family: th.font, size: 11 };
    ['x', 'y'].forEach(function (ax) {
      var s = o.scales[ax];
      s.ticks.color = th.muted;
      s.grid.color = th.grid;
      s.grid.tickColor = th.grid;
      s.border = { color: th.border };
    });
    o.plugins.tooltip.backgroundColor = th.panel;
    o.plugins.tooltip.titleColor = th.fg;
    o.plugins.tooltip.bodyColor = th.fg;
    o.plugins.tooltip.borderColor = th.border;
    o.plugins.tooltip.borderWidth = 1;
  }

  function themeLineChart(chart, th) {
    themeAxes(chart, th);
    var ds = chart.data.datasets;
    ds[DS_LOW].borderColor = th.band; ds[DS_LOW].backgroundColor = th.band;
    ds[DS_HIGH].borderColor = th.band; ds[DS_HIGH].backgroundColor = th.band;
    ds[DS_EXPECTED].borderColor = th.expected; ds[DS_EXPECTED].backgroundColor = th.expected;
    ds[DS_ACTUAL].borderColor = th.actual; ds[DS_ACTUAL].backgroundColor = th.actual;
    ds[DS_ANOM].backgroundColor = th.anomaly; ds[DS_ANOM].borderColor = th.anomalyEdge;
    ds[DS_ANOM].pointBackgroundColor = th.anomaly; ds[DS_ANOM].pointBorderColor = th.anomalyEdge;
  }

  function themeGradeChart(chart, th) {
    themeAxes(chart, th);
    chart.data.datasets[0].backgroundColor = th.grade;
    chart.data.datasets[0].borderColor = th.grade;
  }

  function retheme() {
    var th = theme();
    views.forEach(function (v) {
      v.lineCharts.forEach(function (c) { themeLineChart(c, th); c.update('none'); });
      if (v.gradeChart) { themeGradeChart(v.gradeChart, th); v.gradeChart.update('none'); }
    });
    themeCountsChart();
  }

  function chartHover(chart, evt, dsIndex) {
    var hit = nearestMarker(chart, evt, dsIndex);
    chart.canvas.style.cursor = hit ? 'pointer' : '';
  }

  function nearestMarker(chart, evt, dsIndex) {
    var meta = chart.getDatasetMeta(dsIndex);
    var data = chart.data.datasets[dsIndex].data;
    var best = null, bestD = Infinity;
    var ex = evt.x, ey = evt.y;
    var isBar = chart.config.type === 'bar';
    for (var i = 0; i < meta.data.length; i++) {
      var raw = data[i];
      if (!raw || raw.y == null || (isBar && !(raw.y > 0))) continue;
      var p = meta.data[i];
      if (!p || p.skip) continue;
      var dx = Math.abs(p.x - ex);
      var dy = isBar ? 0 : Math.abs(p.y - ey) * 0.25;
      var d = dx + dy;
      if (d < bestD) { bestD = d; best = raw; }
    }
    return bestD <= 14 ? best : null;
  }

  function chartClick(view, chart, evt, dsIndex) {
    var raw = nearestMarker(chart, evt, dsIndex);
    if (!raw) return;
    var t = isNum(raw.t) ? raw.t : raw.x;
    var a = findAnomaly(view.name, view.entity, t);
    if (a) selectAnomaly(a.id, 'chart');
  }

  function findAnomaly(detector, entity, t) {
    var a = state.anomalyByKey.get(anomalyKey(detector, entity, t));
    if (a) return a;
    // fall back to any anomaly of the detector/entity whose interval contains t
    for (var i = state.anomalies.length - 1; i >= 0; i--) {
      var x = state.anomalies[i];
      if (x.detector !== detector) continue;
      if ((x.entity == null ? null : String(x.entity)) !== (entity == null ? null : entity)) continue;
      if (x.start <= t && t < (isNum(x.end) ? x.end : x.start + 1)) return x;
    }
    return null;
  }

  function windowBounds() {
    var first = Infinity, last = -Infinity;
    state.detectors.forEach(function (d) {
      var consider = function (s) {
        if (!s.length) return;
        if (s[0].t < first) first = s[0].t;
        var e = s[s.length - 1].t + d.interval_ms;
        if (e > last) last = e;
      };
      consider(d.series);
      d.entities.forEach(consider);
    });
    var end = isNum(state.now) ? state.now : (isFinite(last) ? last : null);
    if (end == null) return null;
    if (isFinite(last) && last > end) end = last;
    var r = RANGES[state.range] || RANGES['6h'];
    var start = r === Infinity ? first : end - r;
    if (!isFinite(start) || start >= end) start = end - HOUR;
    return { start: start, end: end };
  }

  function entityFor(d, view) {
    var names = Array.from(d.entities.keys());
    if (names.length === 0) return null;
    var choice = state.entityChoice.get(d.name);
    if (choice && choice.user && d.entities.has(choice.entity)) return choice.entity;
    for (var i = state.anomalies.length - 1; i >= 0; i--) {
      var a = state.anomalies[i];
      if (a.detector === d.name && a.entity != null && d.entities.has(String(a.entity))) return String(a.entity);
    }
    return names[0];
  }

  function updateEntitySelect(d, view, current) {
    var sel = view.select;
    if (!sel) return;
    // order: by latest anomaly, newest first, then the rest by name
    var latest = new Map();
    state.anomalies.forEach(function (a) {
      if (a.detector === d.name && a.entity != null) latest.set(String(a.entity), a.start);
    });
    var names = Array.from(d.entities.keys()).sort(function (x, y) {
      var lx = latest.has(x) ? latest.get(x) : -Infinity, ly = latest.has(y) ? latest.get(y) : -Infinity;
      if (lx !== ly) return ly - lx;
      return x < y ? -1 : x > y ? 1 : 0;
    });
    var sig = names.join('\u0000');
    if (sel._sig !== sig) {
      sel._sig = sig;
      clear(sel);
      if (names.length === 0) sel.appendChild(el('option', { value: '', text: 'no entities yet' }));
      names.forEach(function (n) { sel.appendChild(el('option', { value: n, text: n })); });
    }
    sel.disabled = names.length === 0;
    if (current != null && sel.value !== current) sel.value = current;
  }

  function renderDetectors() {
    var b = windowBounds();
    var th = null;
    state.detectors.forEach(function (d) {
      var v = views.get(d.name);
      if (!v) return;
      // heading meta
      v.intervals.textContent = fmtInt(d.intervals) + ' intervals';
      v.conf.textContent = 'confidence ' + fmt2(d.confidence);
      var isWarm = d.intervals >= d.warm_up;
      v.warm.setAttribute('data-warm', isWarm ? 'yes' : 'no');
      v.warm.textContent = isWarm ? 'warm' : 'warming up ' + fmtInt(d.intervals) + '/' + fmtInt(d.warm_up);
      v.section.classList.toggle('selected-det', selectedDetector() === d.name);

      var series = d.series;
      v.entity = null;
      if (d.category_field != null) {
        var ent = entityFor(d, v);
        v.entity = ent;
        updateEntitySelect(d, v, ent);
        series = ent != null ? (d.entities.get(ent) || []) : [];
      }
      if (!v.visible) { v.stale = true; return; }
      v.stale = false;

      var start = b ? b.start : 0, end = b ? b.end : 1;
      var i0 = b ? Math.max(0, lowerBound(series, start - d.interval_ms)) : 0;
      var i1 = b ? lowerBound(series, end + 1) : series.length;
      var pts = series.slice(i0, i1);
      var msg = '';
      if (d.category_field != null && d.entities.size === 0) msg = 'No tracked entities yet.';
      else if (pts.length === 0) msg = series.length ? 'No data in this range.' : 'No data yet.';
      v.empty.textContent = msg;
      v.empty.hidden = !msg;

      var width = v.lineCharts.length ? (v.lineCharts[0].width || 600) : (v.gradeChart ? v.gradeChart.width : 600);
      var target = Math.max(60, Math.floor((width - Y_AXIS_WIDTH - RIGHT_PAD) / 2));
      var idx = pickIndices(pts, target);
      var selKey = selectedKeyFor(d.name, v.entity);

      v.lineCharts.forEach(function (chart, fi) {
        var built = lineData(pts, idx, fi, selKey, d.name, v.entity);
        var ds = chart.data.datasets;
        ds[DS_LOW].data = built.low;
        ds[DS_HIGH].data = built.high;
        ds[DS_EXPECTED].data = built.expected;
        ds[DS_ACTUAL].data = built.actual;
        ds[DS_ANOM].data = built.anom;
        // Counts never go below zero: a band reaching below it is cut at the
        // axis rather than stretching the chart.
        var nonNegative = built.actual.every(function (p) { return p.y == null || p.y >= 0; }) &&
          built.expected.every(function (p) { return p.y == null || p.y >= 0; });
        chart.options.scales.y.min = nonNegative ? 0 : undefined;
        chart.options.scales.x.min = start;
        chart.options.scales.x.max = end;
        chart.update('none');
      });
      if (v.gradeChart) {
        v.gradeChart.data.datasets[0].data = gradeData(pts, target);
        v.gradeChart.options.scales.x.min = start;
        v.gradeChart.options.scales.x.max = end;
        v.gradeChart.update('none');
      }
    });
  }

  function selectedDetector() {
    var a = state.selectedId != null ? state.anomalyById.get(state.selectedId) : null;
    return a ? a.detector : null;
  }

  function selectedKeyFor(detector, entity) {
    var a = state.selectedId != null ? state.anomalyById.get(state.selectedId) : null;
    if (!a || a.detector !== detector) return null;
    if ((a.entity == null ? null : String(a.entity)) !== entity) return null;
    return a.start;
  }

  // Chooses which points to draw: all when few; otherwise per bucket the min and max of the
  // first feature's actual value plus every anomalous point, so spikes and markers survive.
  function pickIndices(pts, target) {
    var n = pts.length;
    if (n <= target * 2) return null;
    var k = Math.ceil(n / target);
    var out = [];
    for (var i = 0; i < n; i += k) {
      var end = Math.min(n, i + k);
      var iMin = i, iMax = i, vMin = Infinity, vMax = -Infinity;
      var extra = [];
      for (var j = i; j < end; j++) {
        var p = pts[j];
        var y = 0;
        for (var f = 0; f < p.actual.length; f++) if (isNum(p.actual[f])) { y = p.actual[f]; break; }
        if (y < vMin) { vMin = y; iMin = j; }
        if (y > vMax) { vMax = y; iMax = j; }
        if (p.grade > 0) extra.push(j);
      }
      var set = [iMin, iMax].concat(extra).sort(function (a, b) { return a - b; });
      for (var s = 0; s < set.length; s++) if (s === 0 || set[s] !== set[s - 1]) out.push(set[s]);
    }
    return out;
  }

  function lineData(pts, idx, fi, selKey) {
    var n = idx ? idx.length : pts.length;
    var low = new Array(n), high = new Array(n), expected = new Array(n), actual = new Array(n), anom = new Array(n);
    var anyBand = false;
    for (var i = 0; i < n; i++) {
      var p = pts[idx ? idx[i] : i];
      var x = p.t;
      var a = p.actual ? p.actual[fi] : null;
      var e = p.expected ? p.expected[fi] : null;
      var lo = p.low ? p.low[fi] : null;
      var hi = p.high ? p.high[fi] : null;
      if (isNum(lo) || isNum(hi)) anyBand = true;
      actual[i] = { x: x, y: isNum(a) ? a : null };
      expected[i] = { x: x, y: isNum(e) ? e : null };
      low[i] = { x: x, y: isNum(lo) ? lo : null };
      high[i] = { x: x, y: isNum(hi) ? hi : null };
      anom[i] = p.grade > 0 && isNum(a) ? { x: x, y: a, g: p.grade, sel: selKey === x } : { x: x, y: null };
    }
    if (!anyBand) { low = []; high = []; }
    return { low: low, high: high, expected: expected, actual: actual, anom: anom };
  }

  function gradeData(pts, target) {
    var n = pts.length;
    var out = [];
    if (n <= target * 2) {
      for (var i = 0; i < n; i++) out.push({ x: pts[i].t, y: pts[i].grade > 0 ? pts[i].grade : null, t: pts[i].t });
      return out;
    }
    var k = Math.ceil(n / target);
    for (var b = 0; b < n; b += k) {
      var end = Math.min(n, b + k), g = 0, t = pts[b].t;
      for (var j = b; j < end; j++) if (pts[j].grade > g) { g = pts[j].grade; t = pts[j].t; }
      out.push({ x: pts[b].t, y: g > 0 ? g : null, t: t });
    }
    return out;
  }

  // ---------------------------------------------------------------- range

  function setRange(r) {
    if (!(r in RANGES)) return;
    state.range = r;
    document.querySelectorAll('#range button').forEach(function (b) {
      b.setAttribute('aria-pressed', b.getAttribute('data-range') === r ? 'true' : 'false');
    });
    dirty.detectors = true;
  }

  // ---------------------------------------------------------------- live connection

  var source = null;
  var retryTimer = 0;

  function connect() {
    if (retryTimer) { clearTimeout(retryTimer); retryTimer = 0; }
    if (source) { try { source.close(); } catch (e) { /* ignore */ } }
    var es = new EventSource('api/events');
    source = es;
    es.onopen = function () { state.connected = true; renderStatus(); };
    es.addEventListener('snapshot', function (ev) {
      var s;
      try { s = JSON.parse(ev.data); } catch (e) { console.error('waflog dashboard: bad snapshot', e); return; }
      state.connected = true;
      applySnapshot(s);
      renderStatus();
    });
    es.addEventListener('update', function (ev) {
      var u;
      try { u = JSON.parse(ev.data); } catch (e) { console.error('waflog dashboard: bad update', e); return; }
      state.connected = true;
      applyUpdate(u);
    });
    es.onerror = function () {
      state.connected = false;
      renderStatus();
      // EventSource retries by itself unless the server answered in a way that closes it.
      if (es.readyState === EventSource.CLOSED && source === es) {
        retryTimer = setTimeout(connect, 3000);
      }
    };
  }

  // ---------------------------------------------------------------- init

  function init() {
    if (typeof Chart !== 'undefined') {
      Chart.defaults.font.family = theme().font;
      Chart.defaults.font.size = 11;
      Chart.defaults.animation = false;
    }
    document.body.classList.toggle('report', state.mode === 'report');
    setRange(state.range);
    document.querySelectorAll('#range button').forEach(function (b) {
      b.addEventListener('click', function () { setRange(b.getAttribute('data-range')); schedule(); });
    });
    $('anomaly-filter').addEventListener('change', function (ev) {
      state.filter = ev.target.value;
      dirty.anomalies = true;
      schedule();
    });
    if (window.matchMedia) {
      var mq = window.matchMedia('(prefers-color-scheme: dark)');
      var onScheme = function () { guarded(retheme); };
      if (mq.addEventListener) mq.addEventListener('change', onScheme);
      else if (mq.addListener) mq.addListener(onScheme);
    }
    document.addEventListener('visibilitychange', function () {
      if (!document.hidden) schedule();
    });
    window.addEventListener('beforeprint', function () {
      views.forEach(function (v) { v.visible = true; });
      dirty.detectors = true;
      flush();
    });
    var resizeTimer = 0;
    window.addEventListener('resize', function () {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(function () { dirty.detectors = true; schedule(); }, 200);
    });

    if (typeof Chart === 'undefined') {
      $('detectors-empty').textContent = 'Charts are unavailable (chart library failed to load).';
    }

    if (state.mode === 'report') {
      renderStatus();
      var snap = null;
      try { snap = JSON.parse(reportEl.textContent); } catch (e) { console.error('waflog dashboard: bad report data', e); }
      if (snap) applySnapshot(snap);
      flush();
    } else {
      renderStatus();
      render();
      connect();
    }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
