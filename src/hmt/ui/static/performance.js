// The performance page: the engine's figures now (the stream's `engine` event, every
// second) and over time (GET /performance/history: 10-s rows for an hour, one a minute
// before that, a day at most). Live view: the last 15 minutes, then a point a second.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const LC = window.LightweightCharts;
  const IST_S = 330 * 60;  // the chart library labels UTC: times are shifted to read IST
  const COLORS = ["#1f6feb", "#0f7b3f", "#8a5a00", "#c62828", "#6b21a8", "#0e7490"];
  const VERDICT_COLORS = { ok: "#0f7b3f", degraded: "#d79b00", down: "#c62828", disabled: "#9ca3af" };
  const LIMITS = { per_second: 10, per_minute: 200, per_day: 3000 };  // Kite's, until the engine says
  let view = "live", last = null, charts = {}, generation = 0;

  function chartIn(id) {
    const chart = LC.createChart($(id), {
      autoSize: true,
      layout: { background: { color: "#ffffff" }, textColor: "#1b1f24", attributionLogo: false },
      timeScale: { timeVisible: true, secondsVisible: true, rightOffset: 2 },
    });
    return { chart, series: new Map(), data: new Map() };
  }

  // One named line (or histogram) of a chart; points keyed by time, the latest wins.
  function put(chartName, name, time, value, options = {}) {
    const c = charts[chartName];
    if (!c.series.has(name)) {
      const kind = options.histogram ? LC.HistogramSeries : LC.LineSeries;
      const color = COLORS[c.series.size % COLORS.length];
      c.series.set(name, c.chart.addSeries(kind, { color, lineWidth: 2, title: name,
        priceLineVisible: false, ...(options.series || {}) }));
      c.data.set(name, new Map());
    }
    if (value === null || value === undefined || !Number.isFinite(Number(value))) return;
    const point = { time, value: Number(value) };
    if (options.color) point.color = options.color;
    c.data.get(name).set(time, point);
  }

  function draw() {
    for (const c of Object.values(charts)) {
      for (const [name, points] of c.data) {
        c.series.get(name).setData([...points.values()].sort((a, b) => a.time - b.time));
      }
    }
  }

  function clear() {
    for (const c of Object.values(charts)) {
      for (const series of c.series.values()) c.chart.removeSeries(series);
      c.series.clear();
      c.data.clear();
    }
  }

  const chartTime = (iso) => Math.floor(Date.parse(iso) / 1000) + IST_S;
  const ms = (us) => (us === null || us === undefined ? null : us / 1000);

  function plotRow(row, limits) {
    const t = chartTime(row.at);
    for (const [link, rate] of Object.entries(row.ticks_per_s_by_connection || {})) {
      put("ticks", `connection ${link}`, t, rate);
    }
    put("latency", "tick→order p50", t, ms(row.tick_to_order_p50_us));
    put("latency", "tick→order p99", t, ms(row.tick_to_order_p99_us));
    put("latency", "evaluate p99", t, ms(row.evaluate_p99_us));
    put("latency", "claim p99", t, ms(row.claim_p99_us));
    put("latency", "change-feed lag", t, row.change_feed_lag_ms);
    put("orders", "placed", t, row.orders_placed);
    put("orders", "failed", t, row.orders_failed);
    put("orders", "retried", t, row.order_retries);
    put("orders", "queued", t, row.orders_queued);
    for (const [key, label] of [["per_second", "per second"], ["per_minute", "per minute"], ["per_day", "per day"]]) {
      const left = row[`headroom_${key}`];
      put("headroom", label, t, left === null || left === undefined ? null : (100 * left) / limits[key]);
    }
    put("health", "verdict", t, 1, { histogram: true, color: VERDICT_COLORS[row.health] || "#9ca3af",
      series: { priceFormat: { type: "volume" } } });
    put("health", "reconnects", t, row.reconnects);
  }

  function limitsNow() {
    const limits = { ...LIMITS };
    for (const [key, value] of Object.entries((last && last.rate_limit_headroom) || {})) limits[key] = value.limit;
    return limits;
  }

  async function loadHistory(hours) {
    const mine = ++generation;
    let body;
    try {
      body = await hmt.api(`/performance/history?hours=${hours}`);
    } catch (error) {
      if (error.status === 401) { hmt.signOut(); return; }
      $("page-error").textContent = error.message;
      return;
    }
    if (mine !== generation) return;  // the view changed meanwhile
    clear();
    const limits = limitsNow();
    for (const row of body.samples) plotRow(row, limits);
    draw();
    for (const c of Object.values(charts)) c.chart.timeScale().fitContent();
    const rows = body.samples.length;
    const from = rows ? ` from ${hmt.when(body.samples[0].at)}` : "";
    $("p-range").textContent = view === "live"
      ? `Live: the last 15 minutes (${rows} rows${from}), then every second.`
      : `Last 24 hours: ${rows} rows${from}` + (body.sample_s ? `, a row every ${body.sample_s} s for the last hour, one a minute before.` : " (history is off: HMT_METRICS_SAMPLE_S=0).");
    $("p-range").dataset.rows = String(rows);
  }

  const us = (v) => (v === null || v === undefined ? "–" : v < 1000 ? `${v} µs` : `${(v / 1000).toFixed(2)} ms`);
  const pair = (s) => (s ? `${us(s.p50)} / ${us(s.p99)}` : "–");

  function onEngine(d) {
    const previous = last;
    last = d;
    const health = d.health || {};
    $("p-health").textContent = health.status || "–";
    $("p-health").className = `pill ${health.status || ""}`;
    $("p-reasons").textContent = (health.reasons || []).join("; ");
    const ws = d.ws || {};
    const byLink = ws.ticks_by_connection || {};
    const elapsed = previous ? Math.max(0.001, (d.uptime_s - previous.uptime_s)) : null;
    const rates = Object.entries(byLink).map(([link, count]) => {
      const before = previous && previous.ws && (previous.ws.ticks_by_connection || {})[link];
      const rate = elapsed && before !== undefined ? (count - before) / elapsed : null;
      return [link, rate];
    });
    const perLink = rates.map(([link, rate]) => `#${link} ${rate === null ? "–" : rate.toFixed(1)}`).join(" · ");
    $("p-ticks").textContent = `${Number(d.ticks_per_s || 0).toFixed(1)}${perLink ? ` (${perLink})` : ""}`;
    $("p-t2o").textContent = pair(d.tick_to_order_us);
    $("p-evaluate").textContent = pair(d.evaluate_us);
    $("p-claim").textContent = pair(d.claim_us);
    $("p-orders").textContent = `${d.triggered_orders} placed · ${d.failed_orders} failed · `
      + `${d.order_retries} retried · ${d.orders_queued} queued`;
    const h = d.rate_limit_headroom || {};
    const left = (k) => (h[k] ? `${h[k].left}/${h[k].limit}` : "–");
    $("p-headroom").textContent = `${left("per_second")} · ${left("per_minute")} · ${left("per_day")}`;
    $("p-lag").textContent = `${d.change_feed_lag_ms ?? 0} ms`;
    $("p-reconnects").textContent = String(ws.reconnects ?? 0);
    if (view !== "live" || !previous) return;
    const t = Math.floor(Date.now() / 1000) + IST_S;
    const delta = (key) => Math.max(0, d[key] - previous[key]);
    plotRow({
      at: new Date((t - IST_S) * 1000).toISOString(),
      ticks_per_s_by_connection: Object.fromEntries(rates.filter(([, r]) => r !== null)),
      tick_to_order_p50_us: (d.tick_to_order_us || {}).p50,
      tick_to_order_p99_us: (d.tick_to_order_us || {}).p99,
      evaluate_p99_us: (d.evaluate_us || {}).p99,
      claim_p99_us: (d.claim_us || {}).p99,
      change_feed_lag_ms: d.change_feed_lag_ms,
      orders_placed: delta("triggered_orders"),
      orders_failed: delta("failed_orders"),
      order_retries: delta("order_retries"),
      orders_queued: d.orders_queued,
      headroom_per_second: h.per_second && h.per_second.left,
      headroom_per_minute: h.per_minute && h.per_minute.left,
      headroom_per_day: h.per_day && h.per_day.left,
      health: health.status,
      reconnects: Math.max(0, (ws.reconnects || 0) - ((previous.ws || {}).reconnects || 0)),
    }, limitsNow());
    draw();
  }

  function show(next) {
    view = next;
    $("view-live").setAttribute("aria-pressed", String(next === "live"));
    $("view-day").setAttribute("aria-pressed", String(next === "day"));
    $("view-live").className = next === "live" ? "small" : "small secondary";
    $("view-day").className = next === "day" ? "small" : "small secondary";
    loadHistory(next === "live" ? 0.25 : 24);
  }

  document.addEventListener("DOMContentLoaded", async () => {
    if (!hmt.token()) { window.location.assign("/ui/"); return; }
    if (!LC) { $("page-error").textContent = "The chart library did not load."; return; }
    for (const name of ["ticks", "latency", "orders", "headroom", "health"]) charts[name] = chartIn(`c-${name}`);
    $("view-live").addEventListener("click", () => show("live"));
    $("view-day").addEventListener("click", () => show("day"));
    show("live");
    hmt.stream((name, data) => { if (name === "engine") onEngine(data); }, hmt.liveBadge);
  });
})();
