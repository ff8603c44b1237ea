// The dashboard: sign-in, engine status card, live triggers table, create/edit/cancel form.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const state = { triggers: new Map(), ltp: new Map(), editing: null, picked: null, accounts: [] };
  const DEFAULT = "default";  // the settings' account: a trigger without one trades there
  const CHANGEABLE = new Set(["active", "paused"]);
  const FIELDS = ["trigger_type", "transaction_type", "trigger_price_1", "trigger_price_2",
    "quantity", "product", "order_type", "limit_price_1", "limit_price_2"];
  const CLEARABLE = ["trigger_price_2", "limit_price_1", "limit_price_2"];
  const ALIASES = { side: "transaction_type" };  // core rule names -> form fields

  // --- sign-in ------------------------------------------------------------------------
  async function signIn(event) {
    event.preventDefault();
    const value = $("token").value.trim();
    $("signin-error").textContent = "";
    if (!value) { $("signin-error").textContent = "Enter a token."; return; }
    hmt.setToken(value);
    try {
      await hmt.api("/stats");
    } catch (error) {
      sessionStorage.clear();
      $("signin-error").textContent = error.status === 401
        ? "That token was not accepted (unknown or revoked)." : `Could not sign in: ${error.message}`;
      return;
    }
    $("token").value = "";
    start();
  }

  function start() {
    $("signin").hidden = true;
    $("app").hidden = false;
    $("sign-out").hidden = false;
    refreshStatus();
    loadAccounts().then(loadTriggers);
    hmt.stream(onEvent, hmt.liveBadge);
  }

  // --- engine status card -------------------------------------------------------------------
  async function refreshStatus() {
    try {
      const [stats, health] = await Promise.all([hmt.api("/stats"), fetch("/health").then((r) => r.json())]);
      renderEngine({ ...stats, health, ticks_per_s: null });
    } catch (error) { $("s-reasons").textContent = `Status unavailable: ${error.message}`; }
  }

  function renderEngine(s) {
    const pill = $("engine-state");
    pill.textContent = s.state.replace("_", " ");
    pill.className = `pill ${s.state}`;
    const ws = s.ws || {};
    const ticker = $("s-ticker");
    ticker.textContent = ws.connected ? "connected" : `disconnected (${ws.state})`;
    ticker.classList.toggle("bad", !ws.connected);
    $("s-instruments").textContent = s.subscribed_instruments;
    $("s-rate").textContent = s.ticks_per_s === null ? "…" : s.ticks_per_s;
    $("s-triggered").textContent = s.triggered_orders;
    $("s-failed").textContent = s.failed_orders;
    $("s-uptime").textContent = uptime(s.uptime_s);
    const lat = s.tick_to_order_us || {};
    $("s-latency").textContent = lat.count ? `${ms(lat.p50)} / ${ms(lat.p99)}` : "–";
    const health = s.health || { status: "?", reasons: [] };
    $("s-health").textContent = health.status;
    $("s-health").classList.toggle("bad", health.status === "down");
    $("s-reasons").textContent = health.reasons.join(" · ");
    const login = s.state === "login_required" || ws.state === "token_invalid"
      || health.reasons.some((r) => r.startsWith("broker login required"));
    $("login-banner").hidden = !login;
    if (s.accounts) renderSessions(s.accounts);
  }

  // --- accounts: the chooser, the table's column and each session on the status card -------
  // Shown only once the user has linked an account: with the default one alone, its session
  // is the engine's (the pill and the login banner) and every trigger trades through it.
  function several() {
    return state.accounts.length > 1
      || [...state.triggers.values()].some((t) => t.account && t.account !== DEFAULT);
  }

  async function loadAccounts() {
    try { state.accounts = await hmt.api("/accounts"); } catch (error) {
      if (error.status === 401) { hmt.signOut(); return; }
      state.accounts = [];
      $("s-reasons").textContent = `Accounts unavailable: ${error.message}`;
    }
    fillChooser();
    renderSessions(state.accounts);
  }

  function fillChooser() {
    const select = $("account");
    const chosen = select.value || DEFAULT;
    select.replaceChildren(...state.accounts.map((a) => {
      const option = hmt.el("option", a.id === DEFAULT ? `default (${a.label})` : `${a.id} · ${a.label}`);
      option.value = a.id;
      return option;
    }));
    select.value = state.accounts.some((a) => a.id === chosen) ? chosen : DEFAULT;
    $("account-field").hidden = state.accounts.length < 2;
  }

  // The chosen account's broker, whose instruments the searches ask for: null when the
  // accounts did not load (every broker's are offered; the API still checks the trigger).
  function chosenBroker() {
    const chosen = $("account").value || DEFAULT;
    const account = state.accounts.find((a) => a.id === chosen);
    return account ? account.broker : null;
  }

  // Accounts at two brokers: the same symbol is listed once per broker, so say whose.
  function twoBrokers() { return new Set(state.accounts.map((a) => a.broker)).size > 1; }

  // Another account chosen: an instrument picked at another broker than its is dropped and
  // the symbol searched again for its broker (at submit an exact symbol is taken, as for
  // a typed one). An edit in the simple form keeps its instrument (it cannot change there):
  // moving it to another broker's account is the API's 422 beside the chooser.
  function onAccountChange() {
    hmtBasket.accountChanged();
    if (state.editing) return;
    const broker = chosenBroker();
    if (state.picked ? broker && hmt.brokerOf(state.picked) !== broker : $("symbol").value.trim()) {
      onSymbolInput();
    }
  }

  function renderSessions(accounts) {
    // The stream's list is read when it connects: keep the chooser's in step with it.
    const known = new Set(state.accounts.map((a) => a.id));
    if (accounts.some((a) => !known.has(a.id))) { state.accounts = accounts; fillChooser(); }
    $("accounts-status").hidden = accounts.length < 2;
    const drawn = JSON.stringify(accounts);  // every second: redraw only a change (a link
    if (drawn === state.sessionsDrawn) return;  // being clicked must not be replaced)
    state.sessionsDrawn = drawn;
    $("account-sessions").replaceChildren(...accounts.map((a) => {
      const valid = a.session === "valid";
      const li = hmt.el("li", null, valid ? "" : "bad");
      li.dataset.account = a.id;
      li.dataset.session = a.session;
      li.append(hmt.el("span", a.session.replace("_", " "), `pill session ${a.session}`),
        document.createTextNode(` ${a.id} · ${a.label} (${a.broker})`));
      if (!valid) {
        li.append(document.createTextNode(`${a.reason ? ` — ${a.reason}` : ""} · `));
        const fix = hmt.el("a", a.id === DEFAULT ? "log in" : "new access token");
        fix.href = a.id === DEFAULT ? (a.broker === "upstox" ? "/upstox/login" : "/kite/login") : "/ui/accounts";
        li.append(fix);
      }
      return li;
    }));
  }

  function uptime(seconds) {
    const s = Math.floor(seconds || 0);
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    return h ? `${h}h ${m}m` : m ? `${m}m ${s % 60}s` : `${s}s`;
  }
  function ms(us) { return us === null || us === undefined ? "–" : `${(us / 1000).toFixed(1)} ms`; }

  // --- triggers table ---------------------------------------------------------------------------
  async function loadTriggers() {
    const status = $("filter").value;
    const query = status ? `?status=${encodeURIComponent(status)}&limit=500` : "?limit=500";
    try {
      const list = await hmt.api(`/triggers${query}`);
      state.triggers = new Map(list.map((t) => [t.id, t]));
      renderTable();
    } catch (error) { $("form-error").textContent = `Could not load triggers: ${error.message}`; }
  }

  function renderTable() {
    const shown = state.showAccount = several();
    for (const th of document.querySelectorAll("#triggers th.col-account")) th.hidden = !shown;
    const body = $("triggers").tBodies[0];
    body.replaceChildren(...[...state.triggers.values()].map(row));
    $("empty").hidden = state.triggers.size > 0;
  }

  function row(t) {
    const tr = document.createElement("tr");
    tr.dataset.id = t.id;
    const watched = hmt.watched(t);
    tr.dataset.token = watched.instrument_token;  // the price its legs watch
    const symbol = hmt.el("td");
    const traded = hmt.traded(t);
    const link = hmt.el("a", traded.tradingsymbol);
    link.href = `/ui/triggers/${encodeURIComponent(t.id)}`;
    symbol.append(link);
    const orders = hmt.orderCount(t);
    if (orders > 1) symbol.append(hmt.el("span", ` · ${orders} orders`, "muted small phone-only"));
    if (watched.instrument_token !== traded.instrument_token) {
      symbol.append(hmt.el("span", ` on ${watched.tradingsymbol}`, "muted small watch"));
    }
    const account = hmt.el("td", t.account || DEFAULT, "col-account");
    account.dataset.col = "account";
    account.hidden = !state.showAccount;
    if (t.account && t.account !== DEFAULT) {  // at phone width, where the column is dropped
      symbol.append(hmt.el("span", ` · ${t.account}`, "muted small phone-only"));
    }
    const status = hmt.el("td");
    status.append(hmt.el("span", t.status, `pill ${t.status}`));
    status.dataset.col = "status";
    const ltp = hmt.el("td", "–", "num");
    ltp.dataset.col = "ltp";
    const dist = hmt.el("td", "–", "num");
    dist.dataset.col = "distance";
    const actions = hmt.el("td");
    if (CHANGEABLE.has(t.status)) {
      const box = hmt.el("div", null, "actions");
      const edit = hmt.el("button", "Edit", "small secondary");
      edit.type = "button";
      edit.addEventListener("click", () => beginEdit(t.id));
      const cancel = hmt.el("button", "Cancel", "small danger");
      cancel.type = "button";
      cancel.addEventListener("click", () => cancelTrigger(t.id, cancel));
      box.append(edit, cancel);
      actions.append(box);
    }
    const quantity = orders > 1 ? `${orders} orders` : t.quantity;  // a basket, compactly
    // A basket's v1 side is its first order's: show every side its orders take.
    const sides = orders > 1
      ? [...new Set((t.legs || []).flatMap((l) => l.orders.map((o) => o.transaction_type)))].join("/")
      : t.transaction_type;
    tr.append(symbol, hmt.el("td", t.trigger_type), hmt.el("td", sides || "–"),
      hmt.el("td", quantity ?? "–", "num"), hmt.el("td", hmt.conditions(t), "num"), ltp, dist, account,
      status, actions);
    paintPrice(tr, t);
    return tr;
  }

  function paintPrice(tr, t) {
    const ltp = state.ltp.get(hmt.watched(t).instrument_token);
    if (ltp === undefined) return;
    tr.querySelector('[data-col="ltp"]').textContent = hmt.rupees(ltp);
    const d = CHANGEABLE.has(t.status) ? hmt.distance(t, ltp) : null;  // only while it can fire
    const cell = tr.querySelector('[data-col="distance"]');
    cell.textContent = hmt.percent(d);
    cell.className = `num ${d === null ? "" : d >= 0 ? "up" : "down"}`.trim();
  }

  function onEvent(name, data) {
    if (name === "engine") renderEngine(data);
    else if (name === "price") {
      state.ltp.set(data.instrument_token, data.ltp);
      for (const tr of document.querySelectorAll(`#triggers tr[data-token="${data.instrument_token}"]`)) {
        const t = state.triggers.get(tr.dataset.id);
        if (t) paintPrice(tr, t);
      }
    } else if (name === "trigger") {
      const filter = $("filter").value;
      if (filter && data.status !== filter) state.triggers.delete(data.id);
      else if (state.triggers.has(data.id)) state.triggers.set(data.id, data);
      else state.triggers = new Map([[data.id, data], ...state.triggers]);  // newest first
      renderTable();
    }
  }

  async function cancelTrigger(id, button) {
    if (button.dataset.armed !== "yes") {  // a second click confirms: no modal dialogs
      button.dataset.armed = "yes";
      button.textContent = "Confirm cancel";
      setTimeout(() => { button.dataset.armed = ""; button.textContent = "Cancel"; }, 4000);
      return;
    }
    try {
      const record = await hmt.api(`/triggers/${encodeURIComponent(id)}`, { method: "DELETE" });
      state.triggers.set(record.id, record);
      renderTable();
    } catch (error) { $("form-error").textContent = `Cancel failed: ${error.message}`; }
  }

  // --- instrument search -------------------------------------------------------------------------
  let searchTimer = null;
  function onSymbolInput() {
    clearTimeout(searchTimer);
    state.picked = null;
    $("instrument_token").value = "";
    $("picked").textContent = "";
    const q = $("symbol").value.trim();
    if (!q) { $("symbol-results").hidden = true; return; }
    searchTimer = setTimeout(() => search(q), 150);
  }

  async function search(q) {
    let found = [];
    const params = new URLSearchParams({ q });
    const broker = chosenBroker();
    if (broker) params.set("broker", broker);  // a trigger's instruments are its account's broker's
    try { found = await hmt.api(`/instruments?${params}`); } catch (error) {
      $("picked").textContent = `Search failed: ${error.message}`;
      return;
    }
    if ($("symbol").value.trim() !== q) return;  // a newer search is on its way
    const list = $("symbol-results");
    list.replaceChildren(...found.map((i) => {
      const li = hmt.el("li", hmt.resultText(i, twoBrokers()));
      li.setAttribute("role", "option");
      li.dataset.symbol = i.tradingsymbol;
      li.dataset.broker = i.broker;
      li.addEventListener("click", () => pick(i));
      return li;
    }));
    list.hidden = found.length === 0;
    state.results = found;
  }

  function pick(i) {
    state.picked = i;
    $("symbol").value = i.tradingsymbol;
    $("instrument_token").value = i.instrument_token;
    $("exchange").value = i.exchange;
    $("tradingsymbol").value = i.tradingsymbol;
    const broker = twoBrokers() ? `${hmt.brokerOf(i)}, ` : "";
    $("picked").textContent = `${i.exchange}:${i.tradingsymbol} (${broker}token ${i.instrument_token}, tick ₹${i.tick_size})`;
    $("symbol-results").hidden = true;
  }

  // --- create / edit form -------------------------------------------------------------------------
  function showLegs() {
    const oco = $("trigger_type").value === "oco";
    const limit = $("order_type").value === "LIMIT";
    for (const f of document.querySelectorAll("[data-oco]")) f.hidden = !oco || (f.hasAttribute("data-limit") && !limit);
    for (const f of document.querySelectorAll("[data-limit]:not([data-oco])")) f.hidden = !limit;
  }

  function clearErrors() {
    $("form-error").textContent = "";
    for (const p of document.querySelectorAll("[data-error-for]")) p.textContent = "";
    for (const i of document.querySelectorAll("#trigger-form [aria-invalid]")) i.removeAttribute("aria-invalid");
  }

  function showErrors(error) {
    const problems = (error.body && error.body.errors) || [];
    const basket = $("mode").value === "basket";
    const scope = $(basket ? "basket-fields" : "simple-fields");
    let placed = 0;
    for (const p of problems) {
      const field = ALIASES[p.field] || p.field;
      // The exact field's slot, else its nearest enclosing one (`legs[0].orders[1]`, `legs[0]`).
      let slot = null, at = field;
      for (;;) {
        slot = scope.querySelector(`[data-error-for="${CSS.escape(at)}"]`)
          || $("account-field").querySelector(`[data-error-for="${CSS.escape(at)}"]`);
        const cut = Math.max(at.lastIndexOf("."), at.lastIndexOf("["));
        if (slot || cut <= 0) break;
        at = at.slice(0, cut);
      }
      if (!slot) continue;
      slot.textContent = slot.textContent ? `${slot.textContent}; ${p.message}` : p.message;
      const instrument = /(^|\.)(instrument_token|tradingsymbol|exchange)$/.test(field);
      const input = field === "account" ? $("account") : basket
        ? scope.querySelector(`[data-path="${CSS.escape(instrument ? field.replace(/(instrument_token|exchange)$/, "tradingsymbol") : field)}"]`)
        : $(instrument ? "symbol" : field);
      if (input) input.setAttribute("aria-invalid", "true");
      placed += 1;
    }
    if (placed < problems.length || !problems.length) $("form-error").textContent = error.message;
  }

  function formBody() {
    const body = {};
    for (const name of FIELDS) {
      const input = $(name);
      if (input.closest("[hidden]")) continue;
      const value = input.value.trim();
      if (value !== "") body[name] = value;
    }
    chosenAccount(body, state.editing && state.triggers.get(state.editing));
    if (!state.editing) {
      body.instrument_token = $("instrument_token").value || undefined;
      body.exchange = $("exchange").value || undefined;
      body.tradingsymbol = $("tradingsymbol").value || undefined;
    }
    return body;
  }

  async function submit(event) {
    event.preventDefault();
    clearErrors();
    if ($("mode").value === "basket") { await submitBasket(); return; }
    if (!state.editing && !$("instrument_token").value) {
      await search($("symbol").value.trim());
      const exact = (state.results || []).find((i) => i.tradingsymbol === $("symbol").value.trim().toUpperCase());
      if (exact) pick(exact);
      else { document.querySelector('[data-error-for="instrument_token"]').textContent = "Pick an instrument from the search."; return; }
    }
    const body = formBody();
    try {
      if (state.editing) {
        const original = state.triggers.get(state.editing) || {};
        const changed = {};
        for (const [k, v] of Object.entries(body)) if (String(original[k]) !== v) changed[k] = v;
        for (const k of CLEARABLE) {  // emptied or hidden now, set before: clear it
          if (!(k in body) && original[k] !== null && original[k] !== undefined) changed[k] = null;
        }
        const record = await hmt.api(`/triggers/${encodeURIComponent(state.editing)}`, { method: "PATCH", body: changed });
        state.triggers.set(record.id, record);
        // e.g. the instrument master was unavailable: the edit is stored, say what was not checked
        if (record.warnings && record.warnings.length) $("form-error").textContent = `Note: ${record.warnings.join("; ")}`;
      } else {
        const record = await hmt.api("/triggers", { method: "POST", body });
        const rest = [...state.triggers.entries()];
        state.triggers = new Map([[record.id, record], ...rest]);
        if (record.warnings && record.warnings.length) $("form-error").textContent = `Note: ${record.warnings.join("; ")}`;
      }
      renderTable();
      resetForm(false);
    } catch (error) {
      if (error.status === 401) { hmt.signOut(); return; }
      showErrors(error);
    }
  }

  // The chooser's account into a body: a new trigger names it unless it is the default (the
  // body stays v1's); an edit names it only when it moves the trigger.
  function chosenAccount(body, original) {
    if ($("account-field").hidden) return;
    const chosen = $("account").value;
    if (!chosen) return;  // the list did not load: leave the account as it is
    if (original ? chosen !== (original.account || DEFAULT) : chosen !== DEFAULT) body.account = chosen;
  }

  async function submitBasket() {
    const body = await hmtBasket.body(state.editing);
    if (!body) return;
    chosenAccount(body, state.editing && state.triggers.get(state.editing));
    try {
      const record = state.editing
        ? await hmt.api(`/triggers/${encodeURIComponent(state.editing)}`, { method: "PATCH", body })
        : await hmt.api("/triggers", { method: "POST", body });
      state.triggers = state.editing ? new Map([...state.triggers, [record.id, record]])
        : new Map([[record.id, record], ...state.triggers]);
      if (record.warnings && record.warnings.length) $("form-error").textContent = `Note: ${record.warnings.join("; ")}`;
      renderTable();
      resetForm(false);
    } catch (error) {
      if (error.status === 401) { hmt.signOut(); return; }
      showErrors(error);
    }
  }

  function showMode() {
    const basket = $("mode").value === "basket";
    $("simple-fields").hidden = basket;
    $("basket-fields").hidden = !basket;
  }

  function beginEdit(id) {
    const t = state.triggers.get(id);
    if (!t) return;
    resetForm(true);
    $("account").value = t.account || DEFAULT;
    if (hmtBasket.needsAdvanced(t)) {
      state.editing = id;
      $("mode").value = "basket";
      $("mode").disabled = true;  // an edit keeps the trigger's shape
      showMode();
      hmtBasket.edit(t);
      $("form-title").textContent = `Edit ${hmt.traded(t).tradingsymbol} trigger`;
      $("form-submit").textContent = "Save changes";
      $("trigger-form").scrollIntoView({ behavior: "smooth" });
      return;
    }
    $("mode").value = "simple";
    showMode();
    state.editing = id;
    $("form-title").textContent = `Edit ${t.tradingsymbol} trigger`;
    $("form-submit").textContent = "Save changes";
    $("symbol").value = t.tradingsymbol;
    $("symbol").disabled = true;
    $("picked").textContent = `${t.exchange}:${t.tradingsymbol} (token ${t.instrument_token})`;
    for (const name of FIELDS) {
      const v = t[name];
      $(name).value = v === null || v === undefined ? "" : String(v);
    }
    showLegs();
    $("trigger-form").scrollIntoView({ behavior: "smooth" });
  }

  function resetForm(keepNote) {
    const mode = $("mode").value;
    state.editing = null;
    state.picked = null;
    $("trigger-form").reset();
    $("symbol").disabled = false;
    $("mode").disabled = false;
    hmtBasket.reset();
    $("mode").value = mode;  // the form's reset() would put it back to simple
    $("account").value = DEFAULT;
    showMode();
    for (const id of ["instrument_token", "exchange", "tradingsymbol"]) $(id).value = "";
    $("picked").textContent = "";
    $("form-title").textContent = "New trigger";
    $("form-submit").textContent = "Create trigger";
    const note = $("form-error").textContent;
    clearErrors();
    if (keepNote === false && note.startsWith("Note:")) $("form-error").textContent = note;
    showLegs();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("signin-form").addEventListener("submit", signIn);
    $("sign-out").addEventListener("click", hmt.signOut);
    $("filter").addEventListener("change", loadTriggers);
    $("symbol").addEventListener("input", onSymbolInput);
    $("trigger_type").addEventListener("change", showLegs);
    $("order_type").addEventListener("change", showLegs);
    $("trigger-form").addEventListener("submit", submit);
    $("form-reset").addEventListener("click", () => resetForm(true));
    $("mode").addEventListener("change", showMode);
    $("account").addEventListener("change", onAccountChange);
    hmtBasket.init({ broker: chosenBroker, twoBrokers });
    showMode();
    showLegs();
    if (hmt.token()) start(); else $("signin").hidden = false;
  });
})();
