// updown: the operator console. Operators sign in with their password
// (and a one-time code once two-factor is on): the session cookie goes
// with every call. A token (ADMIN_TOKEN, break-glass, or an op_ token)
// may be used instead; it stays in this tab (sessionStorage). What the
// signed-in role may not do is shown disabled; the API refuses it anyway.
"use strict";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "updown-admin-token";
const token = () => sessionStorage.getItem(TOKEN_KEY);
const admin = (method, path, body) => api(method, path, body, token());

/** Who is signed in (GET /admin/me), or null. */
let me = null;
const can = (area) => !!me && me.areas.includes(area);
/** The area whose roles decide an approval of this kind. */
const areaOf = (kind) => (kind === "withdrawal" ? "money" : "rounds");

/** Disables every control marked data-needs that the role does not open. */
function applyRole() {
  document.querySelectorAll("[data-needs]").forEach((control) => {
    const allowed = can(control.dataset.needs);
    control.disabled = !allowed;
    control.title = allowed ? "" : `your role (${me ? me.role : "none"}) does not allow this`;
  });
}

async function refreshRounds() {
  const rounds = await api("GET", "/rounds?limit=20");
  $("rounds").replaceChildren(...rounds.map((r) =>
    el("tr", { "data-round": r.code },
      el("td", {}, el("button", { type: "button", class: "secondary", onclick: () => { $("round-code-input").value = r.code; } }, r.code)),
      el("td", {}, r.status),
      el("td", { class: "num" }, formatUsdc(r.pool_up), ` (${r.bets_up})`),
      el("td", { class: "num" }, formatUsdc(r.pool_down), ` (${r.bets_down})`),
      el("td", { class: r.result || "" }, r.result || ""),
      el("td", { class: "opt note" },
        r.close ? `close ${r.close.close} (${r.close.source})` : "",
        r.previous_close ? ` vs ${r.previous_close.close}` : "",
        r.settled_by ? ` · by ${r.settled_by}` : "",
        r.settle_reason ? ` · ${r.settle_reason}` : ""))));
}

async function refreshTvl() {
  const tvl = await api("GET", "/tvl");
  const rows = [["total", tvl.total], ["user balances", tvl.user_balances], ["round pools", tvl.round_pools],
    ["withdrawals pending", tvl.withdrawals_pending], ["house fees", tvl.house_fees],
    ["house rounding", tvl.house_rounding], ["custody", tvl.custody]];
  $("tvl").replaceChildren(...rows.map(([name, value]) =>
    el("tr", {}, el("th", {}, name), el("td", { class: "num" }, formatUsdc(value)))));
}

async function refreshWithdrawals() {
  const withdrawals = await admin("GET", "/admin/withdrawals?limit=50");
  const step = (id, name) => el("button", { type: "button", class: name === "fail" ? "down" : "secondary",
    "data-needs": "money", disabled: !can("money"), onclick: () => withdrawalStep(id, name) },
  name === "submit" ? "approve" : name);
  // The hot wallet's transactions: hash (a link with EXPLORER_TX_URL),
  // state, confirmations; replaced ones struck through.
  const transaction = (t) => el("div", { class: "mono note", "data-tx": t.tx_hash },
    el(t.state === "replaced" ? "s" : "span", {},
      t.explorer_url ? el("a", { href: t.explorer_url, rel: "noreferrer" }, t.tx_hash) : t.tx_hash),
    ` nonce ${t.nonce} · ${t.state}`,
    t.confirmations !== null ? ` · ${t.confirmations} confirmations` : "");
  $("withdrawals").replaceChildren(...withdrawals.map((w) =>
    el("tr", { "data-withdrawal": w.id },
      el("td", {}, w.id),
      el("td", { class: "num" }, formatUsdc(w.amount)),
      el("td", {}, w.status, w.awaiting_approval ? " · awaiting two approvals" : "",
        el("div", { class: "mono note" }, w.address), w.transactions.map(transaction),
        w.failure_reason ? el("div", { class: "note" }, w.failure_reason) : ""),
      el("td", {},
        // Signed by the hot wallet: its receipts decide, not a button.
        // Awaiting approval: the approval queue decides.
        w.transactions.length ? "" : [
          w.status === "QUEUED" && !w.awaiting_approval ? step(w.id, "submit") : "",
          ["QUEUED", "SUBMITTING", "SUBMITTED"].includes(w.status) && !w.awaiting_approval ? step(w.id, "confirm") : "",
          ["QUEUED", "SUBMITTING", "SUBMITTED"].includes(w.status) ? step(w.id, "fail") : ""]))));
}

