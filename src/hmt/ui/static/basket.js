// The advanced form (trigger model v2): a watched instrument, one or two legs whose
// condition is a price and direction or a time in IST, and per leg 1 to 20 order rows.
// It only builds the request body and places the API's 422s; dashboard.js sends it.
"use strict";

const hmtBasket = (() => {
  const MAX_ORDERS = 20;  // core MAX_BASKET, Zerodha's basket limit
  const NEEDS = { MARKET: [], LIMIT: ["price"], SL: ["price", "trigger_price"], "SL-M": ["trigger_price"] };
  const $ = (id) => document.getElementById(id);
  const legs = [];  // always two; the second is shown only for oco
  let watch = null, initial = null;
  // The chosen account's broker (null: not known, search every broker) and whether the
  // user has accounts at two brokers (then each result says whose it is): dashboard.js's.
  let account = { broker: () => null, twoBrokers: () => false };

  // --- instrument search, one per input (the watched one also finds indices) -----------------
  function searchBox(input, list, exchange, picked, indices) {
    let timer = null;
    const box = { value: null };
    function forget() { box.value = null; picked.textContent = ""; }
    async function find(q) {
      const params = new URLSearchParams({ q, exchange: exchange.value });
      if (indices) params.set("indices", "true");
      const broker = account.broker();
      if (broker) params.set("broker", broker);  // a trigger's instruments are its account's broker's
      let found = [];
      try { found = await hmt.api(`/instruments?${params}`); } catch (error) {
        picked.textContent = `Search failed: ${error.message}`;
        return [];
      }
      if (input.value.trim() !== q) return found;  // a newer search is on its way
      list.replaceChildren(...found.map((i) => {
        const li = hmt.el("li", hmt.resultText(i, account.twoBrokers()));
        li.setAttribute("role", "option");
        li.dataset.symbol = i.tradingsymbol;
        li.dataset.broker = i.broker;
        li.addEventListener("click", () => box.set(i));
        return li;
      }));
      list.hidden = found.length === 0;
      return found;
    }
    function lookup() {
      clearTimeout(timer);
      forget();
      const q = input.value.trim();
      if (!q) { list.hidden = true; return; }
      timer = setTimeout(() => find(q), 150);
    }
    input.addEventListener("input", lookup);
    exchange.addEventListener("change", lookup);
    box.set = (i) => {
      box.value = i;
      input.value = i.tradingsymbol;
      exchange.value = i.exchange;
      const extra = [`token ${i.instrument_token}`];
      if (account.twoBrokers()) extra.unshift(hmt.brokerOf(i));
      if (Number(i.tick_size)) extra.push(`tick ₹${i.tick_size}`);
      if (i.lot_size > 1) extra.push(`lot ${i.lot_size}`);
      picked.textContent = `${i.exchange}:${i.tradingsymbol} (${extra.join(", ")})`;
      list.hidden = true;
    };
    // Another account chosen: a picked instrument of another broker than its is dropped and
    // the text searched again for the new broker; a typed, unpicked text is searched again.
    box.accountChanged = () => {
      const broker = account.broker();
      if (box.value ? broker && hmt.brokerOf(box.value) !== broker : input.value.trim()) lookup();
    };
    box.clear = () => { input.value = ""; exchange.value = "NSE"; list.hidden = true; forget(); };
    // At submit, a symbol typed but not picked is taken when it matches exactly.
    box.resolve = async () => {
      const q = input.value.trim();
      if (box.value || !q) return box.value;
      const exact = (await find(q)).find((i) => i.tradingsymbol === q.toUpperCase());
      if (exact) box.set(exact);
      return box.value;
    };
    return box;
  }

  // --- legs and order rows ----------------------------------------------------------------------
  function clone(id) { return $(id).content.firstElementChild.cloneNode(true); }
  function named(node, name) { return node.querySelector(`[data-name="${name}"]`); }

  function newLeg() {
    const node = clone("leg-template");
    const leg = { node, orders: [] };
    named(node, "kind").addEventListener("change", () => showKinds(leg));
    node.querySelector("[data-add-order]").addEventListener("click", () => {
      addOrder(leg);
      renumber();
    });
    $("legs").append(node);
    legs.push(leg);
    addOrder(leg);
    showKinds(leg);
    return leg;
  }

  function addOrder(leg, values) {
    if (leg.orders.length >= MAX_ORDERS) return null;
    const node = clone("order-template");
    const order = {
      node,
      box: searchBox(named(node, "symbol"), node.querySelector(".results"), named(node, "exchange"),
        node.querySelector("[data-picked]"), false),
    };
    named(node, "order_type").addEventListener("change", () => showNeeds(order));
    node.querySelector("[data-remove-order]").addEventListener("click", () => {
      if (leg.orders.length <= 1) return;
      leg.orders.splice(leg.orders.indexOf(order), 1);
      node.remove();
      renumber();
    });
    leg.node.querySelector(".orders").append(node);
    leg.orders.push(order);
    if (values) fillOrder(order, values);
    showNeeds(order);
    return order;
  }

  function showKinds(leg) {
    const kind = named(leg.node, "kind").value;
    for (const f of leg.node.querySelectorAll("[data-kind]")) f.hidden = !f.dataset.kind.split(" ").includes(kind);
  }

  function showNeeds(order) {
    const needs = NEEDS[named(order.node, "order_type").value] || [];
    for (const f of order.node.querySelectorAll("[data-needs]")) f.hidden = !needs.includes(f.dataset.needs);
  }

  function showLegs() {
    const count = $("b-trigger_type").value === "oco" ? 2 : 1;
    legs.forEach((leg, i) => { leg.node.hidden = i >= count; });
  }

  // Each error slot and input gets the API's field path (`legs[0].orders[2].price`), so a
  // 422 lands beside the exact row and field; labels get ids so each input has its name.
  function renumber() {
    legs.forEach((leg, i) => {
      leg.node.querySelector("[data-leg-number]").textContent = String(i + 1);
      label(leg.node, `legs[${i}]`, `leg${i}`, (n) => !n.closest(".order"));
      leg.orders.forEach((order, j) => {
        label(order.node, `legs[${i}].orders[${j}]`, `leg${i}-order${j}`, () => true);
        order.node.querySelector("[data-remove-order]").disabled = leg.orders.length <= 1;
      });
      const add = leg.node.querySelector("[data-add-order]");
      add.disabled = leg.orders.length >= MAX_ORDERS;
      leg.node.querySelector("[data-order-count]").textContent =
        `${leg.orders.length} of ${MAX_ORDERS} orders`;
    });
  }

  function label(node, path, prefix, mine) {
    for (const slot of node.querySelectorAll("[data-error]")) {
      if (!mine(slot)) continue;
      const key = slot.dataset.error;
      slot.dataset.errorFor = key ? `${path}.${key}` : path;
    }
    for (const l of node.querySelectorAll("[data-label]")) {
      if (!mine(l)) continue;
      const input = l.parentElement.querySelector(`[data-name="${l.dataset.label}"]`);
      input.id = `${prefix}-${l.dataset.label}`;
      l.htmlFor = input.id;
      input.dataset.path = `${path}.${input.dataset.key || l.dataset.label}`;
    }
  }

  // --- reading and filling the form ---------------------------------------------------------------
  function text(node, name) { return named(node, name).value.trim(); }

  function orderBody(order) {
    const node = order.node, i = order.box.value;
    const body = {
      exchange: i ? i.exchange : named(node, "exchange").value,
      tradingsymbol: i ? i.tradingsymbol : undefined,
      instrument_token: i ? i.instrument_token : undefined,
      transaction_type: text(node, "transaction_type"),
      quantity: text(node, "quantity"),
      product: text(node, "product"),
      order_type: text(node, "order_type"),
      validity: text(node, "validity"),
    };
    for (const name of NEEDS[body.order_type] || []) {
      const value = text(node, name);
      if (value !== "") body[name] = value;
    }
    return body;
  }

  function legBody(leg) {
    const node = leg.node;
    const kind = text(node, "kind");
    let condition;
    if (kind === "time") condition = { at: hmt.fromIst(text(node, "at")) };
    else if (kind === "trail") condition = { trail: trailBody(node), direction: text(node, "direction") };
    else condition = { price: text(node, "level") || null, direction: text(node, "direction") };
    return { condition, orders: leg.orders.map(orderBody) };
  }

  // A trailing stop's terms (docs/api.md, "Trailing stops"); blank optional terms are left out.
  function trailBody(node) {
    const trail = { kind: text(node, "trail_kind"), offset: text(node, "trail_offset") || null,
      reference: text(node, "trail_reference") };
    for (const [name, key] of [["trail_activation", "activation"], ["trail_step", "step"]]) {
      const value = text(node, name);
      if (value !== "") trail[key] = value;
    }
    return trail;
  }

  function current() {
    const count = $("b-trigger_type").value === "oco" ? 2 : 1;
    const body = {
      trigger_type: $("b-trigger_type").value,
      legs: legs.slice(0, count).map(legBody),
      expires_at: hmt.fromIst($("expires_at").value),
      not_before: hmt.fromIst($("not_before").value),
      on_gap: $("on_gap").value,
    };
    const w = watch.value;
    if (w) body.watch = { exchange: w.exchange, tradingsymbol: w.tradingsymbol, instrument_token: w.instrument_token };
    return body;
  }

  // The request body, or null when an instrument typed in the form is not a listed one
  // (said beside it). A new trigger omits what is blank; an edit sends what changed.
  async function body(editing) {
    let unresolved = 0;
    if ($("watch-symbol").value.trim() && !(await watch.resolve())) {
      say("watch", "Pick the watched instrument from the search (indices are listed too).");
      unresolved += 1;
    }
    const count = $("b-trigger_type").value === "oco" ? 2 : 1;
    for (const [i, leg] of legs.slice(0, count).entries()) {
      for (const [j, order] of leg.orders.entries()) {
        if (!(await order.box.resolve())) {
          say(`legs[${i}].orders[${j}].instrument_token`, "Pick an instrument from the search.");
          unresolved += 1;
        }
      }
    }
    if (unresolved) return null;
    const now = current();
    if (!editing) {
      for (const key of ["expires_at", "not_before"]) if (now[key] === null) delete now[key];
      return now;
    }
    const changed = {};
    for (const [key, value] of Object.entries(now)) {
      if (JSON.stringify(value) !== JSON.stringify(initial[key])) changed[key] = value;
    }
    if (initial.watch && !now.watch) changed.watch = null;
    return changed;
  }

  function say(field, message) {
    const slot = document.querySelector(`#basket-fields [data-error-for="${CSS.escape(field)}"]`);
    if (slot) slot.textContent = message;
  }

  function fillOrder(order, o) {
    const node = order.node;
    if (o.tradingsymbol) {
      order.box.set({ exchange: o.exchange, tradingsymbol: o.tradingsymbol,
        instrument_token: o.instrument_token, name: "", tick_size: 0, lot_size: 0 });
    }
    for (const name of ["transaction_type", "quantity", "product", "order_type", "price",
      "trigger_price", "validity"]) {
      const v = o[name];
      if (v !== null && v !== undefined) named(node, name).value = String(v);
    }
  }

  // An existing trigger into the form, for an edit.
  function edit(t) {
    reset();
    if (t.watch && t.watch.instrument_token && t.watch.instrument_token !== hmt.traded(t).instrument_token) {
      watch.set({ ...t.watch, name: "", tick_size: 0, lot_size: 0 });
    }
    $("b-trigger_type").value = t.trigger_type;
    $("expires_at").value = hmt.toIst(t.expires_at);
    $("not_before").value = hmt.toIst(t.not_before);
    $("on_gap").value = t.on_gap || "fire";
    (t.legs || []).slice(0, 2).forEach((l, i) => {
      const leg = legs[i];
      const c = l.condition || {};
      named(leg.node, "kind").value = c.at ? "time" : c.trail ? "trail" : "price";
      if (c.at) named(leg.node, "at").value = hmt.toIst(c.at);
      else if (c.trail) {
        if (c.direction) named(leg.node, "direction").value = c.direction;
        named(leg.node, "trail_kind").value = c.trail.kind;
        named(leg.node, "trail_offset").value = String(c.trail.offset);
        named(leg.node, "trail_activation").value = c.trail.activation === null ? "" : String(c.trail.activation);
        named(leg.node, "trail_step").value = c.trail.step === null ? "" : String(c.trail.step);
        named(leg.node, "trail_reference").value = c.trail.reference;
      } else {
        named(leg.node, "level").value = c.price === null || c.price === undefined ? "" : String(c.price);
        if (c.direction) named(leg.node, "direction").value = c.direction;
      }
      for (const order of leg.orders.splice(0)) order.node.remove();
      for (const o of l.orders || []) addOrder(leg, o);
      if (!leg.orders.length) addOrder(leg);
      showKinds(leg);
    });
    renumber();
    showLegs();
    initial = current();
  }

  function reset() {
    watch.clear();
    $("b-trigger_type").value = "single";
    for (const id of ["expires_at", "not_before"]) $(id).value = "";
    $("on_gap").value = "fire";
    for (const leg of legs.splice(0)) leg.node.remove();
    newLeg();
    newLeg();
    renumber();
    showLegs();
    initial = null;
  }

  // A trigger the simple form cannot show: anything beyond v1's one order on its own price.
  function needsAdvanced(t) {
    const ls = t.legs || [];
    const w = t.watch && t.watch.instrument_token;
    return Boolean(!t.tradingsymbol || (w && w !== t.instrument_token) || t.not_before || t.on_gap === "skip"
      || ls.some((l) => (l.orders || []).length !== 1 || (l.condition && (l.condition.at || l.condition.trail))
        || (l.orders || []).some((o) => !["MARKET", "LIMIT"].includes(o.order_type)
          || (o.validity && o.validity !== "DAY") || o.instrument_token !== t.instrument_token)));
  }

  // Every search box of the form, for an account change.
  function boxes() { return [watch, ...legs.flatMap((leg) => leg.orders.map((o) => o.box))]; }
  function accountChanged() { for (const box of boxes()) box.accountChanged(); }

  function init(chosen) {
    if (chosen) account = chosen;
    watch = searchBox($("watch-symbol"), $("watch-results"), $("watch-exchange"), $("watch-picked"), true);
    $("b-trigger_type").addEventListener("change", showLegs);
    reset();
  }

  return { init, body, edit, reset, needsAdvanced, accountChanged };
})();
