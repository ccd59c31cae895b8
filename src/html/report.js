// brownout's HTML report: draws the runs embedded as JSON in #brownout-data with uPlot.
// One run, or two overlaid (`brownout compare --html`): the second run's lines are
// dashed, and its bands are drawn as a second strip. No network, no clock: the page is
// a pure function of the embedded data.
"use strict";
(function () {
  const errors = [];
  window.addEventListener("error", (e) => errors.push(String(e.message || e)));
  const consoleError = console.error;
  console.error = function (...args) {
    errors.push(args.map(String).join(" "));
    consoleError.apply(console, args);
  };

  const data = JSON.parse(document.getElementById("brownout-data").textContent);
  const runs = data.runs;
  const SYNC = uPlot.sync("brownout");
  const charts = []; // { name, plot, hasData }
  const OUTCOME_COLOURS = {
    fresh: "#2e7d32", cached: "#66bb6a", stale: "#f9a825", pending_write: "#8d6e63",
    fallback: "#ffb74d", partial: "#ce93d8", applied: "#1565c0", queued: "#64b5f6",
    rejected: "#6d4c41", shed: "#7b1fa2", error: "#c62828", refused: "#9e9e9e",
    unanswered: "#212121",
  };
  const BREAKER_COLOURS = { closed: "rgba(46,125,50,0.55)", half_open: "rgba(249,168,37,0.85)", open: "rgba(198,40,40,0.85)" };
  const MODE_COLOURS = { normal: "rgba(46,125,50,0.10)", degraded: "rgba(249,168,37,0.22)", critical: "rgba(198,40,40,0.22)" };
  const MODE_STRIP = { normal: "rgba(46,125,50,0.55)", degraded: "rgba(249,168,37,0.85)", critical: "rgba(198,40,40,0.85)" };
  const RUN_DASH = [[], [6, 4]];
  const TIME_INCRS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400, 172800, 604800];
  const LINE_COLOURS = ["#1f4e9c", "#c2185b", "#00897b", "#ef6c00", "#5e35b1", "#6d4c41"];

  // ---------- formatting ----------
  function fmtTime(s) {
    if (s == null) return "";
    const neg = s < 0 ? "-" : "";
    s = Math.abs(s);
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    const ss = (Number.isInteger(sec) ? String(sec) : sec.toFixed(1)).padStart(sec < 10 ? (Number.isInteger(sec) ? 2 : 4) : 0, "0");
    return neg + (h > 0 ? h + ":" + String(m).padStart(2, "0") : String(m)) + ":" + ss;
  }
  function fmtSpanUs(us) {
    if (us == null) return "-";
    if (us >= 60e6) return (us / 60e6).toFixed(1) + " min";
    if (us >= 1e6) return (us / 1e6).toFixed(us >= 10e6 ? 0 : 1) + " s";
    if (us >= 1e3) return (us / 1e3).toFixed(us >= 10e3 ? 0 : 1) + " ms";
    return us + " µs";
  }
  const fmtNum = (v, d) => (v == null ? "-" : Number(v).toFixed(d));
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
    }
    for (const c of children) if (c != null) e.append(c);
    return e;
  }

  // ---------- the shared time axis ----------
  // Every run is resampled onto the grid of the run with the finest, longest series.
  const grid = runs.reduce((best, r) => {
    const s = r.report.series;
    const end = s.bucket * s.buckets;
    if (!best || s.bucket < best.bucket || (s.bucket === best.bucket && end > best.end)) return { bucket: s.bucket, end };
    return best;
  }, null);
  const xs = [];
  for (let t = 0; t < grid.end; t += grid.bucket) xs.push(t / 1e6);
  const bucketSeconds = grid.bucket / 1e6;
  function onGrid(run, values) {
    const s = run.report.series;
    return xs.map((x) => {
      const b = Math.floor((x * 1e6) / s.bucket);
      return b < s.buckets ? values[b] : null;
    });
  }
  // A per-bucket count as a rate per second, on the grid (a coarser run's count is
  // spread over its bucket, so rates stay comparable).
  function rate(run, counts) {
    const w = run.report.series.bucket / 1e6;
    return onGrid(run, counts.map((n) => (n == null ? null : n / w)));
  }

  // ---------- drawing helpers ----------
  function faultWindows() {
    const seen = [];
    runs.forEach((r, i) => r.report.series.faults.forEach((f) => {
      // A window both runs had is shaded once, in A's colour.
      const same = seen.some((g) => g.dependency === f.dependency && g.fault === f.fault && g.start === f.start && g.end === f.end);
      if (!same) seen.push({ run: i, ...f });
    }));
    return seen;
  }
  const FAULTS = faultWindows();
  function shadeFaults(u) {
    const { ctx, bbox } = u;
    ctx.save();
    ctx.beginPath();
    ctx.rect(bbox.left, bbox.top, bbox.width, bbox.height);
    ctx.clip();
    for (const f of FAULTS) {
      const x0 = u.valToPos(f.start / 1e6, "x", true);
      const x1 = u.valToPos(Math.min(f.end, grid.end) / 1e6, "x", true);
      ctx.fillStyle = f.run === 0 ? "rgba(198,40,40,0.09)" : "rgba(94,53,177,0.09)";
      ctx.fillRect(x0, bbox.top, Math.max(1, x1 - x0), bbox.height);
    }
    ctx.restore();
  }
  // Draws state strips (breaker, mode) along the top of the plot: one strip per run.
  function strips(getStates, colours, height) {
    return (u) => {
      const { ctx, bbox } = u;
      const h = height * devicePixelRatio;
      ctx.save();
      getStates().forEach((states, i) => {
        if (!states) return;
        const y = bbox.top + i * (h + 2 * devicePixelRatio);
        // One rectangle per run of equal states, so that narrow buckets leave no seams.
        for (let b = 0; b < xs.length; ) {
          const s = states[b];
          let e = b + 1;
          while (e < xs.length && states[e] === s) e++;
          if (s != null) {
            const x0 = Math.max(u.valToPos(xs[b], "x", true), bbox.left);
            const x1 = Math.min(u.valToPos(xs[e - 1] + bucketSeconds, "x", true), bbox.left + bbox.width);
            if (x1 > x0) {
              ctx.fillStyle = colours[s];
              ctx.fillRect(x0, y, x1 - x0, h);
            }
          }
          b = e;
        }
      });
      ctx.restore();
    };
  }
  function hasData(series) {
    return series.some((ys) => ys.some((v) => v != null && v !== 0));
  }

  const chartsBox = document.getElementById("charts");
  function width() {
    return Math.max(480, chartsBox.clientWidth - 8);
  }
  // Zoom one chart, zoom them all.
  let syncing = false;
  function syncScale(u, key) {
    if (key !== "x" || syncing) return;
    syncing = true;
    const { min, max } = u.scales.x;
    for (const c of charts) if (c.plot !== u) c.plot.setScale("x", { min, max });
    syncing = false;
  }
  function chart(box, name, title, seriesOpts, ys, extra) {
    extra = extra || {};
    const holder = el("div", { class: "chart", "data-chart": name });
    holder.append(el("h3", { text: title }));
    box.append(holder);
    // Every chart keeps a right-hand axis (blank where it has no second scale), so
    // that all plots share the same left and right edges and times line up.
    const axes = (extra.axes || [{ size: 60 }]).slice();
    if (axes.length < 2) {
      axes.push({ side: 1, scale: axes[0].scale || "y", size: 60, values: () => [], ticks: { show: false }, grid: { show: false } });
    }
    const opts = {
      width: width(),
      height: extra.height || 170,
      cursor: { sync: { key: SYNC.key }, drag: { x: true, y: false } },
      scales: { x: { time: false, range: [0, grid.end / 1e6] }, ...(extra.scales || {}) },
      series: [{ label: "time", value: (u, v) => fmtTime(v) }, ...seriesOpts],
      axes: [
        // Ticks on round times (seconds, minutes, hours), not round decimals.
        { values: (u, vals) => vals.map(fmtTime), space: 70, incrs: TIME_INCRS },
        ...axes,
      ],
      hooks: {
        drawClear: [shadeFaults],
        draw: extra.draw ? [extra.draw] : [],
        setScale: [syncScale],
      },
      legend: { live: true },
    };
    const plot = new uPlot(opts, [xs, ...ys], holder);
    const entry = { name, plot, hasData: hasData(ys) };
    holder.setAttribute("data-has-data", String(entry.hasData));
    charts.push(entry);
    return entry;
  }

  // ---------- header ----------
  function header() {
    const head = document.getElementById("head");
    const first = runs[0].report;
    document.title = (runs.length > 1 ? "compare: " : "") + first.scenario + " · brownout";
    head.append(el("h1", { text: runs.length > 1 ? "Comparison: " + runs.map((r) => r.label).join(" vs ") : first.scenario }));
    if (first.description) head.append(el("div", { class: "muted", text: first.description }));
    const box = el("div", { class: "runs" });
    runs.forEach((r, i) => {
      const rep = r.report;
      const pass = rep.expectations.every((e) => e.pass);
      const total = rep.requests.find((o) => o.type === "total") || { total: 0 };
      const title = el("h2", null, (runs.length > 1 ? (i === 0 ? "A: " : "B: ") : "") + r.label + " · seed " + rep.seed,
        el("span", { class: "verdict " + (pass ? "pass" : "fail"), text: pass ? "PASS" : "FAIL" }));
      const figures = el("div", { class: "figures" });
      const fig = (label, value) => figures.append(el("div", null, el("b", { text: value }), el("span", { class: "muted", text: label })));
      fig("availability", (rep.availability * 100).toFixed(3) + "%");
      fig("requests", String(total.total));
      fig("p99 latency", fmtSpanUs(rep.latency.p99));
      fig("simulated", fmtTime(rep.duration / 1e6));
      fig("breaker trips", String(rep.dependencies.reduce((n, d) => n + (d.breaker_trips || 0), 0)));
      fig("mode changes", String(rep.modes.changes != null ? rep.modes.changes : "-"));
      const col = el("div", null, title, el("div", { class: "muted", text: rep.path + (rep.trace_digest ? " · trace " + rep.trace_digest : "") }), figures);
      box.append(col);
    });
    head.append(box);
  }

  function expectations() {
    const sec = document.getElementById("expectations");
    sec.append(el("h2", { text: "Expectations" }));
    const table = el("table");
    const headRow = el("tr", null, el("th", { text: "expectation" }), el("th", { text: "expected" }));
    runs.forEach((r, i) => {
      headRow.append(el("th", { text: (runs.length > 1 ? (i === 0 ? "A " : "B ") : "") + "measured" }));
      headRow.append(el("th", { text: "verdict" }));
    });
    table.append(el("thead", null, headRow));
    const body = el("tbody");
    const names = [];
    runs.forEach((r) => r.report.expectations.forEach((e) => { if (!names.includes(e.name)) names.push(e.name); }));
    for (const name of names) {
      const row = el("tr");
      const found = runs.map((r) => r.report.expectations.find((e) => e.name === name));
      const any = found.find((e) => e);
      row.append(el("td", { text: name }), el("td", { text: any.expected }));
      for (const e of found) {
        row.append(el("td", { text: e ? e.measured : "-" }));
        row.append(el("td", { class: e ? (e.pass ? "pass" : "fail") : "", text: e ? (e.pass ? "pass" : "FAIL") : "-" }));
      }
      body.append(row);
    }
    table.append(body);
    sec.append(table);
  }

  // ---------- charts ----------
  const controls = document.getElementById("controls");
  const kinds = [];
  runs.forEach((r) => r.report.series.requests.forEach((k) => { if (!kinds.includes(k.type)) kinds.push(k.type); }));
  let kindFilter = "all";

  function outcomeCounts(run, kind) {
    // Per outcome, counts per bucket summed over the chosen request types.
    const s = run.report.series;
    const sums = {};
    for (const k of s.requests) {
      if (kind !== "all" && k.type !== kind) continue;
      for (const o of k.outcomes) {
        const acc = sums[o.outcome] || (sums[o.outcome] = new Array(s.buckets).fill(0));
        o.counts.forEach((n, b) => { acc[b] += n; });
      }
    }
    return sums;
  }

  const outcomeBox = el("div");
  function outcomesCharts() {
    outcomeBox.replaceChildren();
    for (let i = charts.length - 1; i >= 0; i--) {
      if (charts[i].name.startsWith("outcomes")) { charts[i].plot.destroy(); charts.splice(i, 1); }
    }
    runs.forEach((run, i) => {
      const sums = outcomeCounts(run, kindFilter);
      const order = Object.keys(OUTCOME_COLOURS).filter((o) => sums[o]);
      // Stacked: each series is the sum of itself and those below it; the tallest is
      // drawn first, so each band shows its own outcome. Hover shows the outcome's own rate.
      const own = order.map((o) => rate(run, sums[o]));
      const stacked = [];
      let acc = xs.map(() => 0);
      for (const ys of own) {
        acc = acc.map((v, b) => (ys[b] == null ? v : v + ys[b]));
        stacked.push(acc.slice());
      }
      const seriesOpts = [];
      const ys = [];
      for (let j = order.length - 1; j >= 0; j--) {
        const raw = own[j];
        seriesOpts.push({
          label: order[j],
          stroke: OUTCOME_COLOURS[order[j]],
          fill: OUTCOME_COLOURS[order[j]],
          width: 0,
          points: { show: false },
          value: (u, v, si, idx) => (idx == null || raw[idx] == null ? "-" : raw[idx].toFixed(1) + "/s"),
        });
        ys.push(stacked[j]);
      }
      const title = "Replies by outcome, per second" + (kindFilter === "all" ? "" : " (" + kindFilter + ")") +
        (runs.length > 1 ? (i === 0 ? " · A: " : " · B: ") + run.label : "");
      chart(outcomeBox, "outcomes-" + i, title, seriesOpts, ys, { axes: [{ size: 60, label: "req/s" }] });
    });
  }

  function latencyAndAvailability(box) {
    const seriesOpts = [];
    const ys = [];
    runs.forEach((run, i) => {
      const s = run.report.series;
      const tag = runs.length > 1 ? (i === 0 ? " A" : " B") : "";
      seriesOpts.push({ label: "availability" + tag, stroke: "#1f4e9c", width: 1.5, dash: RUN_DASH[i], points: { show: false },
        value: (u, v) => (v == null ? "-" : v.toFixed(3) + "%") });
      ys.push(onGrid(run, s.availability.map((a) => (a == null ? null : a * 100))));
    });
    chart(box, "availability", "Availability per bucket (%)", seriesOpts, ys, {
      height: 140,
      scales: { y: { range: (u, min, max) => [Math.min(min == null ? 99 : min, 99), 100] } },
      axes: [{ size: 60, label: "%" }],
    });
    const lat = [];
    const latYs = [];
    runs.forEach((run, i) => {
      const s = run.report.series;
      const tag = runs.length > 1 ? (i === 0 ? " A" : " B") : "";
      lat.push({ label: "p50" + tag, stroke: "#00897b", width: 1.5, dash: RUN_DASH[i], points: { show: false }, value: (u, v) => (v == null ? "-" : v.toFixed(1) + " ms") });
      latYs.push(onGrid(run, s.latency_p50.map((v) => (v == null ? null : v / 1e3))));
      lat.push({ label: "p99" + tag, stroke: "#c2185b", width: 1.5, dash: RUN_DASH[i], points: { show: false }, value: (u, v) => (v == null ? "-" : v.toFixed(1) + " ms") });
      latYs.push(onGrid(run, s.latency_p99.map((v) => (v == null ? null : v / 1e3))));
    });
    chart(box, "latency", "Reply latency (ms)", lat, latYs, { axes: [{ size: 60, label: "ms" }] });
  }

  function dependencyLanes(box) {
    const names = [];
    runs.forEach((r) => r.report.series.dependencies.forEach((d) => { if (!names.includes(d.name)) names.push(d.name); }));
    for (const name of names) {
      const lane = el("div", { class: "lane" });
      lane.append(el("h2", { text: "Dependency: " + name }));
      const key = el("div");
      for (const [state, colour] of Object.entries(BREAKER_COLOURS)) {
        key.append(el("span", { class: "key" }, el("i", { style: "background:" + colour }), "breaker " + state.replace("_", "-")));
      }
      key.append(el("span", { class: "key" }, el("i", { style: "background:rgba(198,40,40,0.25)" }), "fault window"));
      lane.append(key);
      box.append(lane);
      const deps = runs.map((r) => r.report.series.dependencies.find((d) => d.name === name));
      const seriesOpts = [];
      const ys = [];
      deps.forEach((d, i) => {
        if (!d) return;
        const tag = runs.length > 1 ? (i === 0 ? " A" : " B") : "";
        seriesOpts.push({ label: "calls/s" + tag, stroke: "#1f4e9c", width: 1.5, dash: RUN_DASH[i], points: { show: false }, value: (u, v) => fmtNum(v, 1) });
        ys.push(rate(runs[i], d.calls));
        seriesOpts.push({ label: "failures/s" + tag, stroke: "#c62828", width: 1.5, dash: RUN_DASH[i], points: { show: false }, value: (u, v) => fmtNum(v, 1) });
        ys.push(rate(runs[i], d.failures));
        const states = onGrid(runs[i], d.breaker);
        seriesOpts.push({ label: "breaker" + tag, stroke: "#888", paths: () => null, points: { show: false },
          value: (u, v, si, idx) => (idx == null || states[idx] == null ? "-" : states[idx].replace("_", "-")) });
        ys.push(states.map(() => null));
      });
      const stateRows = () => deps.map((d, i) => (d ? onGrid(runs[i], d.breaker) : null));
      const rows = stateRows();
      chart(lane, "calls-" + name, "Calls and failures per second, breaker state (top strip" + (runs.length > 1 ? "s: A, B" : "") + ")", seriesOpts, ys, {
        draw: strips(() => rows, BREAKER_COLOURS, 8),
        scales: { y: { range: (u, min, max) => [0, Math.max(1, max) * 1.18] } },
        axes: [{ size: 60, label: "calls/s" }],
      });
      const s2 = [];
      const y2 = [];
      deps.forEach((d, i) => {
        if (!d) return;
        const tag = runs.length > 1 ? (i === 0 ? " A" : " B") : "";
        s2.push({ label: "oldest stale served" + tag, stroke: "#f9a825", width: 1.5, dash: RUN_DASH[i], scale: "age", points: { show: false }, value: (u, v) => (v == null ? "-" : v.toFixed(1) + " s") });
        y2.push(onGrid(runs[i], d.stale_age_max.map((a) => (a == null ? null : a / 1e6))));
        s2.push({ label: "queue depth" + tag, stroke: "#5e35b1", width: 1.5, dash: RUN_DASH[i], scale: "depth", points: { show: false }, value: (u, v) => fmtNum(v, 0) });
        y2.push(onGrid(runs[i], d.queue_depth));
      });
      if (!hasData(y2)) {
        lane.append(el("div", { class: "muted", text: "No stale entry served and no write queued" + (runs.length > 1 ? " in either run." : " in this run.") }));
        continue;
      }
      chart(lane, "staleness-" + name, "Oldest stale entry served (s, left) and write queue depth (right)", s2, y2, {
        height: 140,
        scales: { age: { range: (u, min, max) => [0, Math.max(1, max || 0)] }, depth: { range: (u, min, max) => [0, Math.max(1, max || 0)] } },
        axes: [{ scale: "age", size: 60, label: "stale age s" }, { scale: "depth", side: 1, size: 60, grid: { show: false } }],
      });
    }
  }

  function modeAndCpu(box) {
    const key = el("div");
    for (const [mode, colour] of Object.entries(MODE_STRIP)) key.append(el("span", { class: "key" }, el("i", { style: "background:" + colour }), mode));
    box.append(el("h2", { text: "Mode and CPU" }), key);
    const seriesOpts = [];
    const ys = [];
    const rows = [];
    runs.forEach((run, i) => {
      const s = run.report.series;
      const tag = runs.length > 1 ? (i === 0 ? " A" : " B") : "";
      seriesOpts.push({ label: "cpu %" + tag, stroke: "#37474f", width: 1.5, dash: RUN_DASH[i], points: { show: false }, value: (u, v) => (v == null ? "-" : v.toFixed(1) + "%") });
      ys.push(onGrid(run, s.cpu));
      const modes = onGrid(run, s.mode);
      rows.push(modes);
      seriesOpts.push({ label: "mode" + tag, stroke: "#888", paths: () => null, points: { show: false },
        value: (u, v, si, idx) => (idx == null || modes[idx] == null ? "-" : modes[idx]) });
      ys.push(modes.map(() => null));
    });
    const anyCpu = ys.some((y) => y.some((v) => v != null));
    const entry = chart(box, "mode", "Mode (top strip" + (runs.length > 1 ? "s: A, B" : "") + ") and CPU %", seriesOpts, ys, {
      draw: strips(() => rows, MODE_STRIP, 10),
      scales: { y: { range: (u, min, max) => [0, Math.max(100, max || 0) * 1.12] } },
      axes: [{ size: 60, label: "cpu %" }],
    });
    // The mode strip is data even where no CPU was sampled.
    entry.hasData = anyCpu || rows.some((r) => r.some((m) => m != null));
    entry.plot.root.parentNode.setAttribute("data-has-data", String(entry.hasData));
  }

  function timeline() {
    const sec = document.getElementById("timeline");
    sec.append(el("h2", { text: "Timeline of transitions" }));
    const table = el("table");
    const head = el("tr", null, el("th", { text: "time" }));
    if (runs.length > 1) head.append(el("th", { text: "run" }));
    head.append(el("th", { text: "what" }), el("th", { text: "transition" }));
    table.append(el("thead", null, head));
    const body = el("tbody");
    const rows = [];
    runs.forEach((r, i) => r.report.timeline.forEach((t) => rows.push({ run: i, ...t })));
    rows.sort((a, b) => a.t - b.t || a.run - b.run);
    for (const t of rows) {
      const tr = el("tr", { "data-t": String(t.t) }, el("td", { text: fmtTime(t.t / 1e6) }));
      if (runs.length > 1) tr.append(el("td", { text: t.run === 0 ? "A" : "B" }));
      tr.append(el("td", { text: t.what }), el("td", { text: t.text }));
      tr.addEventListener("click", () => {
        body.querySelectorAll("tr.active").forEach((x) => x.classList.remove("active"));
        tr.classList.add("active");
        const at = t.t / 1e6;
        const half = Math.max(10 * bucketSeconds, grid.end / 1e6 / 40);
        const min = Math.max(0, at - half), max = Math.min(grid.end / 1e6, at + half);
        for (const c of charts) c.plot.setScale("x", { min, max });
        const first = charts[0].plot;
        first.setCursor({ left: first.valToPos(at, "x"), top: 10 });
        document.getElementById("charts").scrollIntoView({ behavior: "auto" });
      });
      body.append(tr);
    }
    table.append(body);
    const omitted = runs.map((r) => r.report.timeline_omitted).reduce((a, b) => a + b, 0);
    sec.append(el("div", { class: "scroll" }, table));
    if (omitted > 0) sec.append(el("div", { class: "muted", text: omitted + " later transitions left out of the report (see the trace)." }));
  }

  try {
    header();
    expectations();
    if (kinds.length > 1) {
      const pick = el("select", { id: "kind" }, el("option", { value: "all", text: "all request types" }),
        ...kinds.map((k) => el("option", { value: k, text: k })));
      pick.addEventListener("change", () => { kindFilter = pick.value; outcomesCharts(); });
      controls.append(el("label", null, "Outcomes of ", pick));
    }
    const box = document.getElementById("charts");
    box.append(outcomeBox);
    outcomesCharts();
    latencyAndAvailability(box);
    dependencyLanes(box);
    modeAndCpu(box);
    timeline();
    window.addEventListener("resize", () => { for (const c of charts) c.plot.setSize({ width: width(), height: c.plot.height }); });
  } catch (e) {
    errors.push(String(e && e.stack ? e.stack : e));
  }
  // Read by the browser test: how many charts drew, which had no data, and any error.
  document.body.setAttribute("data-charts", String(charts.length));
  document.body.setAttribute("data-empty", charts.filter((c) => !c.hasData).map((c) => c.name).join(" "));
  document.body.setAttribute("data-errors", errors.join(" | "));
  document.body.setAttribute("data-status", errors.length ? "error" : "ok");
})();
