"use strict";
/* infarctsam review page: cohort table, slice viewer, decisions (kept in localStorage, exported as CSV). */
(function () {
  var ROWS = JSON.parse(document.getElementById("review-rows").textContent);
  var CONFIG = JSON.parse(document.getElementById("review-config").textContent);
  var DECISIONS = ["accept", "reject", "needs-edit"];
  var state = { sortKey: "warnings", sortDir: -1, current: null, slice: 0, cache: {}, pending: {},
                decisions: loadDecisions() };
  var $ = function (id) { return document.getElementById(id); };

  /* ---------- decisions ---------- */
  function loadDecisions() {
    var stored = {};
    try { stored = JSON.parse(window.localStorage.getItem(CONFIG.storage_key) || "{}") || {}; } catch (e) { stored = {}; }
    var initial = CONFIG.decisions || {};
    Object.keys(initial).forEach(function (c) {
      var d = initial[c];
      var s = stored[c];
      if (!s || (d.reviewed_at && s.reviewed_at && d.reviewed_at > s.reviewed_at)) {
        stored[c] = { decision: d.review_decision, note: d.review_note || "", reviewed_at: d.reviewed_at || "" };
      }
    });
    return stored;
  }
  function saveDecisions() {
    try { window.localStorage.setItem(CONFIG.storage_key, JSON.stringify(state.decisions)); }
    catch (e) { $("decision-status").textContent = "could not store the decision in this browser: " + e; }
  }
  function decisionOf(row) { var d = state.decisions[row.case]; return d && d.decision ? d.decision : ""; }
  function setDecision(decision) {
    var row = state.current;
    if (!row) { return; }
    var note = $("note").value;
    if (!decision && !note) { delete state.decisions[row.case]; }
    else { state.decisions[row.case] = { decision: decision, note: note, reviewed_at: new Date().toISOString() }; }
    saveDecisions();
    showDecision();
    renderTable();
  }
  function showDecision() {
    var d = state.current ? state.decisions[state.current.case] : null;
    var dec = d ? d.decision : "";
    Array.prototype.forEach.call(document.querySelectorAll("#decision button"), function (b) {
      b.classList.toggle("active", !!dec && b.getAttribute("data-decision") === dec);
    });
    $("note").value = d ? d.note || "" : "";
    $("decision-status").textContent = d && d.decision ? ("saved: " + d.decision + " at " + d.reviewed_at) : "";
  }
  function csvCell(v) {
    var s = v === null || v === undefined ? "" : String(v);
    return /[",\n\r]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  }
  function decisionsCsv() {
    var cols = ["case", "review_decision", "review_note", "reviewed_at", "volume_ml", "lesion_count", "engine",
                "weights", "warnings"];
    var lines = [cols.join(",")];
    ROWS.forEach(function (r) {
      var d = state.decisions[r.case];
      if (!d || !d.decision) { return; }
      lines.push([r.case, d.decision, d.note, d.reviewed_at, r.volume_ml, r.lesion_count, r.engine, r.weights,
                  r.warnings.join("; ")].map(csvCell).join(","));
    });
    return lines.join("\n") + "\n";
  }
  function exportCsv() {
    var blob = new Blob([decisionsCsv()], { type: "text/csv;charset=utf-8" });
    var a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = CONFIG.export_name || "infarctsam_review.csv";
    document.body.appendChild(a);
    a.click();
    setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  }

  /* ---------- table ---------- */
  function sortValue(row, key) {
    if (key === "warnings") { return row.warnings.length; }
    if (key === "decision") { return decisionOf(row); }
    return row[key];
  }
  function compare(a, b) {
    var k = state.sortKey, va = sortValue(a, k), vb = sortValue(b, k);
    var na = va === null || va === undefined || va === "", nb = vb === null || vb === undefined || vb === "";
    if (na !== nb) { return na ? 1 : -1; }  /* missing values last, whatever the direction */
    var c = 0;
    if (!na) { c = typeof va === "number" && typeof vb === "number" ? va - vb : String(va).localeCompare(String(vb)); }
    if (c === 0) { return a.case.localeCompare(b.case); }
    return c * state.sortDir;
  }
  function visibleRows() {
    var q = $("filter").value.trim().toLowerCase();
    var dec = $("decision-filter").value;
    return ROWS.filter(function (r) {
      var d = decisionOf(r);
      if (dec === "none" && d) { return false; }
      if (dec && dec !== "none" && d !== dec) { return false; }
      if (!q) { return true; }
      return [r.case, r.engine, r.weights, r.warnings.join(" "), d].join(" ").toLowerCase().indexOf(q) >= 0;
    }).sort(compare);
  }
  function fmt(v, digits) { return v === null || v === undefined ? "" : Number(v).toFixed(digits); }
  function cell(tr, text, cls) {
    var td = document.createElement("td");
    td.textContent = text;
    if (cls) { td.className = cls; }
    tr.appendChild(td);
    return td;
  }
  function renderTable() {
    var body = document.querySelector("#cohort tbody");
    body.textContent = "";
    var rows = visibleRows();
    rows.forEach(function (r) {
      var tr = document.createElement("tr");
      tr.setAttribute("data-case", r.case);
      if (r.warnings.length) { tr.classList.add("has-warnings"); }
      if (state.current && state.current.case === r.case) { tr.classList.add("selected"); }
      var td = document.createElement("td");
      if (r.thumb) { var img = document.createElement("img"); img.src = r.thumb; img.alt = r.case; td.appendChild(img); }
      tr.appendChild(td);
      cell(tr, r.case);
      var warnText = r.status === "failed" ? r.warnings.join("; ") : (r.warnings.length ? r.warnings.length + ": " +
           r.warnings.join("; ") : "");
      cell(tr, warnText, "warn").title = warnText;
      cell(tr, fmt(r.volume_ml, 2), "num");
      cell(tr, fmt(r.lesion_count, 0), "num");
      cell(tr, fmt(r.dice, 3), "num");
      cell(tr, r.location || "", (r.location_reliable === false ? "warn " : "") + "clip").title = r.location || "";
      cell(tr, r.engine || "");
      cell(tr, r.weights || "", "clip").title = r.weights || "";
      var d = decisionOf(r);
      var dtd = cell(tr, "");
      if (d) { var b = document.createElement("span"); b.className = "badge " + d; b.textContent = d; dtd.appendChild(b); }
      tr.addEventListener("click", function () { openCase(r); });
      body.appendChild(tr);
    });
    Array.prototype.forEach.call(document.querySelectorAll("#cohort th.sortable"), function (th) {
      th.classList.remove("sorted-asc", "sorted-desc");
      if (th.getAttribute("data-key") === state.sortKey) { th.classList.add(state.sortDir > 0 ? "sorted-asc" : "sorted-desc"); }
    });
    var decided = ROWS.filter(function (r) { return decisionOf(r); }).length;
    var warned = ROWS.filter(function (r) { return r.warnings.length; }).length;
    $("counts").textContent = ROWS.length + " cases, " + warned + " with warnings, " + decided + " decided" +
      (rows.length !== ROWS.length ? " (" + rows.length + " shown)" : "");
  }

  /* ---------- case data ---------- */
  function inflate(b64) {
    if (!b64) { return Promise.resolve(null); }
    var bin = atob(b64), bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { bytes[i] = bin.charCodeAt(i); }
    var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
    return new Response(stream).arrayBuffer().then(function (buf) { return new Uint8Array(buf); });
  }
  window.infarctsamCase = function (key, payload) {
    var done = state.pending[key];
    delete state.pending[key];
    Promise.all(["dwi", "adc", "mask", "reference"].map(function (k) { return inflate(payload[k]); }))
      .then(function (arrs) {
        var data = { shape: payload.shape, spacing: payload.spacing, start: payload.start, dwi_max: payload.dwi_max,
                     adc_max: payload.adc_max, dwi: arrs[0], adc: arrs[1], mask: arrs[2], reference: arrs[3] };
        state.cache[key] = data;
        if (done) { done.resolve(data); }
      }).catch(function (e) { if (done) { done.reject(e); } });
  };
  function loadCase(row) {
    if (state.cache[row.id]) { return Promise.resolve(state.cache[row.id]); }
    return new Promise(function (resolve, reject) {
      state.pending[row.id] = { resolve: resolve, reject: reject };
      var s = document.createElement("script");
      s.src = row.data;
      s.onerror = function () { reject(new Error("cannot load " + row.data)); };
      document.body.appendChild(s);
    });
  }

  /* ---------- viewer ---------- */
  function openCase(row) {
    state.current = row;
    $("viewer-empty").hidden = true;
    $("viewer").hidden = false;
    $("case-title").textContent = row.case + (row.volume_ml !== null ? "  \u2014  " + fmt(row.volume_ml, 2) + " mL, " +
      fmt(row.lesion_count, 0) + " lesion(s), engine " + (row.engine || "?") : "");
    var ul = $("case-warnings");
    ul.textContent = "";
    row.warnings.forEach(function (w) { var li = document.createElement("li"); li.textContent = w; ul.appendChild(li); });
    $("qc-link").hidden = !row.qc;
    if (row.qc) { $("qc-link").href = row.qc; }
    showDecision();
    renderTable();
    /* viewer's data-shown names the case whose images are drawn; while another loads, the label says so */
    delete $("viewer").dataset.shown;
    if (!row.data) {
      $("images").hidden = true; $("slice-row").hidden = true; $("viewer").dataset.shown = row.case; return;
    }
    $("images").hidden = false;
    $("slice-row").hidden = false;
    if (!state.cache[row.id]) { $("slice-label").textContent = "loading " + row.case + "\u2026"; }
    loadCase(row).then(function (data) {
      if (state.current !== row) { return; }
      state.slice = data.start;
      $("slice").max = String(data.shape[0] - 1);
      /* a toggle is offered only for what the case has: no reference, no ADC, no tick */
      $("show-ref").parentNode.hidden = !data.reference;
      $("show-adc").parentNode.hidden = !data.adc;
      $("adc-pane").hidden = !data.adc || !$("show-adc").checked;
      draw();
      $("viewer").dataset.shown = row.case;
    }).catch(function (e) { $("case-title").textContent = row.case + ": " + e.message; });
  }
  function currentData() { return state.current ? state.cache[state.current.id] : null; }
  function setSlice(k) {
    var data = currentData();
    if (!data) { return; }
    state.slice = Math.max(0, Math.min(data.shape[0] - 1, k));
    draw();
  }
  function paint(canvas, data, image, lo, hi) {
    var n = data.shape[1] * data.shape[2], off = state.slice * n, w = data.shape[2], h = data.shape[1];
    canvas.width = w;
    canvas.height = h;
    var scale = Math.floor(300 / Math.max(w * data.spacing[1], h * data.spacing[0]) * 100) / 100;
    canvas.style.width = (w * data.spacing[1] * scale) + "px";
    canvas.style.height = (h * data.spacing[0] * scale) + "px";
    var ctx = canvas.getContext("2d", { willReadFrequently: true });  /* CPU canvas: pixels are pushed, and read by tests */
    var img = ctx.createImageData(w, h), px = img.data;
    var showMask = $("show-mask").checked && data.mask, showRef = $("show-ref").checked && data.reference;
    var span = Math.max(1, hi - lo);
    for (var p = 0; p < n; p++) {
      var v = image ? image[off + p] : 0;
      var g = Math.max(0, Math.min(255, Math.round((v - lo) * 255 / span)));
      var r = g, gg = g, b = g;
      if (showMask && data.mask[off + p]) { r = 0.45 * g + 0.55 * 255; gg = 0.45 * g + 0.55 * 40; b = 0.45 * g + 0.55 * 40; }
      if (showRef && data.reference[off + p]) {
        var x = p % w, y = (p - x) / w, ref = data.reference;
        var edge = x === 0 || y === 0 || x === w - 1 || y === h - 1 || !ref[off + p - 1] || !ref[off + p + 1] ||
          !ref[off + p - w] || !ref[off + p + w];
        if (edge) { r = 0; gg = 230; b = 255; }
      }
      px[4 * p] = r; px[4 * p + 1] = gg; px[4 * p + 2] = b; px[4 * p + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
  }
  function draw() {
    var data = currentData();
    if (!data) { return; }
    var lo = Number($("win-lo").value), hi = Number($("win-hi").value);
    if (hi <= lo) { hi = lo + 1; }
    paint($("dwi-canvas"), data, data.dwi, lo, hi);
    var adcShown = !!data.adc && $("show-adc").checked;
    $("adc-pane").hidden = !adcShown;
    if (adcShown) { paint($("adc-canvas"), data, data.adc, 0, 255); }
    $("slice").value = String(state.slice);
    $("slice-label").textContent = "slice " + (state.slice + 1) + " / " + data.shape[0] + "  (" +
      data.spacing[0].toFixed(2) + " x " + data.spacing[1].toFixed(2) + " x " + data.spacing[2].toFixed(2) + " mm)";
    $("win-label").textContent = "DWI " + (lo * data.dwi_max / 255).toFixed(0) + "\u2013" + (hi * data.dwi_max / 255).toFixed(0);
  }
  function step(delta) {
    var rows = visibleRows();
    if (!rows.length) { return; }
    var i = state.current ? rows.findIndex(function (r) { return r.case === state.current.case; }) : -1;
    openCase(rows[Math.max(0, Math.min(rows.length - 1, i + delta))]);
  }

  /* ---------- wiring ---------- */
  function init() {
    document.title = CONFIG.title + " \u2014 infarctsam review";
    $("title").textContent = CONFIG.title;
    $("footer").textContent = "infarctsam " + CONFIG.version + " \u2014 decisions are kept in this browser " +
      "(localStorage) until exported; export writes " + CONFIG.export_name + ".";
    Array.prototype.forEach.call(document.querySelectorAll("#cohort th.sortable"), function (th) {
      th.addEventListener("click", function () {
        var key = th.getAttribute("data-key");
        state.sortDir = state.sortKey === key ? -state.sortDir : 1;
        state.sortKey = key;
        renderTable();
      });
    });
    $("filter").addEventListener("input", renderTable);
    $("decision-filter").addEventListener("change", renderTable);
    $("export").addEventListener("click", exportCsv);
    Array.prototype.forEach.call(document.querySelectorAll("#decision button"), function (b) {
      b.addEventListener("click", function () { setDecision(b.getAttribute("data-decision")); });
    });
    $("note").addEventListener("change", function () {
      var d = state.current && state.decisions[state.current.case];
      setDecision(d ? d.decision : "");
    });
    ["show-mask", "show-ref", "show-adc", "win-lo", "win-hi"].forEach(function (id) { $(id).addEventListener("input", draw); });
    $("slice").addEventListener("input", function () { setSlice(Number($("slice").value)); });
    $("images").addEventListener("wheel", function (ev) {
      ev.preventDefault();
      setSlice(state.slice + (ev.deltaY > 0 ? -1 : 1));
    }, { passive: false });
    document.addEventListener("keydown", function (ev) {
      var tag = ev.target && ev.target.tagName;
      if (tag === "TEXTAREA" || (tag === "INPUT" && ev.target.type !== "range" && ev.target.type !== "checkbox")) { return; }
      var k = ev.key, handled = true;
      if (k === "ArrowUp" || k === "PageUp") { setSlice(state.slice + 1); }
      else if (k === "ArrowDown" || k === "PageDown") { setSlice(state.slice - 1); }
      else if (k === "n") { step(1); }
      else if (k === "p") { step(-1); }
      else if (k === "m") { $("show-mask").checked = !$("show-mask").checked; draw(); }
      else if (k === "r") { $("show-ref").checked = !$("show-ref").checked; draw(); }
      else if (k === "1" || k === "2" || k === "3") { setDecision(DECISIONS[Number(k) - 1]); }
      else { handled = false; }
      if (handled) { ev.preventDefault(); }
    });
    renderTable();
  }
  window.infarctsamReview = { decisionsCsv: decisionsCsv, rows: ROWS, state: state };
  init();
})();
