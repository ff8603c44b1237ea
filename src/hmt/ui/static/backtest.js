// The backtest page: triggers (yours, or a JSON file) replayed over history (the broker's
// candles, a CSV, the engine's tick recording) by POST /backtests; the run's progress from
// GET /backtests/{id}; then its summary, a row per trigger, and the charts: each
// instrument's prices with the trigger lines and the fills, and the equity curve.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const LC = window.LightweightCharts;
  const IST_S = 330 * 60;  // the chart library labels UTC: times are shifted to read IST
  let charts = [];

  const chartTime = (iso) => Math.floor(Date.parse(iso) / 1000) + IST_S;
  // A stored trigger's id is a UUID: its first 8 characters name it on the page.
  const short = (id) => (id.length > 12 ? id.slice(0, 8) : id);
  const money = (v) => (v === null || v === undefined ? "–" : Number(v).toFixed(2));

  function showSource() {
    const source = $("bt-source").value;
    $("bt-csv-field").hidden = source !== "csv";
    $("bt-instruments-field").hidden = source !== "candles";
    $("bt-interval-field").hidden = source === "recording";
    $("bt-json-field").hidden = $("bt-triggers").value !== "json";
  }

  function fail(items) {
    $("bt-errors").replaceChildren(...items.map((text) => hmt.el("li", text)));
  }

  async function body() {
    const out = { source: $("bt-source").value, interval: $("bt-interval").value,
      slippage_ticks: Number($("bt-slippage").value || 0) };
    const start = hmt.fromIst($("bt-from").value), end = hmt.fromIst($("bt-to").value);
    if (start) out.from = start;
    if (end) out.to = end;
    if ($("bt-triggers").value === "json") {
      const file = $("bt-triggers-file").files[0];
      if (!file) throw new Error("triggers: choose a JSON file");
      let document;
      try { document = JSON.parse(await file.text()); } catch (error) {
        throw new Error(`triggers: ${file.name} is not JSON (${error.message})`);
      }
      if (document && !Array.isArray(document) && Array.isArray(document.triggers)) {
        document = document.triggers;
      }
      out.triggers = Array.isArray(document) ? document : [document];
    } else out.triggers = null;
    if (out.source === "csv") {
      const file = $("bt-csv-file").files[0];
      if (!file) throw new Error("csv: choose a CSV file");
      out.csv = await file.text();
    }
    if (out.source === "candles") {
      out.instruments = $("bt-instruments").value.split(",").map((s) => s.trim()).filter(Boolean);
    }
    return out;
  }

  async function run(event) {
    event.preventDefault();
    fail([]);
    $("bt-run").disabled = true;
    try {
      let job;
      try {
        job = await hmt.api("/backtests", { method: "POST", body: await body() });
      } catch (error) {
        if (error.status === 401) { hmt.signOut(); return; }
        const errors = (error.body && error.body.errors) || [];
        fail(errors.length ? errors.map((e) => `${e.field}: ${e.message}`) : [error.message]);
        $("bt-status").textContent = "";
        return;
      }
      $("bt-progress").hidden = false;
      while (job.state === "running") {
        progress(job);
        await new Promise((resolve) => setTimeout(resolve, 300));
        job = await hmt.api(`/backtests/${encodeURIComponent(job.id)}`);
      }
      progress(job);
      if (job.state === "failed") { fail([`the replay failed: ${job.error}`]); return; }
      render(job);
    } catch (error) {
      fail([error.message]);
    } finally {
      $("bt-run").disabled = false;
    }
  }

  function progress(job) {
    $("bt-progress").max = Math.max(1, job.total);
    $("bt-progress").value = job.done;
    const pct = job.total ? Math.floor((100 * job.done) / job.total) : 100;
    $("bt-status").textContent = job.state === "running"
      ? `Replaying: ${job.done.toLocaleString("en-IN")} of ${job.total.toLocaleString("en-IN")} rows (${pct}%)`
      : job.state === "done" ? `Done: ${job.total.toLocaleString("en-IN")} rows replayed` : "Failed";
    $("bt-status").dataset.state = job.state;
  }

  function render(job) {
    const report = job.report;
    const s = report.summary;
    const stat = (name, value, id) => {
      const div = hmt.el("div");
      const dd = hmt.el("dd", value);
      dd.id = id;
      div.append(hmt.el("dt", name), dd);
      return div;
    };
    $("bt-summary").replaceChildren(
      stat("Fired", `${s.fired} of ${s.triggers}`, "bt-fired"),
      stat("Ambiguous", s.ambiguous, "bt-ambiguous"),
      stat("Orders filled", `${s.filled} of ${s.orders}`, "bt-filled"),
      stat("P&L (₹)", money(s.pnl), "bt-pnl"),
      stat("Charges (₹)", money(s.charges), "bt-charges"),
      stat("Net (₹)", money(s.net_pnl), "bt-net"),
      stat("Winners / losers", `${s.winners} / ${s.losers}`, "bt-winners"),
      stat("Data", `${report.data.kind}, ${report.data.rows} rows · ${hmt.when(report.data.first)} → ${hmt.when(report.data.last)}`, "bt-data"),
    );
    const rows = report.triggers.map((t) => {
      const fired = t.fired || {};
      const fills = t.orders.filter((o) => o.fill_price !== null)
        .map((o) => `${o.transaction_type} ${o.quantity} ${o.instrument} @ ${hmt.rupees(o.fill_price)}`).join("; ");
      const tr = document.createElement("tr");
      tr.dataset.id = t.id;
      const cells = [
        hmt.el("td", `${short(t.id)} · ${t.trigger_type}`), hmt.el("td", t.watch),
        hmt.el("td"), hmt.el("td", fired.at ? hmt.when(fired.at) : "–"),
        hmt.el("td", fired.leg ? `${fired.leg} · ${fired.role}` : "–"),
        hmt.el("td", fired.price === null || fired.price === undefined ? "–" : hmt.rupees(fired.price), "num"),
        hmt.el("td", fills || "–"), hmt.el("td", money(t.pnl), "num"),
        hmt.el("td", money(t.charges), "num"), hmt.el("td", money(t.net_pnl), "num"),
        hmt.el("td", `${money(t.mae)} / ${money(t.mfe)}`, "num"),
        hmt.el("td", fired.ambiguous ? "ambiguous: stop taken first" : ""),
      ];
      cells[0].title = t.id;
      cells[2].append(hmt.el("span", t.status, `pill ${t.status}`));
      cells[2].dataset.col = "status";
      cells[5].dataset.col = "price";
      tr.append(...cells);
      return tr;
    });
    $("bt-table").tBodies[0].replaceChildren(...rows);
    $("bt-result").hidden = false;
    draw(report, job.series);
  }

  function makeChart(container, height) {
    return LC.createChart(container, {
      autoSize: true,
      layout: { background: { color: "#ffffff" }, textColor: "#1b1f24", attributionLogo: false },
      timeScale: { timeVisible: true, secondsVisible: false, rightOffset: 2 },
      localization: { priceFormatter: (p) => hmt.rupees(p) },
      ...(height ? { height } : {}),
    });
  }

  function draw(report, series) {
    for (const chart of charts) chart.remove();
    charts = [];
    if (!LC) { $("page-error").textContent = "The chart library did not load."; return; }
    $("bt-charts-card").hidden = false;
    const holder = $("bt-charts");
    holder.replaceChildren();
    for (const [name, points] of Object.entries(series)) {
      const box = hmt.el("div", null, "chart");
      box.dataset.instrument = name;
      box.setAttribute("aria-label", `${name} prices`);
      holder.append(hmt.el("h3", name), box);
      const chart = makeChart(box);
      charts.push(chart);
      const levels = report.triggers.filter((t) => t.watch === name)
        .flatMap((t) => t.legs.filter((leg) => leg.price !== undefined && leg.price !== null)
          .map((leg) => ({ id: t.id, leg: leg.leg, price: leg.price })));
      const line = chart.addSeries(LC.LineSeries, {
        color: "#1f6feb", lineWidth: 2, title: name,
        // Keep every trigger line in view, not only the prices the history reached.
        autoscaleInfoProvider: (original) => {
          const range = original();
          if (!levels.length || !range) return range;
          for (const level of levels) {
            range.priceRange.minValue = Math.min(range.priceRange.minValue, level.price);
            range.priceRange.maxValue = Math.max(range.priceRange.maxValue, level.price);
          }
          return range;
        },
      });
      const data = new Map();  // one point a second, the latest wins
      for (const [iso, value] of points) data.set(chartTime(iso), value);
      const marks = [];
      for (const t of report.triggers) {
        for (const o of t.orders) {
          if (o.instrument !== name || o.fill_price === null || !o.filled_at) continue;
          const time = chartTime(o.filled_at);
          if (!data.has(time)) data.set(time, o.fill_price);
          const buy = o.transaction_type === "BUY";
          marks.push({ time, position: buy ? "belowBar" : "aboveBar", color: buy ? "#0f7b3f" : "#c62828",
            shape: buy ? "arrowUp" : "arrowDown", text: `${short(t.id)} ${o.transaction_type} ${o.quantity} @ ${hmt.rupees(o.fill_price)}` });
        }
      }
      line.setData([...data.entries()].sort((a, b) => a[0] - b[0]).map(([time, value]) => ({ time, value })));
      marks.sort((a, b) => a.time - b.time);
      LC.createSeriesMarkers(line, marks);
      box.dataset.fills = String(marks.length);
      for (const level of levels) {
        line.createPriceLine({ price: level.price, color: level.leg === 1 ? "#c62828" : "#0f7b3f",
          lineWidth: 1, lineStyle: LC.LineStyle.Dashed, axisLabelVisible: true, title: `${short(level.id)} leg ${level.leg}` });
      }
      box.dataset.lines = String(levels.length);
      chart.timeScale().fitContent();
    }
    const equity = makeChart($("bt-equity"));
    charts.push(equity);
    const curve = equity.addSeries(LC.LineSeries, { color: "#6b21a8", lineWidth: 2, title: "net ₹" });
    const points = new Map();
    for (const [iso, value] of report.equity) points.set(chartTime(iso), value);
    curve.setData([...points.entries()].sort((a, b) => a[0] - b[0]).map(([time, value]) => ({ time, value })));
    $("bt-equity").dataset.points = String(points.size);
    $("bt-equity-note").textContent = points.size ? "" : "No fills: nothing to mark, the equity stays at 0.";
    equity.timeScale().fitContent();
  }

  document.addEventListener("DOMContentLoaded", () => {
    if (!hmt.token()) { window.location.assign("/ui/"); return; }
    $("bt-source").addEventListener("change", showSource);
    $("bt-triggers").addEventListener("change", showSource);
    $("bt-form").addEventListener("submit", run);
    showSource();
  });
})();
