// The gateway's admin console. Plain JavaScript, no framework: it calls the same
// /v1/... endpoints a script does; the browser sends the session cookie (HttpOnly, so
// this script never sees it, nor any token).
"use strict";

const $ = (id) => document.getElementById(id);
const idOf = (key) => key.replace(".", "-");

let current = null;      // GET /v1/admin/settings
let polls = [];          // timers of the visible tab

// ---- requests ----------------------------------------------------------------

async function call(method, path, body) {
  const init = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (response.status === 401) {
    window.location.assign("/console/sign-in");
    throw new Error("signed out");
  }
  let data = null;
  try { data = await response.json(); } catch (_) { /* no body */ }
  return { status: response.status, ok: response.ok, data };
}

function problemText(data, fallback) {
  return (data && (data.detail || data.title)) || fallback;
}

// ---- small DOM helpers -------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === "text") node.textContent = value;
    else if (name === "class") node.className = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function when(text) {
  if (!text) return "";
  const date = new Date(text);
  return isNaN(date) ? text : date.toLocaleString();
}

function clearErrors(form) {
  for (const p of form.querySelectorAll("p.error")) p.textContent = "";
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
}

function showFieldError(key, message) {
  const p = $("error-" + idOf(key));
  const input = $(idOf(key));
  if (!p) return false;
  // The problem's detail starts with the key, which the field's label already names.
  p.textContent = message.startsWith(key + ": ") ? message.slice(key.length + 2) : message;
  if (input) {
    input.setAttribute("aria-invalid", "true");
    input.focus();
  }
  return true;
}

// ---- tabs --------------------------------------------------------------------

const tabs = ["email", "sms", "activity", "history"];

function showTab(name) {
  for (const tab of tabs) {
    const selected = tab === name;
    $("tab-" + tab).setAttribute("aria-selected", String(selected));
    $("tab-" + tab).tabIndex = selected ? 0 : -1;
    $("panel-" + tab).hidden = !selected;
  }
  polls.forEach(clearInterval);
  polls = [];
  if (name === "activity") {
    refreshActivity();
    polls.push(setInterval(refreshActivity, 2000));
  }
  if (name === "history") loadHistory();
  if (name === "sms") loadModules();
  history.replaceState(null, "", "#" + name);
}

function setUpTabs() {
  for (const tab of tabs) {
    $("tab-" + tab).addEventListener("click", () => showTab(tab));
    $("tab-" + tab).addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      const next = tabs[(tabs.indexOf(tab) + step + tabs.length) % tabs.length];
      showTab(next);
      $("tab-" + next).focus();
    });
  }
}

// ---- settings ------------------------------------------------------------------

async function loadSettings() {
  const { ok, data } = await call("GET", "/v1/admin/settings");
  if (!ok) {
    $("version-line").textContent = problemText(data, "The settings could not be read.");
    return;
  }
  current = data;
  $("stale").hidden = true;
  const version = data.console.version;
  $("version-line").textContent = version === 0
    ? "Nothing saved in the console yet: the values come from the settings file and defaults."
    : `Console version ${version} is in force.`;
  for (const input of document.querySelectorAll("[data-key]")) {
    const key = input.dataset.key;
    const shown = data.settings[key];
    const value = shown ? shown.value : null;
    input.value = value === null || value === undefined ? "" : String(value);
    input.dataset.loaded = input.value;
    const access = data.console.keys[key];
    lockIfEnvironment(input, access);
    input.title = shown ? `from ${shown.source}` : "";
  }
  for (const input of document.querySelectorAll("[data-secret]")) {
    input.value = "";
    lockIfEnvironment(input, data.console.keys[input.dataset.secret]);
  }
  const password = data.console.keys["email.password"];
  $("password-state").textContent = password && password.set ? "set" : "not set";
  const blob = data.console.keys["sms.plugin_config"];
  $("blob-state").textContent = blob && blob.set
    ? `configured, ${blob.bytes} bytes` + (blob.changed_at ? `, changed ${when(blob.changed_at)} (version ${blob.changed_in_version})` : "")
    : "not configured";
  updateHint();
}

function lockIfEnvironment(input, access) {
  const locked = access && !access.editable;
  input.disabled = Boolean(locked);
  const note = input.parentElement.querySelector(".env-note");
  if (note) note.remove();
  if (locked) {
    input.parentElement.append(el("p", { class: "help env-note",
      text: `Set by the environment variable ${access.environment_variable}: read-only here.` }));
  }
}

