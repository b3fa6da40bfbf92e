//! The live status page at `/`: one HTML file with its script and styles inline (no
//! external script, font or stylesheet), polling `/status`, `/exits/history` and
//! `/alerts` every second. Reading needs nothing; the force-exit buttons send the bearer
//! token the operator types in (kept in the tab's session storage only), under the same
//! rules as every control route. And the recent alerts it shows.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use kyzlo_application::ports::{Alert, AlertSink, PortError};
use serde::Serialize;

/// The alerts kept for the page.
pub const RECENT_ALERTS: usize = 50;

/// One alert as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertDto {
    /// Its kind (`trading_halted`, ...).
    pub kind: &'static str,
    /// `info`, `warning` or `critical`.
    pub severity: &'static str,
    /// The message.
    pub message: String,
    /// Seconds since the Unix epoch when it was sent.
    pub at_unix_s: u64,
}

/// The latest alerts, newest last: an alert sink beside the webhooks, read by the page.
#[derive(Debug, Default)]
pub struct RecentAlerts {
    alerts: Mutex<VecDeque<AlertDto>>,
}

impl RecentAlerts {
    /// The alerts kept, newest first.
    #[must_use]
    pub fn newest_first(&self) -> Vec<AlertDto> {
        let alerts = self.alerts.lock().unwrap_or_else(PoisonError::into_inner);
        alerts.iter().rev().cloned().collect()
    }
}

#[async_trait]
impl AlertSink for RecentAlerts {
    async fn send(&self, alert: &Alert) -> Result<(), PortError> {
        let at_unix_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut alerts = self.alerts.lock().unwrap_or_else(PoisonError::into_inner);
        if alerts.len() >= RECENT_ALERTS {
            alerts.pop_front();
        }
        alerts.push_back(AlertDto {
            kind: alert.kind.as_str(),
            severity: alert.severity.as_str(),
            message: alert.message.clone(),
            at_unix_s,
        });
        Ok(())
    }
}

