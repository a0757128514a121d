// updown: what the player page and the operator console share: calling
// the API, USDC amounts, errors next to their fields, the live stream.
"use strict";

const MICROS = 1000000n;
const MAX_MICROS = 9223372036854775807n;

/** "1.5" -> 1500000 (a Number; amounts stay far below 2^53 micro-USDC),
 * or throws an Error saying what is wrong. Exact: no floating point. */
function parseUsdc(text) {
  const value = String(text).trim();
  const match = /^(\d+)(?:\.(\d*))?$/.exec(value);
  if (!match) throw new Error(value.startsWith("-") ? "must not be negative" : "write an amount such as 1.5");
  const fraction = match[2] || "";
  if (fraction.length > 6) throw new Error("at most 6 decimals (1 micro-USDC)");
  const micros = BigInt(match[1]) * MICROS + BigInt((fraction + "000000").slice(0, 6));
  if (micros <= 0n) throw new Error("must be more than 0");
  if (micros > MAX_MICROS || micros > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error("too large");
  return Number(micros);
}

/** 1500000 -> "1.50" (two decimals at least, all that are needed). */
function formatUsdc(micros) {
  if (micros === null || micros === undefined) return "-";
  const negative = micros < 0;
  const whole = BigInt(Math.abs(micros));
  let fraction = String(whole % MICROS).padStart(6, "0").replace(/0+$/, "");
  if (fraction.length < 2) fraction = fraction.padEnd(2, "0");
  const text = (whole / MICROS).toLocaleString("en-US") + "." + fraction;
  return (negative ? "-" : "") + text;
}

/** Milliseconds the service's clock is ahead of this browser's. */
let clockOffset = 0;

/** Now by the service's clock (as last seen), in milliseconds. */
function serverNow() {
  return Date.now() + clockOffset;
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Calls the API on this origin; the session cookie goes along, and the
 * admin token when given. Resolves to the JSON answer (null when empty). */
async function api(method, path, body, token) {
  const headers = { accept: "application/json" };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (token) headers.authorization = "Bearer " + token;
  const response = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const serverTime = response.headers.get("x-server-time");
  if (serverTime) clockOffset = Date.parse(serverTime) - Date.now();
  const text = await response.text();
  const answer = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const error = (answer && answer.error) || {};
    throw new ApiError(response.status, error.code || "error", error.message || response.statusText);
  }
  return answer;
}

/** Shows `message` in the error slot of `field` (an input, or a form's
 * last slot); clears every slot of the form when message is empty. */
function showError(form, field, message) {
  if (!message) {
    form.querySelectorAll(".error").forEach((slot) => (slot.textContent = ""));
    form.querySelectorAll("[aria-invalid]").forEach((input) => input.removeAttribute("aria-invalid"));
    return;
  }
  const input = field ? form.querySelector(`[name="${field}"]`) : null;
  const slot = (input && document.getElementById(input.getAttribute("aria-describedby"))) ||
    form.querySelector(".error.form");
  if (input) input.setAttribute("aria-invalid", "true");
  slot.textContent = message;
}

/** The field an API error is about, from the words of its message. */
function fieldOf(form, error) {
  const message = (error.message || "").toLowerCase();
  const names = [...form.querySelectorAll("[name]")].map((input) => input.name);
  return names.find((name) => message.includes(name.replace(/_/g, " ")) || message.includes(name)) || null;
}

/** Wires `form` to `submit(values)`: errors go next to their field. */
function onSubmit(form, submit) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError(form, null, "");
    const values = Object.fromEntries(new FormData(form).entries());
    const button = form.querySelector("button[type=submit]");
    if (button) button.disabled = true;
    try {
      await submit(values, event.submitter);
    } catch (error) {
      const field = error.field || (error instanceof ApiError ? fieldOf(form, error) : null);
      showError(form, field, error.message);
    } finally {
      if (button) button.disabled = false;
    }
  });
}

/** An error about one field, raised before calling the API. */
function fieldError(field, message) {
  const error = new Error(message);
  error.field = field;
  return error;
}

/** Follows GET /events; `handle(type, data)` for each message. The
 * browser reconnects by itself; `onState(true|false)` tells. */
function follow(handle, onState) {
  const source = new EventSource("/events", { withCredentials: true });
  source.onopen = () => onState && onState(true);
  source.onerror = () => onState && onState(false);
  const types = ["round_opened", "pools", "bet_placed", "bet_cancelled", "round_locked", "round_settled",
    "round_voided", "deposit_credited", "withdrawal_updated", "resync"];
  for (const type of types) {
    source.addEventListener(type, (message) => handle(type, JSON.parse(message.data)));
  }
  return source;
}

/** Runs `work` at most once per `ms`, and once more after the last call:
 * a steady flow of calls (pools move ten times a second at the lock) still
 * runs it, where a debounce would wait for a pause that never comes. */
function throttle(work, ms) {
  let timer = null;
  let again = false;
  const run = () => {
    timer = null;
    if (!again) return;
    again = false;
    work();
    timer = setTimeout(run, ms);
  };
  return () => {
    again = true;
    if (timer === null) timer = setTimeout(run, 0);
  };
}

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

/** Seconds as "1d 02:03:04" or "02:03:04". */
function formatCountdown(seconds) {
  if (seconds <= 0) return "locked";
  const days = Math.floor(seconds / 86400);
  const rest = new Date((seconds % 86400) * 1000).toISOString().slice(11, 19);
  return days > 0 ? `${days}d ${rest}` : rest;
}