async function withdrawalStep(id, name) {
  const form = $("withdrawal-form");
  showError(form, null, "");
  const values = Object.fromEntries(new FormData(form).entries());
  const body = {};
  if (name === "fail") {
    if (!values.reason.trim()) return showError(form, "reason", "a failed withdrawal needs a reason");
    body.reason = values.reason.trim();
  }
  // Confirm: the transaction sent. Fail, once it may be on the chain: the
  // transaction the chain rejected (nothing else can fail it then).
  if (values.tx_hash.trim()) body.tx_hash = values.tx_hash.trim();
  try {
    await admin("POST", `/admin/withdrawals/${id}/${name}`, body);
    await Promise.all([refreshWithdrawals(), refreshTvl(), refreshApprovals()]);
  } catch (error) {
    showError(form, fieldOf(form, error), error.message);
  }
}

/** The approval queue: pending first; each decided by its area's roles,
 * never by whoever asked, once per person. */
async function refreshApprovals() {
  const pending = await admin("GET", "/admin/approvals?state=pending&limit=100");
  const mine = (a) => me && me.credential !== "break-glass" && a.requested_by !== me.actor
    && can(areaOf(a.kind)) && !a.votes.some((v) => v.operator === me.actor);
  const what = (a) => a.kind === "withdrawal"
    ? `withdrawal ${a.subject}` : `round ${a.subject}: ${a.action}${a.reason ? ` (${a.reason})` : ""}`;
  const decide = (a, verb) => el("button", { type: "button", class: verb === "reject" ? "down" : "",
    "data-decide": verb, disabled: !mine(a), onclick: () => decideApproval(a.id, verb) }, verb);
  $("approvals").replaceChildren(...pending.map((a) =>
    el("tr", { "data-approval": a.id, class: mine(a) ? "mine" : "" },
      el("td", {}, a.id),
      el("td", {}, what(a)),
      el("td", { class: "opt" }, a.requested_by),
      el("td", { class: "note" }, `${a.votes.filter((v) => v.approve).length} of ${a.needed}`,
        a.votes.map((v) => el("div", {}, `${v.approve ? "yes" : "no"}: ${v.operator}`))),
      el("td", {}, decide(a, "approve"), " ", decide(a, "reject")))));
  const waiting = pending.filter(mine).length;
  $("approvals-mine").textContent = waiting ? `${waiting} waiting for you` : "nothing waiting for you";
}

async function decideApproval(id, verb) {
  const reason = $("approval-reason").value.trim();
  $("approval-error").textContent = "";
  if (verb === "reject" && !reason) {
    $("approval-error").textContent = "a rejection needs a reason";
    return;
  }
  try {
    await admin("POST", `/admin/approvals/${id}/${verb}`, reason ? { reason } : {});
    await Promise.all([refreshApprovals(), refreshWithdrawals(), refreshRounds(), refreshTvl()]);
  } catch (error) {
    $("approval-error").textContent = error.message;
  }
}