/// The limits as the engine applies them (gateway/src/email/limits.rs): at most
/// min(threads, max) connections, each carrying max(1, max / threads) e-mails.
function updateHint() {
  const max = parseInt($("email-max_per_connection").value, 10);
  const threads = parseInt($("email-smtp_threads").value, 10);
  const hint = $("limits-hint");
  if (!(max >= 1) || !(threads >= 1)) {
    hint.textContent = "Both limits must be whole numbers of at least 1.";
    return;
  }
  const connections = Math.min(threads, max);
  const each = Math.max(1, Math.floor(max / threads));
  hint.textContent = `${connections} connection${connections === 1 ? "" : "s"} at a time, ` +
    `${each} e-mail${each === 1 ? "" : "s"} each`;
}

function valueOf(input) {
  const text = input.value.trim();
  if (input.type === "number") return text === "" ? null : Number(text);
  return text;
}

async function save(form, savedId) {
  clearErrors(form);
  $(savedId).textContent = "";
  const set = {};
  const unset = [];
  for (const input of form.querySelectorAll("[data-key]")) {
    if (input.disabled || input.value === input.dataset.loaded) continue;
    const value = valueOf(input);
    if (value === "" || value === null) unset.push(input.dataset.key);
    else set[input.dataset.key] = value;
  }
  for (const input of form.querySelectorAll("[data-secret]")) {
    // A secret is write-only: blank keeps it.
    if (!input.disabled && input.value.trim() !== "") set[input.dataset.secret] = input.value.trim();
  }
  if (Object.keys(set).length === 0 && unset.length === 0) {
    $(savedId).textContent = "Nothing changed.";
    return;
  }
  const { status, ok, data } = await call("PUT", "/v1/admin/settings",
    { base_version: current.console.version, set, unset });
  if (ok) {
    await loadSettings();
    $(savedId).textContent = `Saved as version ${data.version}: ${data.keys.join(", ")}.`;
    return;
  }
  if (status === 409) {
    $("stale").hidden = false;
    return;
  }
  if (status === 422 && data && data.field && showFieldError(data.field, data.detail)) return;
  $(savedId).textContent = problemText(data, `Not saved (HTTP ${status}).`);
}

// ---- e-mail checks ---------------------------------------------------------------

/// The SMTP check's steps as an admin knows them.
const SMTP_STEPS = { connect: "Connect", start_tls: "STARTTLS", auth: "AUTH", data: "DATA",
  mail_from: "MAIL FROM", rcpt_to: "RCPT TO", rset: "RSET", quit: "QUIT" };
const smtpStep = (name) => SMTP_STEPS[name] || name;

function stepsList(steps, describe) {
  const list = el("ol", { class: "steps" });
  for (const step of steps) {
    const item = el("li", { class: step.ok === false || step.error ? "failed" : "passed" });
    item.append(el("span", { class: "mark", "aria-hidden": "true", text: step.ok === false || step.error ? "✗" : "✓" }));
    item.append(describe(step));
    list.append(item);
  }
  return list;
}

async function checkSmtp() {
  const out = $("smtp-check-result");
  out.replaceChildren(el("p", { class: "muted", text: "Checking…" }));
  const { ok, data } = await call("POST", "/v1/admin/email/check");
  if (!ok) {
    out.replaceChildren(el("p", { class: "error", text: problemText(data, "The check could not run.") }));
    return;
  }
  const verdict = data.ok
    ? el("p", { class: "alert success", id: "smtp-check-verdict", text: `The connection to ${data.server} works.` })
    : el("p", { class: "alert error", id: "smtp-check-verdict", text: `Failed at ${smtpStep(data.failed_step)} on ${data.server}.` });
  out.replaceChildren(verdict, stepsList(data.steps, (step) => {
    const span = el("span", {});
    span.append(el("strong", { text: smtpStep(step.step) }), " ", el("code", { text: step.reply }));
    return span;
  }));
}

