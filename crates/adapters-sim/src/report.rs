//! The paper run's report (`kyzlo paper --report FILE` and `--json`): the equity curve and
//! its drawdown, trades and exits by reason, every exit with its attempts (slippage asked
//! and got, fee paid, time to land), the costs, maximum drawdown, Sharpe and Sortino ratios
//! over the run, and the seed and configuration that produced it. The HTML page is one
//! file with inline SVG and CSS: it opens without a network.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use kyzlo_application::journal::{AttemptOutcome, IntentAction, IntentHistory, IntentOutcome};
use kyzlo_application::ports::Side;
use kyzlo_domain::{Timestamp, TxSignature};
use serde::Serialize;

use crate::summary::PaperSummary;
use crate::venue::Landing;

/// One point of the equity curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EquityPoint {
    /// Seconds of market since the start.
    pub at_s: f64,
    /// The price then.
    pub price: f64,
    /// The wallet's value then, in quote tokens (base marked at the price).
    pub value: f64,
}

/// One transaction of an exit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttemptRow {
    /// Its number within the exit.
    pub attempt: u32,
    /// The slippage tolerance it was built with.
    pub slippage_bps: u16,
    /// The priority fee it offered, in lamports.
    pub priority_fee_lamports: u64,
    /// Seconds of market when it was sent.
    pub sent_at_s: f64,
    /// How it ended: `landed`, `failed: CLASS`, `expired`, or `unresolved`.
    pub outcome: String,
    /// Seconds from its send to its landing, when it landed.
    pub time_to_land_s: Option<f64>,
    /// The fee it paid (network and priority), in lamports, when it landed.
    pub fee_paid_lamports: Option<u64>,
    /// How far its fill fell short of the market price at its landing, in bps.
    pub slippage_got_bps: Option<f64>,
}

/// One exit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExitRow {
    /// The intent.
    pub intent: u64,
    /// The position.
    pub position: u64,
    /// Why it exited (`stop_loss`, `strategy`, ...).
    pub reason: String,
    /// Seconds of market when it was decided.
    pub at_s: f64,
    /// `filled`, `failed`, `landed` (fill not read), or `unresolved`.
    pub outcome: String,
    /// Base units sold and quote units received, when filled.
    pub sold: Option<u64>,
    /// Quote units received.
    pub received: Option<u64>,
    /// Its transactions.
    pub attempts: Vec<AttemptRow>,
}

/// The report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PaperReport {
    /// The seed of the market and faults.
    pub seed: u64,
    /// The resolved configuration (secrets masked), as TOML.
    pub config: String,
    /// Hours of market.
    pub hours: f64,
    /// First and last price.
    pub first_price: f64,
    /// Last price.
    pub last_price: f64,
    /// Wallet value at the start and the end, in quote tokens at the last price.
    pub start_value: f64,
    /// End value.
    pub end_value: f64,
    /// Profit and loss, in quote tokens.
    pub pnl: f64,
    /// Before costs.
    pub gross: f64,
    /// Fees in quote tokens at the last price.
    pub fees: f64,
    /// Slippage in quote tokens.
    pub slippage: f64,
    /// Fees in SOL.
    pub fees_sol: f64,
    /// Entries filled, failed and refused.
    pub entries_filled: u64,
    /// Entries failed.
    pub entries_failed: u64,
    /// Entries refused.
    pub entries_refused: u64,
    /// Exits closed, by reason.
    pub exits_by_reason: BTreeMap<String, u64>,
    /// Exits that failed, and that passed the deadline.
    pub exits_failed: u64,
    /// Exits past their deadline.
    pub exits_past_deadline: u64,
    /// Halts.
    pub halts: u64,
    /// The deepest fall of the equity from its peak, as a fraction.
    pub max_drawdown: f64,
    /// Annualized Sharpe ratio of the equity's returns between samples (no risk-free rate).
    pub sharpe: Option<f64>,
    /// Annualized Sortino ratio (downside deviation).
    pub sortino: Option<f64>,
    /// The equity curve.
    pub equity: Vec<EquityPoint>,
    /// Every exit, oldest first.
    pub exits: Vec<ExitRow>,
}