/** The deposit watcher, reorgs waiting for acknowledgement, custody. */
async function refreshChain() {
  const chain = await admin("GET", "/admin/chain");
  const lines = [];
  if (chain.deposit_source !== "evm" && chain.cursor === null) {
    lines.push(el("li", {}, "deposits by webhook only (DEPOSIT_SOURCE=webhook)"));
  } else {
    lines.push(el("li", {}, `watcher at block ${chain.cursor ?? "-"}, head ${chain.head ?? "unknown"}, `
      + `${chain.lag ?? "?"} confirmed blocks behind`));
  }
  if (chain.last_error) lines.push(el("li", { class: "DOWN" }, `node failing: ${chain.last_error}`));
  for (const r of chain.reorgs.filter((r) => !r.acked_at)) {
    lines.push(el("li", { class: "DOWN" }, `HALTED: reorg ${r.id} from block ${r.fork_block} (depth ${r.depth}); `
      + `${r.affected.length} credits affected; acknowledge with updown chain ack-reorg --id ${r.id}`));
  }
  const hot = chain.sender;
  if (hot) {
    lines.push(el("li", { class: hot.holding || hot.nonce_conflict ? "DOWN" : "", "data-hot-wallet": hot.address },
      `hot wallet ${hot.address}: `
      + `${hot.eth_wei !== null ? `${(Number(hot.eth_wei) / 1e18).toFixed(4)} ETH` : "ETH unknown"}, `
      + `${hot.token_balance !== null ? formatUsdc(Number(hot.token_balance)) : "token unknown"}`
      + (hot.holding ? ` · HOLDING: ${hot.holding}` : "")
      + (hot.nonce_conflict ? ` · NONCE CONFLICT: ${hot.nonce_conflict}` : "")));
  }
  const check = chain.custody_checks[0];
  if (check) {
    lines.push(el("li", { class: check.status === "shortfall" ? "DOWN" : "" },
      `custody at block ${check.block}: chain ${formatUsdc(Number(check.chain_total))} vs ledger `
      + `${formatUsdc(check.ledger_total)}: ${check.status}`));
  }
  $("chain").replaceChildren(...lines);
}

/** The oracle in use, and what its sources did that needs a look: a
 * disagreement (the round waits) or a revised close (never re-settled). */
async function refreshOracle() {
  const report = await admin("GET", "/admin/oracle");
  const lines = [el("li", {}, `oracle: ${report.oracle}`)];
  const week = Date.now() - 7 * 24 * 3600 * 1000;
  for (const i of report.incidents) {
    lines.push(el("li", { class: Date.parse(i.at) >= week ? "DOWN" : "", "data-incident": i.kind },
      `${i.kind === "revision" ? "REVISED" : "SOURCES DISAGREE"} on the close of ${i.date}: ${i.detail} (seen ${i.at})`));
  }
  if (report.incidents.length === 0) lines.push(el("li", {}, "no disagreement or revision seen"));
  $("oracle").replaceChildren(...lines);
}

async function refreshUsers() {
  const users = await admin("GET", "/admin/users?limit=200");
  $("users").replaceChildren(...users.map((u) =>
    el("tr", {},
      el("td", {}, u.email),
      el("td", { class: "num" }, formatUsdc(u.available)),
      el("td", { class: "opt note" }, [
        u.limits.max_stake_per_round !== null ? `round ≤ ${formatUsdc(u.limits.max_stake_per_round)}` : "",
        u.limits.max_stake_per_day !== null ? ` day ≤ ${formatUsdc(u.limits.max_stake_per_day)}` : "",
        u.limits.excluded_until ? ` excluded until ${u.limits.excluded_until}` : "",
      ].join("")))));
}

/** Operators, for admins: role, two-factor, state, and what to change. */
async function refreshOperators() {
  const operators = await admin("GET", "/admin/operators");
  const act = (o, label, run, cls) => el("button", { type: "button", class: cls || "secondary",
    "data-needs": "operators", onclick: () => operatorAction(run) }, label);
  $("operators").replaceChildren(...operators.map((o) => {
    const role = el("select", { "aria-label": `role of ${o.email}` },
      ["viewer", "support", "operator", "treasurer", "admin"].map((r) =>
        el("option", r === o.role ? { value: r, selected: "selected" } : { value: r }, r)));
    return el("tr", { "data-operator": o.email },
      el("td", {}, o.email),
      el("td", {}, o.disabled_at ? o.role : role),
      el("td", { class: "opt note" }, o.disabled_at ? `disabled ${o.disabled_at}` : "enabled",
        o.totp ? " · two-factor" : " · password only", o.locked_until ? ` · locked until ${o.locked_until}` : ""),
      el("td", {}, o.disabled_at ? "" : [
        act(o, "set role", (reason) => admin("POST", `/admin/operators/${o.id}/role`, { role: role.value, reason })),
        act(o, "reset password", async () => {
          const reset = await admin("POST", `/admin/operators/${o.id}/reset-password`);
          $("operator-password").textContent = `${o.email}: new password (shown once) ${reset.password}`;
        }),
        o.totp ? act(o, "reset two-factor", (reason) =>
          admin("POST", `/admin/operators/${o.id}/reset-totp`, { reason })) : "",
        act(o, "disable", (reason) => admin("POST", `/admin/operators/${o.id}/disable`, { reason }), "down")]));
  }));
  applyRole();
}

