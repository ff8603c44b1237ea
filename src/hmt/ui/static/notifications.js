// Settings: the signed-in user's notification channels (docs/notifications.md).
// A channel's URL is sent once and never shown again: the list shows its hint.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const KINDS = ["fired", "placed", "failed", "gap_fired", "gap_skipped", "login_required",
    "engine_down", "engine_degraded"];

  function kindBoxes() {
    const box = $("channel-kinds");
    box.replaceChildren();
    for (const kind of KINDS) {
      const label = hmt.el("label", null, "inline");
      const input = document.createElement("input");
      input.type = "checkbox";
      input.name = "kinds";
      input.value = kind;
      input.checked = true;
      label.append(input, document.createTextNode(` ${kind.replace("_", " ")}`));
      box.append(label);
    }
  }

  async function load() {
    const list = $("channels");
    try {
      const channels = await hmt.api("/notifications/channels");
      list.replaceChildren();
      for (const channel of channels) list.append(row(channel));
      $("channels-empty").hidden = channels.length > 0;
      $("channels-error").textContent = "";
    } catch (error) {
      $("channels-error").textContent = error.body && error.body.detail
        ? error.body.detail : `Channels unavailable: ${error.message}`;
    }
  }

  function row(channel) {
    const tr = document.createElement("tr");
    tr.dataset.id = channel.id;
    tr.append(hmt.el("td", channel.name), hmt.el("td", channel.url_hint, "mono"),
      hmt.el("td", channel.kinds.join(", "), "small"));
    const actions = hmt.el("td", null, "actions");
    const result = hmt.el("span", "", "small muted");
    const test = hmt.el("button", "Test", "small secondary");
    test.type = "button";
    test.addEventListener("click", async () => {
      result.textContent = "sending…";
      try {
        const sent = await hmt.api(`/notifications/channels/${channel.id}/test`, { method: "POST" });
        result.textContent = sent.delivered ? "delivered" : `not delivered: ${sent.error}`;
      } catch (error) { result.textContent = `error: ${error.message}`; }
    });
    const remove = hmt.el("button", "Delete", "small danger");
    remove.type = "button";
    remove.addEventListener("click", async () => {
      try {
        await hmt.api(`/notifications/channels/${channel.id}`, { method: "DELETE" });
      } catch (error) { result.textContent = `error: ${error.message}`; return; }
      load();
    });
    actions.append(test, remove, result);
    tr.append(actions);
    return tr;
  }

  async function add(event) {
    event.preventDefault();
    const form = $("channel-form");
    for (const node of form.querySelectorAll("[data-channel-error]")) node.textContent = "";
    const body = {
      name: $("channel-name").value.trim(),
      url: $("channel-url").value.trim(),
      kinds: [...form.querySelectorAll("input[name=kinds]:checked")].map((i) => i.value),
    };
    try {
      await hmt.api("/notifications/channels", { method: "POST", body });
    } catch (error) {
      const problems = (error.body && error.body.errors) || [];
      if (!problems.length) $("channel-form-error").textContent = error.message;
      for (const problem of problems) {
        const field = form.querySelector(`[data-channel-error="${problem.field}"]`)
          || $("channel-form-error");
        field.textContent = problem.message;
      }
      return;
    }
    $("channel-url").value = "";  // the URL is not kept in the page either
    $("channel-name").value = "";
    load();
  }

  function init() {
    const app = $("app");
    if (!app || !$("channel-form")) return;
    kindBoxes();
    $("channel-form").addEventListener("submit", add);
    const shown = () => { if (!app.hidden) load(); };
    new MutationObserver(shown).observe(app, { attributes: true, attributeFilter: ["hidden"] });
    shown();
  }

  init();
})();
