// One trigger: its details, a live price chart with its trigger lines and fire point, its history.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const id = decodeURIComponent(window.location.pathname.split("/").pop());
  const LC = window.LightweightCharts;
  let trigger = null, chart = null, series = null, lastTime = 0, lines = [], markers = null;
  let candles = null, history = null;  // the day's candles under the live line, fetched once
  // The chart library labels its axis in UTC: its times are shifted by IST's fixed offset
  // so the axis reads IST like every other time on the page.
  const IST_S = 330 * 60;
  const points = new Map();  // chart time (s) -> price: one point per second, the latest wins

  async function load() {
    try {
      trigger = await hmt.api(`/triggers/${encodeURIComponent(id)}`);
    } catch (error) {
      if (error.status === 401) { hmt.signOut(); return; }
      $("page-error").textContent = error.status === 404 ? "No such trigger of yours." : error.message;
      return;
    }
    render();
  }

  function render() {
    const t = trigger;
    document.title = `hmt · ${hmt.traded(t).tradingsymbol} ${t.trigger_type}`;
    $("detail").hidden = false;
    $("history-card").hidden = false;
    const traded = hmt.traded(t);
    $("d-symbol").textContent = `${traded.exchange}:${traded.tradingsymbol}`;
    $("d-status").textContent = t.status;
    $("d-status").className = `pill ${t.status}`;
    const count = hmt.orderCount(t);
    if (count > 1) $("d-symbol").textContent += ` · ${count} orders`;
    const known = (...parts) => parts.filter((p) => p !== null && p !== undefined).join(" · ") || "–";
    // A basket's v1 fields mirror its first order only: the Orders table has them all.
    $("d-type").textContent = count > 1 ? t.trigger_type : known(t.trigger_type, t.order_type, t.product);
    $("d-side").textContent = count > 1 ? "see Orders" : known(t.transaction_type, t.quantity);
    // A time leg fires with no price (null, or 0 where the feed had none): say when only.
    const price = firedPrice(t) === null ? "" : `₹${hmt.rupees(t.triggered_price)} `;
    $("d-fired").textContent = t.triggered_at
      ? `${price}(leg ${t.triggered_leg}) · ${hmt.when(t.triggered_at)}` : "–";
    $("d-order").textContent = t.order_id || "–";
    $("d-error").textContent = t.error_message || "";
    const watched = hmt.watched(t);
    $("d-watch").textContent = `${watched.exchange}:${watched.tradingsymbol}`;
    $("d-prices").textContent = t.legs ? t.legs.map(hmt.condition).join(" / ") : hmt.prices(t);
    $("d-not-before").textContent = hmt.when(t.not_before);
    $("d-expires").textContent = hmt.when(t.expires_at);
    $("d-on-gap").textContent = t.on_gap || "fire";
    $("d-account").textContent = t.account || "default";  // the broker account it trades through
    $("d-created").textContent = hmt.when(t.created_at);
    renderTrail(t);
    renderOrders(t);
    renderHistory(t.events || []);
    drawLines();
  }

  // A trailing leg's stop as the engine holds it now (or as last written), with its best.
  function trailLeg(t) {
    return (t.legs || []).map((l, i) => ({ leg: i + 1, trail: l.condition && l.condition.trail }))
      .find((x) => x.trail);
  }

  function renderTrail(t) {
    const found = trailLeg(t);
    $("d-trail-row").hidden = !found;
    if (!found) return;
    const s = found.trail.state;
    if (!s || s.stop === null || s.stop === undefined) {
      $("d-stop").textContent = "not active yet";
      return;
    }
    const source = s.live ? "live" : "last written";
    const written = s.written_at ? ` · written ${hmt.when(s.written_at)}` : "";
    $("d-stop").textContent = `₹${hmt.rupees(s.stop)} (best ₹${hmt.rupees(s.best)}, ${source})${written}`;
  }

  // While a trailing stop can still fire, its stop is read again every second: the chart's
  // stop line and the Current stop follow it.
  function followStop() {
    setInterval(async () => {
      if (!trigger || !trailLeg(trigger) || !["active", "paused"].includes(trigger.status)) return;
      try {
        trigger = await hmt.api(`/triggers/${encodeURIComponent(id)}`);
      } catch { return; }
      renderTrail(trigger);
      drawLines();
    }, 1000);
  }

  // Each order of each leg with its own state; a v1 record (no `legs`) is its one order.
  function renderOrders(t) {
    const legs = t.legs || [t.trigger_price_1, t.trigger_price_2]
      .filter((p) => p !== null && p !== undefined).map((price, i) => ({
        condition: { price },
        orders: [{ exchange: t.exchange, tradingsymbol: t.tradingsymbol, transaction_type: t.transaction_type,
          quantity: t.quantity, product: t.product, order_type: t.order_type,
          price: i === 0 ? t.limit_price_1 : t.limit_price_2, trigger_price: null, validity: "DAY",
          ...(t.triggered_leg === i + 1 ? { status: t.status, order_id: t.order_id,
            tag: t.broker_tag, error_message: t.error_message } : {}) }],
      }));
    const rows = [];
    legs.forEach((leg, i) => (leg.orders || []).forEach((o, j) => {
      const tr = document.createElement("tr");
      tr.dataset.leg = String(i + 1);
      tr.dataset.position = String(j);
      const status = hmt.el("td");
      status.append(hmt.el("span", o.status || "–", `pill ${o.status || ""}`.trim()));
      status.dataset.col = "status";
      const money = (v) => (v === null || v === undefined ? "–" : hmt.rupees(v));
      const place = hmt.el("td", `${i + 1} · ${j + 1}`);
      if (j === 0) place.append(hmt.el("div", hmt.condition(leg), "muted small"));  // the leg's
      const cells = [
        place,
        hmt.el("td", `${o.exchange}:${o.tradingsymbol}`),
        hmt.el("td", `${o.transaction_type} ${o.quantity} · ${o.product} · ${o.order_type} · ${o.validity || "DAY"}`),
        hmt.el("td", `${money(o.price)} / ${money(o.trigger_price)}`, "num"),
        status, hmt.el("td", o.order_id || "–"), hmt.el("td", o.tag || "–", "tag"),
        hmt.el("td", o.error_message || ""),
      ];
      cells[5].dataset.col = "order_id";
      cells[6].dataset.col = "tag";
      cells[7].dataset.col = "message";
      tr.append(...cells);
      rows.push(tr);
    }));
    $("orders").tBodies[0].replaceChildren(...rows);
    $("orders-card").hidden = false;
  }

  // A bracket's entry page (issue 14): entry -> fill -> exits, each with its status. Its
  // row is not streamed: it is read again every second while fills or exits can change.
  let bracket = null, bracketTimer = null;
  const LIVE_EXIT = ["active", "paused", "triggered"];

  async function loadBracket() {
    try {
      bracket = await hmt.api(`/brackets/${encodeURIComponent(id)}`);
    } catch (error) {
      if (error.status !== 404) $("b-error").textContent = error.message;
      return;
    }
    renderBracket();
    clearTimeout(bracketTimer);
    const live = bracket.status === "open" || bracket.status === "armed"
      || bracket.exits.some((e) => LIVE_EXIT.includes(e.status));
    if (live) bracketTimer = setTimeout(loadBracket, 1000);
  }

  function renderBracket() {
    const b = bracket, e = b.entry;
    $("bracket-card").hidden = false;
    $("b-status").textContent = b.status;
    $("b-status").className = `pill ${b.status}`;
    $("b-entry").textContent = `${e.status} · order ${e.order_id || "–"} · broker ${b.entry_status || "–"}`;
    $("b-fill").textContent = `${b.filled} filled · ${b.armed} armed`;
    $("b-prices").textContent = `target ₹${hmt.rupees(b.target)} · stop ₹${b.stop === null ? "trailing" : hmt.rupees(b.stop)}`;
    $("b-error").textContent = b.error_message || "";
    $("b-exits").tBodies[0].replaceChildren(...b.exits.map((x, i) => {
      const tr = document.createElement("tr");
      tr.dataset.id = x.id;
      const link = hmt.el("a", `#${i + 1}`);
      link.href = `/ui/triggers/${encodeURIComponent(x.id)}`;
      const status = hmt.el("td");
      status.append(hmt.el("span", x.status, `pill ${x.status}`));
      status.dataset.col = "status";
      const leg = x.triggered_leg === 1 ? "stop" : x.triggered_leg === 2 ? "target" : "–";
      const cells = [hmt.el("td"), hmt.el("td", `${x.transaction_type} ${x.quantity} · ${x.product} · ${x.order_type}`),
        status, hmt.el("td", leg), hmt.el("td", x.order_id || "–"), hmt.el("td", x.error_message || "")];
      cells[0].append(link);
      cells[1].dataset.col = "order";
      cells[3].dataset.col = "fired";
      tr.append(...cells);
      return tr;
    }));
  }

  function firedPrice(t) {
    const p = t.triggered_price;
    return p === null || p === undefined || Number(p) === 0 ? null : Number(p);
  }

  // The event history as a story: what happened, in words, every time in IST, and each
  // step of the order's way as its distance from the fire (the stored times carry
  // microseconds; a JS Date only milliseconds, so they are read by hand).
  function micros(iso) {
    const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(.*)$/.exec(iso || "");
    if (!m) return null;
    const whole = Date.parse(`${m[1]}${m[3] || "Z"}`);
    const fraction = Number(((m[2] || "") + "000000").slice(0, 6));
    return Number.isFinite(whole) ? whole * 1000 + fraction : null;
  }

  function span(us) {
    if (us < 1000) return `${us} µs`;
    if (us < 1_000_000) return `${(us / 1000).toFixed(2)} ms`;
    return `${(us / 1_000_000).toFixed(2)} s`;
  }

  const ORDER = (p) => (p.position !== undefined && p.position !== null ? ` (order ${Number(p.position) + 1})` : "");

  function story(e) {
    const p = e.payload || {};
    const price = (v) => `₹${hmt.rupees(v)}`;
    switch (e.kind) {
      case "created": return ["Created", ""];
      case "updated": return ["Edited", Object.keys(p).filter((k) => k !== "engine").join(", ")];
      case "paused": return ["Paused", ""];
      case "resumed": return ["Resumed", ""];
      case "cancelled": return ["Cancelled", p.reason || ""];
      case "expired": return ["Expired", p.reason || ""];
      case "fired": {
        const leg = p.leg ? ` (leg ${p.leg})` : "";
        if (p.cause === "time") return [`Fired at its time${leg}`, p.ltp && Number(p.ltp) ? `last price ${price(p.ltp)}` : ""];
        const how = p.threshold ? `the price jumped past the trigger price ${price(p.threshold)}` : "";
        const gap = p.cause === "gap" ? "on a missed touch" : "";
        return [`Fired at ${price(p.ltp)}${leg}`, [gap, how].filter(Boolean).join("; ")];
      }
      case "claimed": return ["Claimed for the order", [p.tag && `tag ${p.tag}`, p.engine && `engine ${p.engine}`].filter(Boolean).join(" · ")];
      case "order_sent": return [`Order sent${ORDER(p)}${p.attempt ? `, attempt ${p.attempt}` : ""}`, p.reconciled ? "found at the broker by its tag" : ""];
      case "retry": return [`Retry${ORDER(p)}${p.attempt ? ` after attempt ${p.attempt}` : ""}`, `broker: ${p.reason || "–"}`];
      case "placed": return [`Placed${ORDER(p)}: order id ${p.order_id || "–"}`, p.reconciled ? "confirmed from the broker's order book" : ""];
      case "failed": return [`Failed${ORDER(p)}`, `broker: ${p.error || "–"}`];
      case "released": return ["Released: not ordered, active again", p.reason || ""];
      case "reconciled": return ["Checked with the broker's order book", p.order_id ? `order id ${p.order_id}` : "no order with its tag"];
      case "missed_touch": return [`Missed touch: ${p.policy === "skip" ? "skipped" : "fired"}`, p.blind_spot ? `while blind ${JSON.stringify(p.blind_spot)}` : ""];
      default: return [e.kind, Object.entries(p).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(", ")];
    }
  }

  function renderHistory(events) {
    let fired = null;
    let retries = 0, placed = null, failed = null;
    const rows = events.map((e) => {
      if (e.kind === "fired" && fired === null) fired = { at: micros(e.at), payload: e.payload || {} };
      if (e.kind === "retry") retries += 1;
      if (e.kind === "placed") placed = e;
      if (e.kind === "failed") failed = e;
      const [what, how] = story(e);
      const tr = document.createElement("tr");
      tr.dataset.kind = e.kind;
      const when = hmt.el("td", hmt.when(e.at));
      when.dataset.col = "when";
      const kind = hmt.el("td");
      kind.append(hmt.el("span", e.kind, `pill ${e.kind}`));
      const text = hmt.el("td");
      text.dataset.col = "story";
      text.append(hmt.el("div", what, "what"));
      const after = fired !== null && e.kind !== "fired" && micros(e.at) !== null ? micros(e.at) - fired.at : null;
      const detail = [how, after !== null && after >= 0 ? `${span(after)} after the fire` : ""].filter(Boolean).join(" · ");
      if (detail) text.append(hmt.el("div", detail, "how muted small"));
      tr.append(when, kind, text);
      return tr;
    });
    $("history").tBodies[0].replaceChildren(...rows);
    const summary = [];
    if (fired) {
      summary.push(story({ kind: "fired", payload: fired.payload })[0]);
      const end = placed || failed;
      if (end) {
        const took = span(Math.max(0, micros(end.at) - fired.at));
        summary.push(placed
          ? `order ${(placed.payload || {}).order_id || "–"} placed ${took} after the fire`
          : `failed ${took} after the fire: ${(failed.payload || {}).error || "–"}`);
      }
      summary.push(`${retries} ${retries === 1 ? "retry" : "retries"}`);
    }
    $("history-summary").textContent = summary.join(" · ");
  }

  function setupChart() {
    if (!LC) { $("page-error").textContent = "The chart library did not load."; return; }
    chart = LC.createChart($("chart"), {
      autoSize: true,
      // The library's logo injects a <style> element, which the strict CSP forbids; the
      // attribution TradingView asks for is the text link under the chart instead.
      layout: { background: { color: "#ffffff" }, textColor: "#1b1f24", attributionLogo: false },
      timeScale: { timeVisible: true, secondsVisible: true, rightOffset: 6 },
      localization: { priceFormatter: (p) => hmt.rupees(p) },
    });
    // Added first, so the live line and the trigger lines are drawn over it.
    candles = chart.addSeries(LC.CandlestickSeries, {
      upColor: "#9ccfb0", downColor: "#e8a7a7", borderVisible: false,
      wickUpColor: "#7fb898", wickDownColor: "#d48a8a", priceLineVisible: false, lastValueVisible: false,
    });
    series = chart.addSeries(LC.LineSeries, {
      color: "#1f6feb", lineWidth: 2,
      // Keep the trigger lines in view, not only the prices seen so far.
      autoscaleInfoProvider: (original) => {
        const legs = trigger ? legPrices() : [];
        const range = original();
        if (!legs.length) return range;
        const low = Math.min(...legs), high = Math.max(...legs);
        if (!range) return { priceRange: { minValue: low, maxValue: high } };
        range.priceRange.minValue = Math.min(range.priceRange.minValue, low);
        range.priceRange.maxValue = Math.max(range.priceRange.maxValue, high);
        return range;
      },
    });
    markers = LC.createSeriesMarkers(series, []);
  }

  // The day's minute candles of the watched instrument from the broker's historical API
  // (the latest session: today's so far, or the last trading day's before the open),
  // drawn under the live line before the first live price arrives.
  async function loadCandles() {
    if (!candles || history !== null) return;
    const watched = hmt.watched(trigger);
    try {
      history = await hmt.api(`/instruments/${encodeURIComponent(watched.instrument_token)}/candles?interval=minute`);
    } catch (error) {
      if (error.status === 401) { hmt.signOut(); return; }
      history = { candles: [] };
      $("chart-note").textContent = `No candles from the broker: ${error.message}`;
    }
    const bars = history.candles.map((c) => ({ time: chartTime(c.at), open: Number(c.open),
      high: Number(c.high), low: Number(c.low), close: Number(c.close) }));
    candles.setData(bars);
    $("chart").dataset.candles = String(bars.length);
    if (bars.length) {
      $("chart-note").textContent = `${bars.length} minute candles from ${hmt.when(history.candles[0].at)}`
        + ` to ${hmt.when(history.candles[bars.length - 1].at)}, then live prices.`;
      chart.timeScale().fitContent();
    }
  }

  const chartTime = (iso) => Math.floor(Date.parse(iso) / 1000) + IST_S;

  function legPrices() {
    return [trigger.trigger_price_1, trigger.trigger_price_2, stopPrice()]
      .filter((p) => p !== null && p !== undefined).map(Number);
  }

  function stopPrice() {
    const found = trailLeg(trigger);
    const s = found && found.trail.state;
    return s && s.stop !== null && s.stop !== undefined ? s.stop : null;
  }

  function plot(time, value) {
    points.set(time, value);
    if (time >= lastTime) { series.update({ time, value }); lastTime = time; }
    else series.setData([...points.entries()].sort((a, b) => a[0] - b[0]).map(([t, v]) => ({ time: t, value: v })));
  }

  function drawLines() {
    if (!series) return;
    for (const line of lines) series.removePriceLine(line);
    lines = [];
    const legs = [trigger.trigger_price_1, trigger.trigger_price_2];
    legs.forEach((price, i) => {
      if (price === null || price === undefined) return;
      lines.push(series.createPriceLine({
        price: Number(price), color: i === 0 ? "#c62828" : "#0f7b3f", lineWidth: 1,
        lineStyle: LC.LineStyle.Dashed, axisLabelVisible: true, title: `leg ${i + 1}`,
      }));
    });
    const stop = stopPrice();
    if (stop !== null && ["active", "paused"].includes(trigger.status)) {
      lines.push(series.createPriceLine({
        price: Number(stop), color: "#c62828", lineWidth: 2, lineStyle: LC.LineStyle.Solid,
        axisLabelVisible: true, title: `stop (leg ${trailLeg(trigger).leg})`,
      }));
    }
    if (trigger.triggered_at && firedPrice(trigger) !== null) {
      const at = Math.floor(new Date(trigger.triggered_at).getTime() / 1000) + IST_S;
      plot(at, Number(trigger.triggered_price));  // the firing tick's price, at its second
      markers.setMarkers([{ time: at, position: "aboveBar", color: "#c62828", shape: "arrowDown",
        text: "fired" }]);
      $("chart").dataset.fired = String(at - IST_S);
    }
  }

  function onEvent(name, data) {
    if (!trigger) return;
    if (name === "price" && data.instrument_token === hmt.watched(trigger).instrument_token) {
      $("d-ltp").textContent = hmt.rupees(data.ltp);
      const live = trigger.status === "active" || trigger.status === "paused";  // can still fire
      $("d-distance").textContent = live ? hmt.percent(hmt.distance(trigger, data.ltp)) : "–";
      if (series) plot(Math.max(lastTime, Math.floor(Date.now() / 1000) + IST_S), Number(data.ltp));
    } else if (name === "trigger" && data.id === trigger.id) {
      load();  // the row changed: re-read it with its history
    }
  }

  document.addEventListener("DOMContentLoaded", async () => {
    if (!hmt.token()) { window.location.assign("/ui/"); return; }
    setupChart();
    await load();
    if (!trigger) return;
    await loadCandles();  // history first: the live prices continue it
    hmt.stream(onEvent, hmt.liveBadge);
    await loadBracket();
    followStop();
  });
})();