async function sendTestEmail(event) {
  event.preventDefault();
  $("error-email-test").textContent = "";
  const status = $("email-test-status");
  status.textContent = "";
  const to = $("email-test-to").value.trim();
  const { ok, data } = await call("POST", "/v1/admin/email/test", { to });
  if (!ok) {
    $("error-email-test").textContent = problemText(data, "Not sent.");
    return;
  }
  const id = data.id;
  const seen = [];
  const show = (message) => {
    if (seen[seen.length - 1] !== message.status) seen.push(message.status);
    status.textContent = `Test e-mail ${id}: ${seen.join(" → ")}` +
      (message.error ? ` (${message.error})` : "");
    status.dataset.status = message.status;
  };
  show({ status: "queued" });
  for (let i = 0; i < 120; i++) {
    const answer = await call("GET", `/v1/messages/${encodeURIComponent(id)}`);
    if (answer.ok) {
      show(answer.data);
      if (["sent", "failed"].includes(answer.data.status)) return;
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

// ---- SMS ---------------------------------------------------------------------

async function loadModules() {
  const select = $("sms-module");
  const { ok, data } = await call("GET", "/v1/admin/sms/modules");
  if (!ok) {
    $("sms-module-about").textContent = problemText(data, "The modules could not be listed.");
    return;
  }
  const wanted = current ? String(current.settings["sms.module"].value) : data.current;
  select.replaceChildren();
  for (const module of data.modules) {
    const option = module.loadable
      ? el("option", { value: module.name, text: `${module.name} ${module.version}: ${module.description}` })
      : el("option", { value: "", disabled: "", class: "unloadable", text: `${module.file}: cannot load (${module.error})` });
    if (module.loadable) option.dataset.about = `${module.name} ${module.version}, plugin-api ${module.plugin_api}: ${module.description}`;
    select.append(option);
  }
  select.size = Math.min(Math.max(data.modules.length, 2), 8);
  select.value = wanted;
  select.dataset.loaded = wanted;
  describeModule();
}

function describeModule() {
  const option = $("sms-module").selectedOptions[0];
  $("sms-module-about").textContent = option && option.dataset.about ? option.dataset.about : "";
}

async function checkModule() {
  const out = $("sms-check-result");
  out.replaceChildren(el("p", { class: "muted", text: "Checking…" }));
  const { ok, data } = await call("POST", "/v1/admin/sms/check");
  if (!ok) {
    out.replaceChildren(el("p", { class: "error", text: problemText(data, "The check could not run.") }));
    return;
  }
  const verdict = data.ok
    ? el("p", { class: "alert success", id: "sms-check-verdict", text: `${data.module}: ${data.result || "the self-check passed"}` })
    : el("p", { class: "alert error", id: "sms-check-verdict", text: `${data.module}: ${data.error}` });
  out.replaceChildren(verdict);
  if (data.steps.length) {
    out.append(stepsList(data.steps, (step) => el("span", {
      text: `${step.method} ${step.url} → ${step.status ?? step.error} (${step.duration_ms} ms)` })));
  }
}

async function sendTestSms(event) {
  event.preventDefault();
  const out = $("sms-test-result");
  out.className = "";
  out.textContent = "Sending…";
  const { ok, data } = await call("POST", "/v1/admin/sms/test",
    { to: $("sms-test-to").value.trim(), text: $("sms-test-text").value });
  if (ok) {
    out.className = "alert success";
    out.textContent = `Sent through ${data.module} to ${data.to}: provider id ${data.provider_id}.`;
  } else {
    out.className = "alert error";
    out.textContent = problemText(data, "Not sent.");
  }
}

// ---- mailings and messages ------------------------------------------------------

async function refreshActivity() {
  const [queue, mailings, inbound] = await Promise.all([
    call("GET", "/v1/admin/queue"),
    call("GET", "/v1/mailings?limit=20"),
    call("GET", "/v1/inbound?limit=10"),
  ]);
  if (queue.ok) {
    const q = queue.data;
    $("queue-depth").textContent = `Waiting to be sent: ${q.email.due} e-mail${q.email.due === 1 ? "" : "s"}` +
      `, ${q.sms.due} SMS` + (q.email.due + q.sms.due > 0
        ? ` (oldest waiting ${Math.round(Math.max(q.email.oldest_due_seconds, q.sms.oldest_due_seconds))} s)` : "");
  }
  if (mailings.ok) {
    const body = $("mailings").tBodies[0];
    body.replaceChildren();
    if (mailings.data.items.length === 0) body.append(el("tr", {}, el("td", { colspan: "7", class: "muted", text: "No mailings yet." })));
    for (const m of mailings.data.items) {
      const done = m.sent + m.failed;
      const progress = el("progress", { max: String(m.total), value: String(done), "aria-label": `${done} of ${m.total} done` });
      body.append(el("tr", { "data-id": m.id },
        el("td", { text: m.subject || m.id }), el("td", { text: when(m.created_at) }),
        el("td", {}, progress, ` ${done}/${m.total}`),
        el("td", { text: String(m.queued) }), el("td", { text: String(m.sending) }),
        el("td", { text: String(m.sent) }), el("td", { text: String(m.failed) })));
    }
  }
  if (inbound.ok) {
    const body = $("inbound").tBodies[0];
    body.replaceChildren();
    if (inbound.data.items.length === 0) body.append(el("tr", {}, el("td", { colspan: "4", class: "muted", text: "No inbound SMS yet." })));
    for (const sms of inbound.data.items) {
      body.append(el("tr", {}, el("td", { text: when(sms.received_at) }), el("td", { text: sms.sender }),
        el("td", { text: sms.recipient }), el("td", { text: sms.text })));
    }
  }
}

async function lookUp(event) {
  event.preventDefault();
  const out = $("lookup-result");
  const id = $("lookup-id").value.trim();
  if (!id) return;
  const { ok, data } = await call("GET", `/v1/messages/${encodeURIComponent(id)}`);
  out.replaceChildren();
  if (!ok) {
    out.append(el("dt", { text: "Not found" }), el("dd", { text: problemText(data, "No such message.") }));
    return;
  }
  const rows = [["Channel", data.channel], ["Status", data.status], ["Attempts", String(data.attempts)],
    ["Error", data.error], ["Provider id", data.provider_id], ["Updated", when(data.updated_at)]];
  for (const [name, value] of rows) {
    if (value === undefined || value === null || value === "") continue;
    out.append(el("dt", { text: name }), el("dd", { text: value }));
  }
}

// ---- history ---------------------------------------------------------------------

async function loadHistory() {
  const { ok, data } = await call("GET", "/v1/admin/settings/history");
  const body = $("history").tBodies[0];
  body.replaceChildren();
  if (!ok) {
    $("history-status").textContent = problemText(data, "The history could not be read.");
    return;
  }
  if (data.versions.length === 0) body.append(el("tr", {}, el("td", { colspan: "5", class: "muted", text: "Nothing saved yet." })));
  const latest = data.versions.length ? data.versions[0].version : 0;
  for (const v of data.versions) {
    const action = el("td", {});
    if (v.version !== latest) {
      const button = el("button", { type: "button", class: "small", id: `rollback-${v.version}`, text: `Roll back to version ${v.version}` });
      button.addEventListener("click", () => rollBack(v.version, latest));
      action.append(button);
    } else {
      action.append(el("span", { class: "badge", text: "in force" }));
    }
    const keys = v.keys.join(", ") + (v.rollback_of ? ` (rollback to version ${v.rollback_of})` : "");
    body.append(el("tr", { "data-version": String(v.version) }, el("td", { text: String(v.version) }),
      el("td", { text: when(v.saved_at) }), el("td", { text: v.saved_by }), el("td", { text: keys }), action));
  }
}

async function rollBack(version, base) {
  const { status, ok, data } = await call("POST", "/v1/admin/settings/rollback", { version, base_version: base });
  if (ok) {
    $("history-status").textContent = `Version ${version}'s values are back, saved as version ${data.version}.`;
  } else if (status === 409) {
    $("history-status").textContent = "Someone saved in the meantime: the list is reloaded, try again.";
  } else {
    $("history-status").textContent = problemText(data, `Not rolled back (HTTP ${status}).`);
  }
  await loadSettings();
  await loadHistory();
}

// ---- start -------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", async () => {
  setUpTabs();
  $("email-max_per_connection").addEventListener("input", updateHint);
  $("email-smtp_threads").addEventListener("input", updateHint);
  $("email-form").addEventListener("submit", (event) => { event.preventDefault(); save($("email-form"), "email-saved"); });
  $("sms-form").addEventListener("submit", (event) => { event.preventDefault(); save($("sms-form"), "sms-saved"); });
  $("sms-module").addEventListener("change", describeModule);
  $("smtp-check").addEventListener("click", checkSmtp);
  $("email-test-form").addEventListener("submit", sendTestEmail);
  $("sms-check").addEventListener("click", checkModule);
  $("sms-test-form").addEventListener("submit", sendTestSms);
  $("lookup-form").addEventListener("submit", lookUp);
  $("reload").addEventListener("click", loadSettings);
  await loadSettings();
  const start = window.location.hash.slice(1);
  showTab(tabs.includes(start) ? start : "email");
});
