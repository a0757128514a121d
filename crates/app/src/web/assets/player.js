// updown: the player page. Everything comes from the API with the session
// cookie (sign in or sign up here), and updates from GET /events.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { me: null, round: null, poolHistory: [] };

async function refreshRound() {
  try {
    const round = await api("GET", "/rounds/current");
    state.round = round;
    $("round-code").textContent = round.code;
    $("round-status").textContent = round.status;
    showPools(round);
  } catch (error) {
    $("round-code").textContent = "-";
    $("round-status").textContent = error.message;
    state.round = null;
  }
  tick();
}

/** The pools as a round or a `pools` event gives them. */
function showPools(pools) {
  $("pool-up").textContent = formatUsdc(pools.pool_up);
  $("pool-down").textContent = formatUsdc(pools.pool_down);
  $("mult-up").textContent = pools.implied_multiplier_up;
  $("mult-down").textContent = pools.implied_multiplier_down;
  $("bets-up").textContent = pools.bets_up;
  $("bets-down").textContent = pools.bets_down;
  const total = pools.pool_up + pools.pool_down;
  if (total > 0) state.poolHistory.push({ at: serverNow(), up: pools.pool_up / total });
  drawPoolChart();
}

/** The countdown to the lock, every second. */
function tick() {
  const round = state.round;
  if (!round) {
    $("countdown").textContent = "-";
    return;
  }
  const seconds = Math.floor((Date.parse(round.lock_at) - serverNow()) / 1000);
  $("countdown").textContent = formatCountdown(seconds);
  document.querySelectorAll("#bet-form button").forEach((b) => (b.disabled = seconds <= 0 || !state.me));
}

async function refreshMe() {
  try {
    state.me = await api("GET", "/me");
  } catch (error) {
    state.me = null;
  }
  const signedIn = !!state.me;
  $("who").textContent = signedIn ? state.me.email : "not signed in";
  $("balance").textContent = signedIn ? formatUsdc(state.me.available) : "-";
  $("signed-out").classList.toggle("hidden", signedIn);
  $("signed-in").classList.toggle("hidden", !signedIn);
  $("settings").classList.toggle("hidden", !signedIn);
  $("sign-out").classList.toggle("hidden", !signedIn);
  if (signedIn) {
    const limits = state.me.limits;
    $("limit-round").value = limits.max_stake_per_round === null ? "" : formatUsdc(limits.max_stake_per_round).replace(/,/g, "");
    $("limit-day").value = limits.max_stake_per_day === null ? "" : formatUsdc(limits.max_stake_per_day).replace(/,/g, "");
    $("excluded-until").value = limits.excluded_until ? limits.excluded_until.slice(0, 10) : "";
    const pending = limits.pending;
    const limit = (value) => value === null ? "no limit" : `${formatUsdc(value)} USDC`;
    $("limits-pending").textContent = pending
      ? `From ${pending.from}: per round ${limit(pending.max_stake_per_round)}, per day ${limit(pending.max_stake_per_day)}.`
      : "";
  }
  tick();
}

async function refreshMyBets() {
  const body = $("my-bets");
  if (!state.me || !state.round) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: 4, class: "note" }, "none")));
    return;
  }
  const bets = (await api("GET", "/me/bets")).filter((bet) => bet.round_id === state.round.id);
  const rows = bets.map((bet) =>
    el("tr", { "data-bet": bet.id },
      el("td", { class: bet.side }, bet.side),
      el("td", { class: "num" }, formatUsdc(bet.stake)),
      el("td", {}, bet.status),
      el("td", {}, bet.status === "ACTIVE" && state.round.status === "OPEN"
        ? el("button", { type: "button", class: "secondary", onclick: () => cancelBet(bet.id) }, "Cancel")
        : "")));
  body.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 4, class: "note" }, "none"))]));
}