async function operatorAction(run) {
  const form = $("operator-form");
  showError(form, null, "");
  try {
    await run($("operator-reason").value.trim() || undefined);
    await refreshOperators();
  } catch (error) {
    showError(form, fieldOf(form, error), error.message);
  }
}

/** The signed-in operator's own tokens: listed, made (shown once), revoked. */
async function refreshMyTokens() {
  const tokens = await admin("GET", "/admin/me/tokens");
  $("my-tokens").replaceChildren(...tokens.filter((t) => !t.revoked_at).map((t) =>
    el("tr", { "data-token": t.id },
      el("td", {}, t.name), el("td", { class: "note opt" }, t.created_at),
      el("td", {}, el("button", { type: "button", class: "secondary", onclick: async () => {
        await admin("DELETE", `/admin/me/tokens/${t.id}`);
        await refreshMyTokens();
      } }, "revoke")))));
}

async function runVerify() {
  $("verify").textContent = "checking…";
  const report = await admin("GET", "/admin/verify");
  const failed = report.checks.filter((c) => !c.passed);
  $("verify").textContent = report.ok
    ? `OK: ${report.checks.length} checks over ${report.transactions} transactions`
    : `FAILED: ${failed.map((c) => `${c.name}: ${c.detail}`).join("; ")}`;
  $("verify").className = report.ok ? "UP" : "DOWN";
}

/** What a round event or an action changes: rounds, TVL, balances. */
async function changed() {
  await Promise.all([refreshRounds(), refreshTvl(), me ? refreshUsers() : null, me ? refreshApprovals() : null]);
}

async function whoAmI() {
  try {
    return await admin("GET", "/admin/me");
  } catch (error) {
    if (error.status !== 401) throw error;
    if (token()) {
      sessionStorage.removeItem(TOKEN_KEY);
      showError($("token-form"), "token", error.message);
    }
    return null;
  }
}

async function everything() {
  await Promise.all([refreshRounds(), refreshTvl()]);
  me = await whoAmI();
  $("who").textContent = me ? `${me.actor} (${me.role})` : "not signed in";
  $("sign-out").classList.toggle("hidden", !me);
  $("sign-in-section").classList.toggle("hidden", !!me);
  $("approvals-section").classList.toggle("hidden", !me);
  $("account-section").classList.toggle("hidden", !me || me.totp === null);
  $("operators-section").classList.toggle("hidden", !can("operators"));
  if (me && me.totp !== null) {
    $("totp-status").textContent = me.totp
      ? "Two-factor is on: signing in asks for a code from your app."
      : "Two-factor is off: anyone with your password can sign in as you. Set it up.";
    $("totp-start").classList.toggle("hidden", me.totp);
  }
  applyRole();
  if (!me) return;
  await Promise.all([refreshWithdrawals(), refreshUsers(), refreshChain(), refreshOracle(), runVerify(), refreshApprovals(),
    can("operators") ? refreshOperators() : null, me.totp !== null ? refreshMyTokens() : null]);
}

/** Draws the server's QR (an SVG document) inline: no image URL holds the
 * secret, and the page's policy allows no data: images. */
function drawQr(svgText) {
  const svg = new DOMParser().parseFromString(svgText, "image/svg+xml").documentElement;
  svg.setAttribute("class", "qr");
  $("totp-qr").replaceChildren(document.importNode(svg, true));
}

