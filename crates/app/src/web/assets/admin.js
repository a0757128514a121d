// updown: the operator console. Every call carries the admin token, which
// stays in this tab (sessionStorage); public round events keep it live.
"use strict";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "updown-admin-token";
const token = () => sessionStorage.getItem(TOKEN_KEY);
const admin = (method, path, body) => api(method, path, body, token());

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
    onclick: () => withdrawalStep(id, name) }, name === "submit" ? "approve" : name);
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
      el("td", {}, w.status, el("div", { class: "mono note" }, w.address), w.transactions.map(transaction),
        w.failure_reason ? el("div", { class: "note" }, w.failure_reason) : ""),
      el("td", {},
        // Signed by the hot wallet: its receipts decide, not a button.
        w.transactions.length ? "" : [
          w.status === "QUEUED" ? step(w.id, "submit") : "",
          ["QUEUED", "SUBMITTING", "SUBMITTED"].includes(w.status) ? [step(w.id, "confirm"), step(w.id, "fail")] : ""]))));
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
    await Promise.all([refreshWithdrawals(), refreshTvl()]);
  } catch (error) {
    showError(form, fieldOf(form, error), error.message);
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
  await Promise.all([refreshRounds(), refreshTvl(), token() ? refreshUsers() : null]);
}

async function everything() {
  const signedIn = !!token();
  $("who").textContent = signedIn ? "operator" : "no admin token";
  await Promise.all([refreshRounds(), refreshTvl()]);
  if (!signedIn) return;
  try {
    await Promise.all([refreshWithdrawals(), refreshUsers(), refreshChain(), runVerify()]);
  } catch (error) {
    if (error.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      $("token-section").classList.remove("hidden");
      showError($("token-form"), "token", "this token is not the admin token");
    }
  }
  $("token-section").classList.toggle("hidden", !!token());
}

document.addEventListener("DOMContentLoaded", () => {
  onSubmit($("token-form"), async (values) => {
    if (!values.token.trim()) throw fieldError("token", "paste the ADMIN_TOKEN serve was started with");
    sessionStorage.setItem(TOKEN_KEY, values.token.trim());
    $("token").value = "";
    await everything();
  });
  onSubmit($("round-form"), async (values, submitter) => {
    const action = submitter ? submitter.value : "settle";
    const code = values.code.trim();
    if (action !== "open" && !/^\d{8}$/.test(code)) throw fieldError("code", "pick a round (YYYYMMDD)");
    const reason = values.reason.trim() || undefined;
    if (action === "open") await admin("POST", "/admin/rounds", { reason: reason || "opened from the console", code: code || undefined });
    if (action === "lock") await admin("POST", `/admin/rounds/${code}/lock`, { reason });
    if (action === "settle") await admin("POST", `/admin/rounds/${code}/settle`, { result: values.result, reason });
    if (action === "void") await admin("POST", `/admin/rounds/${code}/void`, { reason });
    await changed();
  });
  $("verify-button").addEventListener("click", () => runVerify().catch((e) => ($("verify").textContent = e.message)));
  everything();
  const live = debounce(changed, 200);
  follow((type) => (type === "resync" ? everything() : live()), (on) => $("live").classList.toggle("on", on));
});