async function cancelBet(id) {
  const form = $("bet-form");
  showError(form, null, "");
  try {
    await api("DELETE", `/bets/${id}`);
  } catch (error) {
    showError(form, null, error.message);
  }
  await Promise.all([refreshMe(), refreshMyBets(), refreshRound()]);
}

async function refreshWallet() {
  if (!state.me) return;
  const wallet = await api("POST", "/wallets");
  $("deposit-address").textContent = wallet.address;
  $("deposit-qr").src = `/qr.svg?text=${encodeURIComponent(wallet.address)}`;
}

/** Deposits seen on the chain (with their confirmations) and credited. */
async function refreshDeposits() {
  if (!state.me) return;
  const deposits = await api("GET", "/me/deposits?limit=5");
  const rows = [
    ...deposits.pending.map((d) => el("tr", {},
      el("td", { class: "num" }, formatUsdc(d.amount)),
      el("td", {}, `pending: ${d.confirmations} of ${deposits.required_confirmations} confirmations`))),
    ...deposits.credited.map((d) => el("tr", {},
      el("td", { class: "num" }, formatUsdc(d.amount)),
      el("td", {}, "credited"))),
  ];
  $("deposits").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 2, class: "note" }, "none yet"))]));
}

async function refreshWithdrawals() {
  if (!state.me) return;
  const withdrawals = await api("GET", "/me/withdrawals");
  $("withdrawals").replaceChildren(...withdrawals.slice(0, 10).map((w) =>
    el("tr", {},
      el("td", { class: "num" }, formatUsdc(w.amount)),
      el("td", {}, w.status, w.failure_reason ? ` (${w.failure_reason})` : ""),
      el("td", { class: "mono opt" }, w.chain_tx_hash ? w.chain_tx_hash.slice(0, 12) + "…" : ""))));
}

async function refreshKeys() {
  if (!state.me) return;
  const keys = await api("GET", "/me/api-keys");
  $("keys").replaceChildren(...keys.filter((k) => !k.revoked_at).map((key) =>
    el("tr", { "data-prefix": key.prefix },
      el("td", { class: "mono" }, key.prefix + "…"),
      el("td", { class: "opt" }, key.created_at.slice(0, 10)),
      el("td", {}, el("button", { type: "button", class: "secondary", onclick: () => revokeKey(key.id) }, "Revoke")))));
}

async function revokeKey(id) {
  await api("DELETE", `/me/api-keys/${id}`);
  $("new-key").textContent = "";
  await refreshKeys();
}

/** Past rounds with their closes, and my profit or loss in each (from
 * my statement: stakes out, payouts and refunds in). */
async function refreshHistory() {
  const rounds = (await api("GET", "/rounds?limit=30")).filter((r) => r.status === "SETTLED" || r.status === "VOID");
  const mine = {};
  if (state.me) {
    for (const line of await api("GET", "/me/statement?limit=1000")) {
      if (line.round) mine[line.round] = (mine[line.round] || 0) + line.amount;
    }
  }
  $("history").replaceChildren(...rounds.map((r) =>
    el("tr", { "data-round": r.code },
      el("td", {}, el("button", { type: "button", class: "secondary", title: "the proof: every source asked and what it answered",
        onclick: () => showProof(r.code) }, r.code)),
      el("td", { class: "num" }, r.close ? r.close.close : "-"),
      el("td", { class: "num opt" }, r.previous_close ? r.previous_close.close : "-"),
      el("td", {}, el("span", { class: r.result || "" }, r.status === "VOID" ? "VOID" : r.result),
        // Who decided: the oracle's closes, or named operators by hand.
        r.settled_by ? el("div", { class: "note" }, `by ${r.settled_by}`) : ""),
      el("td", { class: "num" }, r.code in mine ? formatUsdc(mine[r.code]) : ""))));
  drawClosesChart(rounds.filter((r) => r.close).reverse());
}

/** A settled round's proof (GET /rounds/{code}): its terms' digest, both
 * closes, and what every source asked for them answered, when, and
 * which agreed. */