document.addEventListener("DOMContentLoaded", () => {
  onSubmit($("sign-in-form"), async (values) => {
    if (!values.email.trim()) throw fieldError("email", "your operator email");
    if (!values.password) throw fieldError("password", "your password");
    const body = { email: values.email.trim(), password: values.password };
    if (values.code.trim()) body.code = values.code.trim();
    try {
      await api("POST", "/admin/sessions", body);
    } catch (error) {
      if (/code/.test(error.message)) throw fieldError("code", error.message);
      throw error;
    }
    sessionStorage.removeItem(TOKEN_KEY);
    $("sign-in-password").value = "";
    $("sign-in-code").value = "";
    await everything();
  });
  onSubmit($("token-form"), async (values) => {
    if (!values.token.trim()) throw fieldError("token", "paste ADMIN_TOKEN or your op_ token");
    sessionStorage.setItem(TOKEN_KEY, values.token.trim());
    $("token").value = "";
    await everything();
  });
  $("sign-out").addEventListener("click", async () => {
    sessionStorage.removeItem(TOKEN_KEY);
    await api("DELETE", "/admin/sessions").catch(() => null);
    await everything();
  });
  $("totp-start").addEventListener("click", async () => {
    const setup = await admin("POST", "/admin/me/totp");
    drawQr(setup.qr_svg);
    $("totp-secret").textContent = setup.secret;
    $("totp-setup").classList.remove("hidden");
  });
  onSubmit($("totp-form"), async (values) => {
    if (!/^\d{6}$/.test(values.code.trim())) throw fieldError("code", "the 6 digits your app shows");
    await admin("POST", "/admin/me/totp/confirm", { code: values.code.trim() });
    $("totp-setup").classList.add("hidden");
    $("totp-code").value = "";
    await everything();
  });
  onSubmit($("password-form"), async (values) => {
    if (values.new.length < 8) throw fieldError("new", "at least 8 characters");
    await admin("POST", "/admin/me/password", { current: values.current, new: values.new });
    await everything();
  });
  onSubmit($("my-token-form"), async (values) => {
    if (!values.name.trim()) throw fieldError("name", "say what the token is for");
    const made = await admin("POST", "/admin/me/tokens", { name: values.name.trim() });
    $("my-token").textContent = `${made.token} (shown once: Authorization: Bearer ...)`;
    $("my-token-name").value = "";
    await refreshMyTokens();
  });
  onSubmit($("operator-form"), async (values) => {
    if (!values.email.trim()) throw fieldError("email", "the new operator's email");
    const added = await admin("POST", "/admin/operators", { email: values.email.trim(), role: values.role });
    $("operator-password").textContent = `${added.operator.email}: password (shown once) ${added.password}`;
    $("operator-email").value = "";
    await refreshOperators();
  });
  onSubmit($("round-form"), async (values, submitter) => {
    const action = submitter ? submitter.value : "settle";
    const code = values.code.trim();
    $("round-note").textContent = "";
    if (action !== "open" && !/^\d{8}$/.test(code)) throw fieldError("code", "pick a round (YYYYMMDD)");
    const reason = values.reason.trim() || undefined;
    let answer = null;
    if (action === "open") answer = await admin("POST", "/admin/rounds", { reason: reason || "opened from the console", code: code || undefined });
    if (action === "lock") answer = await admin("POST", `/admin/rounds/${code}/lock`, { reason });
    if (action === "settle") answer = await admin("POST", `/admin/rounds/${code}/settle`, { result: values.result, reason });
    if (action === "void") answer = await admin("POST", `/admin/rounds/${code}/void`, { reason });
    if (answer && answer.kind === "settlement") {
      $("round-note").textContent = `${answer.action} for round ${answer.subject} waits for a second operator's approval (#${answer.id})`;
    }
    await changed();
  });
  $("verify-button").addEventListener("click", () => runVerify().catch((e) => ($("verify").textContent = e.message)));
  everything();
  const live = throttle(changed, 1000);
  follow((type) => (type === "resync" ? everything() : live()), (on) => $("live").classList.toggle("on", on));
});
