// The Accounts page: the default and linked broker accounts with each session's state
// (live from the stream), linking one, a linked account's access token for the day, and
// unlinking one.
// Secrets go out in the request body only: the inputs are password fields, emptied once
// sent, and nothing the API returns carries them (docs/accounts.md).
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const FIELDS = ["id", "broker", "label", "api_key", "api_secret", "access_token"];
  const SECRETS = ["api_secret", "access_token"];
  const input = (field) => $(`account-${field.replace("_", "-")}`);
  // Back from a linked account's broker login (its callback's redirect): which account.
  const loggedIn = new URLSearchParams(window.location.search).get("logged_in");

  async function load() {
    try {
      const accounts = await hmt.api("/accounts");
      $("accounts").tBodies[0].replaceChildren(...accounts.map(row));
      $("page-error").textContent = "";
    } catch (error) {
      if (error.status === 401) { hmt.signOut(); return; }
      $("page-error").textContent = `Accounts unavailable: ${error.message}`;
    }
  }

  function row(account) {
    const tr = document.createElement("tr");
    tr.dataset.id = account.id;
    const session = hmt.el("td");
    session.dataset.col = "session";
    paintSession(session, account);
    const login = hmt.el("td");
    if (account.id === "default") {
      // The default account logs in as before: through its broker's login page.
      const upstox = account.broker === "upstox";
      const link = hmt.el("a", upstox ? "Log in to Upstox" : "Log in to Kite");
      link.href = upstox ? "/upstox/login" : "/kite/login";
      link.id = "default-login";
      login.append(link);
    } else login.append(loginButton(account), tokenForm(account), unlinkButton(account));
    tr.append(hmt.el("td", account.id, "mono"), hmt.el("td", account.broker),
      hmt.el("td", account.label), session, login);
    return tr;
  }

  // GET /accounts/{id}/login as JSON (the bearer token cannot ride a navigation): the
  // broker's login page for this account's app, and a one-time state cookie for the
  // callback, which sends the browser back here with ?logged_in=<id>. A refusal (no API
  // secret linked, HMT_UPSTOX_REDIRECT_URI unset, ...) is shown beside the button.
  function loginButton(account) {
    const wrap = hmt.el("div", null, "login");
    const button = hmt.el("button", account.broker === "upstox" ? "Log in with Upstox"
      : "Log in with Kite", "small");
    button.type = "button";
    button.dataset.login = account.id;
    const result = hmt.el("p", "", "error");
    result.dataset.loginError = account.id;
    if (account.id === loggedIn) {
      result.className = "muted small";
      result.textContent = "Logged in: today's session is set.";
    }
    wrap.append(button, result);
    button.addEventListener("click", async () => {
      result.className = "error";
      result.textContent = "";
      button.disabled = true;
      let started;
      try {
        started = await hmt.api(`/accounts/${encodeURIComponent(account.id)}/login`);
      } catch (error) {
        button.disabled = false;
        if (error.status === 401) { hmt.signOut(); return; }
        result.textContent = problems(error).map((p) => p.message).join("; ") || error.message;
        return;
      }
      window.location.assign(started.login_url);
    });
    return wrap;
  }

  // DELETE /accounts/{id}: a second click confirms (no modal dialogs, as Cancel on the
  // dashboard). The server refuses while a trigger of the account is active, paused or
  // triggered (or it is the Upstox account the feed runs on): its message beside the row.
  function unlinkButton(account) {
    const wrap = hmt.el("div", null, "unlink");
    const button = hmt.el("button", "Unlink", "small danger");
    button.type = "button";
    button.dataset.unlink = account.id;
    const result = hmt.el("p", "", "error");
    result.dataset.unlinkError = account.id;
    wrap.append(button, result);
    let disarm = null;
    button.addEventListener("click", async () => {
      result.textContent = "";
      if (button.dataset.armed !== "yes") {
        button.dataset.armed = "yes";
        button.textContent = `Confirm unlink ${account.id}`;
        disarm = setTimeout(() => { button.dataset.armed = ""; button.textContent = "Unlink"; }, 4000);
        return;
      }
      clearTimeout(disarm);
      button.dataset.armed = "";
      button.textContent = "Unlink";
      button.disabled = true;
      try {
        await hmt.api(`/accounts/${encodeURIComponent(account.id)}`, { method: "DELETE" });
      } catch (error) {
        button.disabled = false;
        if (error.status === 401) { hmt.signOut(); return; }
        result.textContent = problems(error).map((p) => p.message).join("; ") || error.message;
        return;
      }
      load();
    });
    return wrap;
  }

  function paintSession(cell, account) {
    const pill = hmt.el("span", account.session.replace("_", " "), `pill session ${account.session}`);
    cell.replaceChildren(pill);
    if (account.session !== "valid" && account.reason) {
      cell.append(hmt.el("span", ` ${account.reason}`, "muted small"));
    }
  }

  // PUT /accounts/{id}/session: the account's access token for today.
  function tokenForm(account) {
    const form = hmt.el("form", null, "inline-form");
    form.noValidate = true;
    form.autocomplete = "off";
    const field = document.createElement("input");
    field.type = "password";
    field.name = "access_token";
    field.spellcheck = false;
    field.autocomplete = "off";
    field.setAttribute("aria-label", `New access token for ${account.id}`);
    const send = hmt.el("button", "Set token", "small");
    send.type = "submit";
    const result = hmt.el("p", "", "error");
    result.dataset.tokenError = account.id;
    form.append(field, send, result);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      result.textContent = "";
      const value = field.value.trim();
      if (!value) { result.textContent = "Enter the access token."; return; }
      field.value = "";  // sent once; never kept in the page
      try {
        await hmt.api(`/accounts/${encodeURIComponent(account.id)}/session`,
          { method: "PUT", body: { access_token: value } });
      } catch (error) {
        if (error.status === 401) { hmt.signOut(); return; }
        result.textContent = problems(error).map((p) => p.message).join("; ") || error.message;
        return;
      }
      load();
    });
    return form;
  }

  function problems(error) { return (error.body && error.body.errors) || []; }

  async function link(event) {
    event.preventDefault();
    const form = $("account-form");
    $("account-form-error").textContent = "";
    for (const slot of form.querySelectorAll("[data-account-error]")) slot.textContent = "";
    for (const i of form.querySelectorAll("[aria-invalid]")) i.removeAttribute("aria-invalid");
    const body = {};
    for (const field of FIELDS) {
      const value = input(field).value.trim();
      if (value !== "" || !SECRETS.includes(field)) body[field] = value;  // secrets are optional
    }
    try {
      await hmt.api("/accounts", { method: "POST", body });
    } catch (error) {
      if (error.status === 401) { hmt.signOut(); return; }
      const found = problems(error);
      let placed = 0;
      for (const p of found) {
        const slot = form.querySelector(`[data-account-error="${CSS.escape(p.field)}"]`);
        if (!slot) continue;
        slot.textContent = slot.textContent ? `${slot.textContent}; ${p.message}` : p.message;
        input(p.field).setAttribute("aria-invalid", "true");
        placed += 1;
      }
      // A problem with no field of the form (HMT_SECRET_KEY not set: `server`) goes above it.
      if (placed < found.length || !found.length) $("account-form-error").textContent = error.message;
      return;
    }
    form.reset();  // the secrets too: they are sealed on the server, not kept here
    load();
  }

  // The stream's engine event lists the viewer's accounts with their sessions every second.
  function onEvent(name, data) {
    if (name !== "engine" || !data.accounts) return;
    for (const account of data.accounts) {
      const tr = document.querySelector(`#accounts tr[data-id="${CSS.escape(account.id)}"]`);
      if (tr) paintSession(tr.querySelector('[data-col="session"]'), account);
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    if (!hmt.token()) { window.location.assign("/ui/"); return; }
    // The note is shown once: a reload or a bookmark should not say it again.
    if (loggedIn !== null) window.history.replaceState(null, "", window.location.pathname);
    $("account-form").addEventListener("submit", link);
    load();
    hmt.stream(onEvent, hmt.liveBadge);
  });
})();