async function showProof(code) {
  let r;
  try {
    r = await api("GET", `/rounds/${encodeURIComponent(code)}`);
  } catch (error) {
    $("proof").replaceChildren(`round ${code}: ${error.message}`);
    $("proof").classList.remove("hidden");
    return;
  }
  const lines = [el("div", {}, `round ${r.code}: ${r.status}${r.result ? ` ${r.result}` : ""}, terms digest ${r.terms_digest}`),
    el("div", {}, `closes from: ${r.oracle ?? "not named in these terms"}`),
    el("div", {}, r.dispute_min == null ? "dispute window: not named in these terms"
      : r.dispute_min === 0 ? "dispute window: none, paid once settled"
      : `dispute window: the oracle's UP or DOWN is paid ${r.dispute_min} min after it is published${r.payouts_at ? ` (${r.payouts_at})` : ""}`)];
  for (const [label, price] of [["close", r.close], ["previous close", r.previous_close]]) {
    if (!price) continue;
    lines.push(el("div", {}, `${label} of ${price.date}: ${price.close} from ${price.source} (recorded ${price.fetched_at})`));
    lines.push(el("ul", {}, ...(price.sources || []).map((s) =>
      el("li", { class: s.agreed ? "" : "DOWN", "data-source": s.source },
        `${s.source}: ${s.close ?? s.error ?? "no close yet"} at ${s.answered_at}${s.agreed ? " (agreed)" : " (not used)"}`))));
  }
  if (r.settled_by) lines.push(el("div", {}, `settled by ${r.settled_by}${r.settle_reason ? `: ${r.settle_reason}` : ""}`));
  $("proof").replaceChildren(...lines);
  $("proof").classList.remove("hidden");
}

function drawClosesChart(rounds) {
  const svg = $("closes-chart");
  const width = 600, height = 160, pad = 10;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  if (rounds.length === 0) {
    svg.replaceChildren();
    return;
  }
  const closes = rounds.map((r) => Number(r.close.close));
  const low = Math.min(...closes), high = Math.max(...closes), span = high - low || 1;
  const x = (i) => pad + (i * (width - 2 * pad)) / Math.max(rounds.length - 1, 1);
  const y = (v) => height - pad - ((v - low) * (height - 2 * pad)) / span;
  const ns = "http://www.w3.org/2000/svg";
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", closes.map((v, i) => `${x(i)},${y(v)}`).join(" "));
  line.setAttribute("fill", "none");
  line.setAttribute("stroke", "#5b6675");
  const dots = rounds.map((r, i) => {
    const dot = document.createElementNS(ns, "circle");
    dot.setAttribute("cx", x(i));
    dot.setAttribute("cy", y(closes[i]));
    dot.setAttribute("r", 4);
    dot.setAttribute("fill", r.result === "UP" ? "#0a7d3b" : r.result === "DOWN" ? "#b42318" : "#999");
    const title = document.createElementNS(ns, "title");
    title.textContent = `${r.code}: ${r.close.close} ${r.result || r.status}`;
    dot.append(title);
    return dot;
  });
  svg.replaceChildren(line, ...dots);
}

function drawPoolChart() {
  const svg = $("pool-chart");
  const width = 600, height = 160;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const points = state.poolHistory.slice(-200);
  if (points.length === 0) return;
  const first = points[0].at, span = Math.max(points[points.length - 1].at - first, 1);
  const ns = "http://www.w3.org/2000/svg";
  const area = document.createElementNS(ns, "polygon");
  const top = points.map((p) => `${((p.at - first) * width) / span},${height - p.up * height}`);
  area.setAttribute("points", `0,${height} ${top.join(" ")} ${width},${height - points[points.length - 1].up * height} ${width},${height}`);
  area.setAttribute("fill", "#0a7d3b");
  const background = document.createElementNS(ns, "rect");
  background.setAttribute("width", width);
  background.setAttribute("height", height);
  background.setAttribute("fill", "#b42318");
  svg.replaceChildren(background, area);
}