/// What the report is built from.
pub struct ReportInputs<'a> {
    /// The run's summary.
    pub summary: &'a PaperSummary,
    /// The seed.
    pub seed: u64,
    /// The resolved configuration, masked.
    pub config: String,
    /// The equity samples, in time order.
    pub equity: Vec<EquityPoint>,
    /// The journal's exits (any order).
    pub exits: Vec<IntentHistory>,
    /// The venue's landings this run.
    pub landings: Vec<Landing>,
    /// The run's start on the services' clock.
    pub start: Timestamp,
    /// The market price at a run time.
    pub price_at: &'a dyn Fn(Duration) -> f64,
}

const YEAR_S: f64 = 365.0 * 24.0 * 3_600.0;

impl PaperReport {
    /// Builds the report.
    #[must_use]
    pub fn new(inputs: ReportInputs<'_>) -> Self {
        let s = inputs.summary;
        let t = &s.totals;
        let by_signature: BTreeMap<TxSignature, &Landing> =
            inputs.landings.iter().map(|l| (l.signature, l)).collect();
        let since = |at: Timestamp| at.saturating_since(inputs.start).as_secs_f64();
        let mut exits: Vec<ExitRow> = inputs
            .exits
            .iter()
            .filter(|h| h.intent.created_at >= inputs.start)
            .map(|h| exit_row(h, &by_signature, &since, inputs.price_at))
            .collect();
        exits.sort_by_key(|e| e.intent);
        let (sharpe, sortino) = ratios(&inputs.equity);
        let value = |w: &crate::wallet::SimWallet| {
            w.quote.get() as f64 / 1e6 + w.base.get() as f64 / 1e9 * s.last_price
        };
        Self {
            seed: inputs.seed,
            config: inputs.config,
            hours: s.simulated.as_secs_f64() / 3_600.0,
            first_price: s.first_price,
            last_price: s.last_price,
            start_value: value(&s.start),
            end_value: value(&s.end),
            pnl: s.pnl(),
            gross: s.gross(),
            fees: s.fees_quote(),
            slippage: s.slippage(),
            fees_sol: s.fees.get() as f64 / 1e9,
            entries_filled: t.entries_filled,
            entries_failed: t.entries_failed,
            entries_refused: t.entries_refused,
            exits_by_reason: t
                .exits_closed_by_kind
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            exits_failed: t.exits_failed,
            exits_past_deadline: t.exits_deadline_exceeded,
            halts: t.halts,
            max_drawdown: max_drawdown(&inputs.equity),
            sharpe,
            sortino,
            equity: inputs.equity,
            exits,
        }
    }

    /// The report as one JSON object.
    ///
    /// # Errors
    /// serde_json's, which a report of numbers and strings does not produce.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }

