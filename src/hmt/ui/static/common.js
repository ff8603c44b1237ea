// Shared by every page: the token, API calls, the live stream, and number formatting.
// The token lives in sessionStorage (this tab only) and travels only in the
// Authorization header: never in a URL, so never in a log or a Referer.
"use strict";

const hmt = (() => {
  const KEY = "hmt.token";

  function token() { return sessionStorage.getItem(KEY); }
  function setToken(value) { sessionStorage.setItem(KEY, value); }
  function signOut() {
    sessionStorage.removeItem(KEY);
    window.location.assign("/ui/");
  }

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.detail) || `HTTP ${status}`);
      this.status = status;
      this.body = body || {};
    }
  }

  async function api(path, { method = "GET", body, signal } = {}) {
    // Accept: a route that also serves browser navigations (GET /accounts/{id}/login)
    // answers JSON instead of a redirect.
    const headers = { Authorization: `Bearer ${token()}`, Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method, headers, signal, cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try { data = await response.json(); } catch (_) { data = null; }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  // Server-Sent Events over fetch(), so the bearer header can be sent (EventSource
  // cannot). Reconnects after a pause; `onEvent(name, data)` gets each event.
  function stream(onEvent, onState) {
    let stopped = false;
    const controller = new AbortController();
    async function once() {
      const response = await fetch("/stream", {
        headers: { Authorization: `Bearer ${token()}`, Accept: "text/event-stream" },
        signal: controller.signal, cache: "no-store",
      });
      if (response.status === 401) { signOut(); return; }
      if (!response.ok || !response.body) throw new Error(`stream: HTTP ${response.status}`);
      onState(true);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "", planned = false;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return planned;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let name = "message", data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("event: ")) name = line.slice(7);
            else if (line.startsWith("data: ")) data += line.slice(6);
          }
          if (name === "bye") planned = true;  // the server's lifetime cap: reconnect at once
          else if (data) onEvent(name, JSON.parse(data));
        }
      }
    }
    (async () => {
      while (!stopped) {
        let planned = false;
        try { planned = await once(); } catch (error) { if (stopped) return; }
        if (planned) continue;
        onState(false);
        if (!stopped) await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    })();
    return () => { stopped = true; controller.abort(); };
  }

  function liveBadge(on) {
    const badge = document.getElementById("live");
    if (!badge) return;
    badge.dataset.state = on ? "on" : "off";
    badge.textContent = on ? "live" : "offline";
  }

  // Signed distance from the price to the trigger, in percent of the price.
  function distance(trigger, ltp) {
    if (ltp === undefined || ltp === null) return null;
    const price = Number(ltp);
    const legs = [trigger.trigger_price_1, trigger.trigger_price_2]
      .filter((p) => p !== null && p !== undefined).map(Number);
    let best = null;
    for (const leg of legs) {
      const d = ((leg - price) / price) * 100;
      if (best === null || Math.abs(d) < Math.abs(best)) best = d;
    }
    return best;
  }

  function percent(value) {
    if (value === null || !Number.isFinite(value)) return "–";
    return `${value > 0 ? "+" : ""}${value.toFixed(2)}%`;
  }

  function rupees(value) {
    if (value === null || value === undefined) return "–";
    return Number(value).toLocaleString("en-IN", { minimumFractionDigits: 2, maximumFractionDigits: 4 });
  }

  function prices(trigger) {
    const first = rupees(trigger.trigger_price_1);
    return trigger.trigger_price_2 === null ? first : `${first} / ${rupees(trigger.trigger_price_2)}`;
  }

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  // Every time on every page is Indian Standard Time, zone shown: the exchanges'
  // clock, whatever the browser's. IST is UTC+05:30 all year (no DST), so a
  // fixed offset is exact and needs no time-zone data.
  const IST_MS = 330 * 60 * 1000;
  const pad = (n) => String(n).padStart(2, "0");

  function istParts(iso) {
    const d = new Date(new Date(iso).getTime() + IST_MS);
    return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T`
      + `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  }

  function when(iso) {
    if (!iso) return "–";
    return `${istParts(iso).replace("T", " ")} IST`;
  }

  // A datetime-local input's value (read as IST) to ISO-8601 with the +05:30 offset.
  function fromIst(value) {
    if (!value) return null;
    return `${value.length === 16 ? `${value}:00` : value}+05:30`;
  }

  // An ISO time as the datetime-local value that shows it in IST.
  function toIst(iso) { return iso ? istParts(iso) : ""; }

  // A v2 leg's condition in words: "≤ ₹23,800.00" or "at 2026-12-01 15:15:00 IST".
  function condition(leg) {
    const c = (leg && leg.condition) || {};
    if (c.at) return `at ${when(c.at)}`;
    if (c.trail) return trail(c.trail);
    if (c.price === null || c.price === undefined) return "–";
    const sign = c.direction === "at_or_above" ? "≥ " : c.direction === "at_or_below" ? "≤ " : "";
    return `${sign}${rupees(c.price)}`;
  }

  // A trailing stop in words: "trailing ₹5.00 below · stop ₹1,504.90" (the stop as last read).
  function trail(t) {
    const way = t.side === "SELL" ? "below" : "above";
    const size = t.kind === "price" ? rupees(t.offset) : `${t.offset} ${t.kind}`;
    const parts = [`trailing ${size} ${way}`];
    if (t.activation !== null && t.activation !== undefined) parts.push(`from ${rupees(t.activation)}`);
    if (t.step !== null && t.step !== undefined) parts.push(`step ${rupees(t.step)}`);
    if (t.reference && t.reference !== "ltp") parts.push(`on the ${t.reference}`);
    const s = t.state;
    if (s && s.stop !== null && s.stop !== undefined) parts.push(`stop ${rupees(s.stop)}`);
    else parts.push("not active yet");
    return parts.join(" · ");
  }

  // The trigger column: v1 prices, or each leg's condition when any leg is a time or a trail.
  function conditions(trigger) {
    const legs = trigger.legs || [];
    if (!legs.some((l) => l.condition && (l.condition.at || l.condition.trail))) return prices(trigger);
    return legs.map(condition).join(" / ");
  }

  // The traded instrument: the record's own, or (where a basket leaves the v1 fields
  // null) its first order's.
  function traded(trigger) {
    if (trigger.tradingsymbol) return trigger;
    const first = ((trigger.legs || [])[0] || { orders: [] }).orders[0];
    return first || trigger;
  }

  // The instrument whose price the trigger watches: `watch` when set, else the traded one.
  function watched(trigger) {
    return trigger.watch && trigger.watch.instrument_token ? trigger.watch : traded(trigger);
  }

  // Whose instrument it is, "kite" or "upstox" (docs/accounts.md, "Two brokers in one
  // process"): the search's results say so; an instrument of a stored trigger does not,
  // and the two brokers' ids never collide (Kite's below 2^32, those hmt gives Upstox's
  // from 2^52: hmt.upstox.instruments.is_upstox_id).
  function brokerOf(instrument) {
    return instrument.broker || (Number(instrument.instrument_token) >= 2 ** 52 ? "upstox" : "kite");
  }

  // A search result's line; the broker is named when the user trades at two (the same
  // symbol is then listed once per broker).
  function resultText(i, withBroker) {
    return `${i.tradingsymbol} · ${i.exchange} · ${i.name}${withBroker ? ` · ${brokerOf(i)}` : ""}`;
  }

  function orderCount(trigger) {
    return Math.max(0, ...(trigger.legs || []).map((l) => (l.orders || []).length));
  }

  return { token, setToken, signOut, api, ApiError, stream, liveBadge, distance, percent,
    rupees, prices, el, when, fromIst, toIst, condition, conditions, trail, traded, watched, brokerOf,
    resultText, orderCount };
})();