function wireForms() {
  onSubmit($("sign-in-form"), async (values) => {
    await api("POST", "/sessions", { email: values.email, password: values.password });
    await everything();
  });
  onSubmit($("sign-up-form"), async (values) => {
    await api("POST", "/users", { email: values.email, password: values.password });
    await api("POST", "/sessions", { email: values.email, password: values.password });
    await everything();
  });
  $("sign-out").addEventListener("click", async () => {
    await api("DELETE", "/sessions");
    await everything();
  });
  onSubmit($("bet-form"), async (values, submitter) => {
    let amount;
    try {
      amount = parseUsdc(values.amount);
    } catch (error) {
      throw fieldError("amount", error.message);
    }
    const side = submitter ? submitter.value : "UP";
    await api("POST", "/bets", { side, amount });
    $("bet-amount").value = "";
    await Promise.all([refreshMe(), refreshMyBets(), refreshRound()]);
  });
  onSubmit($("withdraw-form"), async (values) => {
    let amount;
    try {
      amount = parseUsdc(values.amount);
    } catch (error) {
      throw fieldError("amount", error.message);
    }
    if (!values.address.trim()) throw fieldError("address", "give the address to send to");
    await api("POST", "/withdrawals", { amount, address: values.address.trim() });
    $("withdraw-amount").value = "";
    await Promise.all([refreshMe(), refreshWithdrawals()]);
  });
  onSubmit($("limits-form"), async (values) => {
    const optional = (field) => {
      if (!values[field].trim()) return null;
      try {
        return parseUsdc(values[field]);
      } catch (error) {
        throw fieldError(field, error.message);
      }
    };
    await api("PUT", "/me/limits", {
      max_stake_per_round: optional("max_stake_per_round"),
      max_stake_per_day: optional("max_stake_per_day"),
      excluded_until: values.excluded_until || null,
    });
    await refreshMe();
  });
  onSubmit($("key-form"), async () => {
    const created = await api("POST", "/me/api-keys");
    $("new-key").textContent = `${created.api_key} (shown once: copy it now)`;
    await refreshKeys();
  });
}

async function everything() {
  const before = !!state.me;
  await refreshMe();
  // The stream carries the user's own events only when opened signed in.
  if (state.connect && (!state.source || before !== !!state.me)) state.connect();
  await refreshRound();
  await Promise.all([refreshMyBets(), refreshWallet(), refreshDeposits(), refreshWithdrawals(), refreshKeys(), refreshHistory()]);
}

document.addEventListener("DOMContentLoaded", () => {
  const roundChanged = throttle(() => refreshRound().then(refreshMyBets), 500);
  const settled = throttle(() => Promise.all([refreshMe(), refreshHistory(), refreshMyBets()]), 500);
  const mine = throttle(() => Promise.all([refreshMe(), refreshMyBets()]), 500);
  const handle = (type, data) => {
    if (type === "resync") return everything();
    // The pools come whole in the event: no request per move.
    if (type === "pools") {
      if (state.round && data.payload.round === state.round.code) showPools(data.payload);
      return;
    }
    // Only the player's own bets come one by one.
    if (["bet_placed", "bet_cancelled"].includes(type)) mine();
    if (["round_opened", "round_locked"].includes(type)) roundChanged();
    if (["round_settled", "round_voided"].includes(type)) { roundChanged(); settled(); }
    if (type === "deposit_credited") Promise.all([refreshMe(), refreshDeposits()]);
    if (type === "withdrawal_updated") Promise.all([refreshMe(), refreshWithdrawals()]);
  };
  state.connect = () => {
    if (state.source) state.source.close();
    state.source = follow(handle, (on) => $("live").classList.toggle("on", on));
  };
  wireForms();
  everything();
  setInterval(tick, 1000);
});