    /// The report as one HTML page with inline SVG.
    #[must_use]
    pub fn to_html(&self) -> String {
        let mut h = String::new();
        let _ = write!(
            h,
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>kyzlo paper report</title><style>{CSS}</style></head><body>"
        );
        let _ = write!(
            h,
            "<h1>kyzlo paper report</h1><p class=\"lede\">{:.1} h of market, price {:.3} &rarr; {:.3}; seed {}</p>",
            self.hours, self.first_price, self.last_price, self.seed
        );
        h.push_str("<section id=\"summary\"><h2>Summary</h2><table>");
        let rows = [
            (
                "Wallet value",
                format!(
                    "{:.2} &rarr; {:.2} USDC (at the last price)",
                    self.start_value, self.end_value
                ),
            ),
            ("PnL", format!("{:+.2} USDC", self.pnl)),
            ("Gross (before costs)", format!("{:+.2} USDC", self.gross)),
            (
                "Costs",
                format!(
                    "{:.2} USDC: fees {:.2} ({:.6} SOL), slippage {:.2}",
                    self.fees + self.slippage,
                    self.fees,
                    self.fees_sol,
                    self.slippage
                ),
            ),
            ("Max drawdown", format!("{:.2}%", self.max_drawdown * 100.0)),
            (
                "Sharpe / Sortino (annualized)",
                format!("{} / {}", ratio(self.sharpe), ratio(self.sortino)),
            ),
            (
                "Entries",
                format!(
                    "{} filled, {} failed, {} refused",
                    self.entries_filled, self.entries_failed, self.entries_refused
                ),
            ),
            (
                "Exits by reason",
                self.exits_by_reason
                    .iter()
                    .map(|(k, v)| format!("{} {v}", escape(k)))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            (
                "Exits failed / past deadline",
                format!("{} / {}", self.exits_failed, self.exits_past_deadline),
            ),
            ("Halts", self.halts.to_string()),
        ];
        for (k, v) in rows {
            let _ = write!(h, "<tr><th>{k}</th><td>{v}</td></tr>");
        }
        h.push_str("</table></section>");
        h.push_str("<section id=\"equity\"><h2>Equity</h2>");
        h.push_str(&line_chart(
            &self
                .equity
                .iter()
                .map(|p| (p.at_s / 3_600.0, p.value))
                .collect::<Vec<_>>(),
            "hours",
            "USDC",
            "equity",
        ));
        let drawdown = drawdown_series(&self.equity);
        h.push_str("<h2>Drawdown</h2>");
        h.push_str(&line_chart(&drawdown, "hours", "% below peak", "drawdown"));
        h.push_str("</section>");
        let _ = write!(
            h,
            "<section id=\"exits\"><h2>Exits ({})</h2><table class=\"exits\"><thead><tr><th>intent</th><th>position</th><th>at (h)</th><th>reason</th><th>outcome</th><th>attempt</th><th>slippage asked (bps)</th><th>slippage got (bps)</th><th>fee paid (lamports)</th><th>time to land (s)</th></tr></thead><tbody>",
            self.exits.len()
        );
        for e in &self.exits {
            let span = e.attempts.len().max(1);
            let _ = write!(
                h,
                "<tr><td rowspan=\"{span}\">{}</td><td rowspan=\"{span}\">{}</td><td rowspan=\"{span}\">{:.2}</td><td rowspan=\"{span}\">{}</td><td rowspan=\"{span}\">{}</td>",
                e.intent,
                e.position,
                e.at_s / 3_600.0,
                escape(&e.reason),
                escape(&e.outcome)
            );
            if e.attempts.is_empty() {
                h.push_str("<td colspan=\"5\">no transaction</td></tr>");
            }
            for (i, a) in e.attempts.iter().enumerate() {
                if i > 0 {
                    h.push_str("<tr>");
                }
                let _ = write!(
                    h,
                    "<td>{} ({})</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    a.attempt,
                    escape(&a.outcome),
                    a.slippage_bps,
                    a.slippage_got_bps
                        .map_or("&ndash;".to_owned(), |b| format!("{b:.1}")),
                    a.fee_paid_lamports
                        .map_or("&ndash;".to_owned(), |f| f.to_string()),
                    a.time_to_land_s
                        .map_or("&ndash;".to_owned(), |t| format!("{t:.2}")),
                );
            }
        }
        h.push_str("</tbody></table></section>");
        let _ = write!(
            h,
            "<section id=\"config\"><h2>Configuration</h2><pre>{}</pre></section></body></html>",
            escape(&self.config)
        );
        h
    }
}

fn exit_row(
    h: &IntentHistory,
    landings: &BTreeMap<TxSignature, &Landing>,
    since: &dyn Fn(Timestamp) -> f64,
    price_at: &dyn Fn(Duration) -> f64,
) -> ExitRow {
    let reason = match h.intent.action {
        IntentAction::Exit(kind) => kind.as_str().to_owned(),
        IntentAction::Enter => "entry".to_owned(),
    };
    let (outcome, sold, received) = match h.outcome {
        Some(IntentOutcome::Filled(fill)) => (
            "filled".to_owned(),
            Some(fill.amount_in.get()),
            Some(fill.amount_out.get()),
        ),
        Some(IntentOutcome::Landed { .. }) => ("landed (fill not read)".to_owned(), None, None),
        Some(IntentOutcome::Failed) => ("failed".to_owned(), None, None),
        None => ("unresolved".to_owned(), None, None),
    };
    let attempts = h
        .attempts
        .iter()
        .map(|(a, o)| {
            let landing = landings.get(&a.signature).copied();
            let sent = since(a.sent_at);
            let slippage_got_bps = landing.filter(|l| l.ok).and_then(|l| {
                let market = price_at(l.at);
                let base = l.amount_in.get() as f64 / 1e9;
                let quote = l.amount_out.get() as f64 / 1e6;
                (base > 0.0 && market > 0.0).then(|| (1.0 - quote / base / market) * 10_000.0)
            });
            AttemptRow {
                attempt: a.attempt,
                slippage_bps: a.slippage.bps().get(),
                priority_fee_lamports: a.priority_fee.get(),
                sent_at_s: sent,
                outcome: match o {
                    Some(AttemptOutcome::Landed) => "landed".to_owned(),
                    Some(AttemptOutcome::Failed(class)) => format!("failed: {}", class.as_str()),
                    Some(AttemptOutcome::Expired) => "expired".to_owned(),
                    None => "unresolved".to_owned(),
                },
                time_to_land_s: landing.map(|l| (l.at.as_secs_f64() - sent).max(0.0)),
                fee_paid_lamports: landing.map(|l| l.fee.get()),
                slippage_got_bps: if h.intent.side == Side::Sell {
                    slippage_got_bps
                } else {
                    None
                },
            }
        })
        .collect();
    ExitRow {
        intent: h.intent.intent.0,
        position: h.intent.position.0,
        reason,
        at_s: since(h.intent.created_at),
        outcome,
        sold,
        received,
        attempts,
    }
}

/// The deepest fall from a running peak, as a fraction of the peak.
#[must_use]
pub fn max_drawdown(equity: &[EquityPoint]) -> f64 {
    let mut peak = f64::MIN;
    let mut worst: f64 = 0.0;
    for p in equity {
        peak = peak.max(p.value);
        if peak > 0.0 {
            worst = worst.max((peak - p.value) / peak);
        }
    }
    worst
}

fn drawdown_series(equity: &[EquityPoint]) -> Vec<(f64, f64)> {
    let mut peak = f64::MIN;
    equity
        .iter()
        .map(|p| {
            peak = peak.max(p.value);
            let dd = if peak > 0.0 {
                (peak - p.value) / peak
            } else {
                0.0
            };
            (p.at_s / 3_600.0, -dd * 100.0)
        })
        .collect()
}

/// Annualized Sharpe and Sortino ratios of the returns between equity samples (no
/// risk-free rate); `None` with fewer than three samples or no variation.
#[must_use]
pub fn ratios(equity: &[EquityPoint]) -> (Option<f64>, Option<f64>) {
    if equity.len() < 3 {
        return (None, None);
    }
    let returns: Vec<f64> = equity
        .windows(2)
        .filter(|w| w[0].value > 0.0)
        .map(|w| w[1].value / w[0].value - 1.0)
        .collect();
    let span = equity[equity.len() - 1].at_s - equity[0].at_s;
    if returns.is_empty() || span <= 0.0 {
        return (None, None);
    }
    let n = returns.len() as f64;
    let per_year = (YEAR_S / (span / n)).sqrt();
    let mean = returns.iter().sum::<f64>() / n;
    let sd = (returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n).sqrt();
    let down = (returns.iter().map(|r| r.min(0.0).powi(2)).sum::<f64>() / n).sqrt();
    let ratio = |d: f64| (d > 0.0).then(|| mean / d * per_year);
    (ratio(sd), ratio(down))
}

fn ratio(r: Option<f64>) -> String {
    r.map_or("n/a".to_owned(), |r| format!("{r:.2}"))
}

/// `text` safe inside HTML.
#[must_use]
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A line chart of `points` in SVG: labelled axes with room for their labels, ticks at
/// round values.
#[must_use]
pub fn line_chart(points: &[(f64, f64)], x_label: &str, y_label: &str, id: &str) -> String {
    const W: f64 = 860.0;
    const H: f64 = 260.0;
    const LEFT: f64 = 70.0;
    const BOTTOM: f64 = 40.0;
    const TOP: f64 = 12.0;
    const RIGHT: f64 = 16.0;
    if points.is_empty() {
        return format!("<p id=\"{id}\">no data</p>");
    }
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in points {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= y0 {
        let pad = y0.abs().max(1.0) * 0.01;
        y0 -= pad;
        y1 += pad;
    }
    let px = |x: f64| LEFT + (x - x0) / (x1 - x0) * (W - LEFT - RIGHT);
    let py = |y: f64| TOP + (y1 - y) / (y1 - y0) * (H - TOP - BOTTOM);
    let mut svg = format!(
        "<svg id=\"{id}\" class=\"chart\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{} by {}\">",
        escape(y_label),
        escape(x_label)
    );
    for i in 0..=4 {
        let y = y0 + (y1 - y0) * f64::from(i) / 4.0;
        let _ = write!(
            svg,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{py:.1}\" y2=\"{py:.1}\"/><text class=\"tick\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            W - RIGHT,
            LEFT - 6.0,
            py(y) + 4.0,
            short(y),
            py = py(y)
        );
        let x = x0 + (x1 - x0) * f64::from(i) / 4.0;
        let _ = write!(
            svg,
            "<text class=\"tick\" x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            px(x),
            H - BOTTOM + 16.0,
            short(x)
        );
    }
    let path: Vec<String> = points
        .iter()
        .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
        .collect();
    let _ = write!(
        svg,
        "<polyline class=\"line\" points=\"{}\"/><text class=\"axis\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text><text class=\"axis\" x=\"14\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {})\">{}</text></svg>",
        path.join(" "),
        (LEFT + W - RIGHT) / 2.0,
        H - 6.0,
        escape(x_label),
        (TOP + H - BOTTOM) / 2.0,
        (TOP + H - BOTTOM) / 2.0,
        escape(y_label)
    );
    svg
}

fn short(v: f64) -> String {
    if v == 0.0 {
        "0".to_owned()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

const CSS: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:920px;color:#1b1f24;padding:0 12px}h1{font-size:22px;margin:0}h2{font-size:16px;margin:24px 0 8px}.lede{color:#57606a}table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #d0d7de;padding:4px 6px;text-align:left;vertical-align:top}table.exits td,table.exits th{font-size:12px}.chart{width:100%;height:auto;background:#fff}.grid{stroke:#eaeef2}.line{fill:none;stroke:#0969da;stroke-width:1.5}.tick{font-size:11px;fill:#57606a}.axis{font-size:12px;fill:#1b1f24}pre{background:#f6f8fa;padding:8px;overflow:auto;font-size:12px}";

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(values: &[f64]) -> Vec<EquityPoint> {
        values
            .iter()
            .enumerate()
            .map(|(i, v)| EquityPoint {
                at_s: i as f64 * 60.0,
                price: 100.0,
                value: *v,
            })
            .collect()
    }

    #[test]
    fn the_drawdown_is_the_deepest_fall_from_a_running_peak() {
        assert_eq!(
            max_drawdown(&curve(&[100.0, 120.0, 90.0, 130.0, 117.0])),
            0.25
        );
        assert_eq!(max_drawdown(&curve(&[100.0, 101.0, 102.0])), 0.0);
        assert_eq!(max_drawdown(&[]), 0.0);
    }

    #[test]
    fn ratios_need_variation_and_punish_only_losses_in_sortino() {
        assert_eq!(ratios(&curve(&[100.0, 100.0, 100.0])), (None, None));
        assert_eq!(ratios(&curve(&[100.0, 101.0])), (None, None));
        let (sharpe, sortino) = ratios(&curve(&[100.0, 101.0, 100.5, 102.0, 101.8, 103.0]));
        let (sharpe, sortino) = (sharpe.unwrap(), sortino.unwrap());
        assert!(sharpe > 0.0 && sortino > sharpe, "{sharpe} {sortino}");
        // Only gains: no downside, no Sortino.
        assert_eq!(ratios(&curve(&[100.0, 101.0, 103.0])).1, None);
    }

    #[test]
    fn charts_escape_labels_and_keep_points_inside_the_plot() {
        let svg = line_chart(&[(0.0, 5.0), (1.0, 7.0), (2.0, 6.0)], "h<ours", "U&S", "c");
        assert!(
            svg.contains("h&lt;ours") && svg.contains("U&amp;S"),
            "{svg}"
        );
        assert!(svg.starts_with("<svg id=\"c\""));
        let points = svg
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        for p in points.split(' ') {
            let (x, y) = p.split_once(',').unwrap();
            let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
            assert!(
                (70.0..=844.0).contains(&x) && (12.0..=220.0).contains(&y),
                "{p}"
            );
        }
        assert_eq!(line_chart(&[], "x", "y", "e"), "<p id=\"e\">no data</p>");
    }
}