/// The page.
pub const STATUS_PAGE: &str = r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>kyzlo status</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1b1f24;background:#f6f8fa}
header{background:#24292f;color:#fff;padding:10px 16px;display:flex;gap:16px;align-items:center;flex-wrap:wrap}
header h1{font-size:18px;margin:0}
#state{font-weight:700;padding:2px 10px;border-radius:12px;background:#2da44e}
#state.halted{background:#cf222e}#state.reduce_only{background:#bf8700}
main{padding:12px 16px;display:grid;gap:12px;grid-template-columns:repeat(auto-fit,minmax(420px,1fr))}
section{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:8px 12px}
h2{font-size:15px;margin:4px 0 8px}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:3px 6px;border-bottom:1px solid #eaeef2;font-size:13px;vertical-align:top}
button{font:inherit;padding:2px 8px;cursor:pointer}
#token{width:220px}#action{font-size:13px;color:#57606a}
.muted{color:#57606a}.critical{color:#cf222e}.warning{color:#9a6700}
</style></head><body>
<header><h1>kyzlo</h1><span id="state">loading</span><span id="reason" class="muted"></span>
<span class="muted" id="updated"></span>
<label class="muted">bearer token <input id="token" type="password" autocomplete="off"></label>
<span id="action"></span></header>
<main>
<section><h2>Positions</h2><table id="positions"><thead><tr><th>id</th><th>entry</th><th>remaining (base units)</th><th>exit plan</th><th>exit</th><th></th></tr></thead><tbody></tbody></table></section>
<section><h2>Breakers</h2><table id="breakers"><tbody></tbody></table></section>
<section><h2>Exits</h2><table id="exits"><thead><tr><th>intent</th><th>position</th><th>reason</th><th>outcome</th><th>attempts</th></tr></thead><tbody></tbody></table></section>
<section><h2>Alerts</h2><table id="alerts"><tbody></tbody></table></section>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({"&":"&amp;","<":"&lt;",">":"&gt;","\"":"&quot;"}[c]));
const token = $("token");
token.value = sessionStorage.getItem("kyzlo-token") || "";
token.addEventListener("change", () => sessionStorage.setItem("kyzlo-token", token.value));
async function get(path) {
  const r = await fetch(path, {cache: "no-store"});
  if (!r.ok) throw new Error(path + ": " + r.status);
  return r.json();
}
async function forceExit(id) {
  $("action").textContent = "force-exit pos-" + id + "...";
  const headers = token.value ? {Authorization: "Bearer " + token.value} : {};
  const r = await fetch("/positions/" + id + "/exit", {method: "POST", headers});
  const body = await r.json().catch(() => ({}));
  $("action").textContent = r.ok
    ? "force-exit of pos-" + id + " started: intent " + body.intent
    : "force-exit of pos-" + id + " refused (" + r.status + "): " + (body.message || "");
  refresh();
}
function render(status, history, alerts) {
  const t = status.trading;
  const state = $("state");
  state.textContent = t.state;
  state.className = t.state;
  $("reason").textContent = t.halt_reason ? t.halt_reason.cause + ": " + t.halt_reason.detail
    : (t.reduce_only_cause ? "entries paused: " + t.reduce_only_cause : "");
  $("positions").tBodies[0].innerHTML = status.positions.map((p) =>
    "<tr><td>pos-" + p.id + "</td><td>" + p.entry_price.toFixed(4) + "</td><td>" + p.remaining_base_units +
    "</td><td>stop " + p.stop_level.toFixed(4) + "<br><span class=muted>peak " + p.peak.toFixed(4) +
    (p.next_take_profit === null || p.next_take_profit === undefined ? "" : ", next take-profit " + p.next_take_profit.toFixed(4)) +
    "</span></td><td>" + (p.exiting ? "running" : "") +
    "</td><td><button data-exit=\"" + p.id + "\">force-exit</button></td></tr>").join("") ||
    "<tr><td colspan=6 class=muted>no open position</td></tr>";
  for (const b of document.querySelectorAll("button[data-exit]")) {
    b.onclick = () => forceExit(b.dataset.exit);
  }
  $("breakers").tBodies[0].innerHTML = Object.entries(status.latency_breakers).map(([d, b]) =>
    "<tr><th>" + esc(d) + "</th><td>" + esc(b.state) + "</td><td class=muted>p99 " +
    (b.latency.p99_ms === null || b.latency.p99_ms === undefined ? "-" : b.latency.p99_ms + " ms") +
    ", errors " + (b.error_rate * 100).toFixed(0) + "%</td></tr>").join("") +
    "<tr><th>exit breaker</th><td>" + status.exit_breaker.consecutive_failed_exits +
    " failed exits in a row</td><td></td></tr>";
  $("exits").tBodies[0].innerHTML = history.exits.map((e) =>
    "<tr><td>" + e.intent + "</td><td>pos-" + e.position + "</td><td>" + esc(e.kind) + "</td><td>" +
    esc(e.outcome ? e.outcome.result : "running") + "</td><td>" + e.attempts.map((a) =>
      "#" + a.attempt + (a.cancel ? " cancel" : " " + a.slippage_bps + " bps") + ", fee " + a.priority_fee_lamports +
      (a.nonce_account ? ", nonce " + esc(a.nonce_account) : "") + ": " +
      esc(a.outcome || "live") + (a.error_class ? " (" + esc(a.error_class) + ")" : "")).join("<br>") +
    "</td></tr>").join("") || "<tr><td colspan=5 class=muted>no exit yet</td></tr>";
  $("alerts").tBodies[0].innerHTML = alerts.map((a) =>
    "<tr><td class=muted>" + new Date(a.at_unix_s * 1000).toLocaleTimeString() + "</td><td class=\"" +
    esc(a.severity) + "\">" + esc(a.kind) + "</td><td>" + esc(a.message) + "</td></tr>").join("") ||
    "<tr><td class=muted>no alert</td></tr>";
  $("updated").textContent = "updated " + new Date().toLocaleTimeString();
}
async function refresh() {
  try {
    const [status, history, alerts] = await Promise.all([
      get("/status"), get("/exits/history?limit=10"), get("/alerts")]);
    render(status, history, alerts);
  } catch (e) {
    $("updated").textContent = "not answering: " + e.message;
  }
}
refresh();
setInterval(refresh, 1000);
</script></body></html>
"##;
