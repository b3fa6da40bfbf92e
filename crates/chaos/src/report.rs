//! The chaos report: one self-contained HTML page (inline SVG and CSS, nothing fetched)
//! with the results as a table, the realized-loss distribution of each policy zoomed to
//! where the policies differ (the stop marked), the time-to-exit distributions, where
//! kyzlo's excess over the oracle goes (a waterfall of the mean breakdown's parts), and
//! one example run zoomed on the minute around its stop with every send, rebroadcast,
//! refusal and landing marked, and its own breakdown. Legends sit beside the plots, never
//! on the curves, and every label has room inside its chart.

use std::fmt::Write as _;
use std::time::Duration;

use crate::breakdown::{LossBreakdown, PARTS, shown};
use crate::runner::{RunResult, RunTrace, SendMark};
use crate::stats::{ChaosSummary, PolicyStats};

const W: f64 = 900.0;
const H: f64 = 320.0;
/// Room for the y labels.
const LEFT: f64 = 72.0;
/// Room for the legend, beside the plot.
const RIGHT: f64 = 130.0;
const TOP: f64 = 16.0;
/// Room for the x labels and the axis title.
const BOTTOM: f64 = 48.0;
const POLICIES: [(&str, &str); 3] = [
    ("naive", "#d62728"),
    ("kyzlo", "#1f77b4"),
    ("oracle", "#2ca02c"),
];
const CSS: &str = "body{font:14px/1.45 system-ui,sans-serif;max-width:960px;margin:24px auto;padding:0 12px;color:#1b1f24}h1{font-size:22px}h2{font-size:16px;margin-top:28px}table{border-collapse:collapse;width:100%;font-size:13px}th,td{border-bottom:1px solid #d0d7de;padding:4px 6px;text-align:right}th:first-child,td:first-child{text-align:left}svg{width:100%;height:auto}.muted{color:#57606a}";

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A plot area mapping data to pixels.
struct Frame {
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
}

impl Frame {
    fn x(&self, v: f64) -> f64 {
        LEFT + ((v - self.x0) / (self.x1 - self.x0)).clamp(0.0, 1.0) * (W - LEFT - RIGHT)
    }

    fn y(&self, v: f64) -> f64 {
        TOP + ((self.y1 - v) / (self.y1 - self.y0)).clamp(0.0, 1.0) * (H - TOP - BOTTOM)
    }

    /// The grid, tick labels and axis titles.
    fn axes(&self, svg: &mut String, x_label: &str, y_label: &str) {
        for i in 0..=4 {
            let f = f64::from(i) / 4.0;
            let (xv, yv) = (
                self.x0 + f * (self.x1 - self.x0),
                self.y0 + f * (self.y1 - self.y0),
            );
            let (x, y) = (self.x(xv), self.y(yv));
            let _ = write!(
                svg,
                r##"<line x1="{LEFT}" x2="{r}" y1="{y:.1}" y2="{y:.1}" stroke="#eaeef2"/><text x="{tx}" y="{ty:.1}" font-size="11" fill="#57606a" text-anchor="end">{yl}</text><text x="{x:.1}" y="{bx}" font-size="11" fill="#57606a" text-anchor="middle">{xl}</text>"##,
                r = W - RIGHT,
                tx = LEFT - 6.0,
                ty = y + 4.0,
                yl = short(yv),
                bx = H - BOTTOM + 16.0,
                xl = short(xv),
            );
        }
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" y1="{b}" x2="{r}" y2="{b}" stroke="#57606a"/><text x="{mx}" y="{ax}" font-size="12" text-anchor="middle">{x_label}</text><text x="16" y="{my}" font-size="12" text-anchor="middle" transform="rotate(-90 16 {my})">{y_label}</text>"##,
            b = H - BOTTOM,
            r = W - RIGHT,
            mx = (LEFT + W - RIGHT) / 2.0,
            ax = H - 10.0,
            my = (TOP + H - BOTTOM) / 2.0,
        );
    }
}

fn short(v: f64) -> String {
    if v == 0.0 {
        "0".to_owned()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn legend(svg: &mut String, entries: &[(&str, &str)]) {
    for (i, (name, color)) in entries.iter().enumerate() {
        let y = TOP + 10.0 + 18.0 * i as f64;
        let _ = write!(
            svg,
            r#"<line x1="{a}" x2="{b}" y1="{y}" y2="{y}" stroke="{color}" stroke-width="3"/><text x="{t}" y="{ty}" font-size="12">{name}</text>"#,
            a = W - RIGHT + 12.0,
            b = W - RIGHT + 30.0,
            t = W - RIGHT + 36.0,
            ty = y + 4.0,
        );
    }
}

fn open_svg(id: &str, label: &str) -> String {
    format!(
        r#"<svg id="{id}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" aria-label="{label}">"#
    )
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Cumulative distributions of one value per policy, on `[x0, x1]`, with an optional
/// vertical marker.
fn cdf(
    id: &str,
    series: [Vec<f64>; 3],
    (x0, x1): (f64, f64),
    x_label: &str,
    marker: Option<(f64, String)>,
) -> String {
    let frame = Frame {
        x0,
        x1,
        y0: 0.0,
        y1: 1.0,
    };
    let mut svg = open_svg(id, x_label);
    frame.axes(&mut svg, x_label, "share of runs");
    if let Some((at, label)) = marker {
        let x = frame.x(at);
        let _ = write!(
            svg,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{b}" stroke="#57606a" stroke-dasharray="5,4"/><text x="{tx:.1}" y="{ty}" font-size="11" fill="#57606a">{label}</text>"##,
            b = H - BOTTOM,
            tx = x + 4.0,
            ty = TOP + 12.0,
            label = escape(&label),
        );
    }
    for (mut values, (_, color)) in series.into_iter().zip(POLICIES) {
        values.sort_by(f64::total_cmp);
        let n = values.len().max(1) as f64;
        let mut points = String::new();
        for (k, v) in values.iter().enumerate() {
            let _ = write!(
                points,
                "{:.1},{:.1} ",
                frame.x(*v),
                frame.y((k + 1) as f64 / n)
            );
        }
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}"/>"#
        );
    }
    legend(&mut svg, &POLICIES);
    svg.push_str("</svg>");
    svg
}

/// The range where the policies differ: from the lowest 1st percentile to the highest
/// 99th, padded.
fn zoom(series: &[Vec<f64>; 3], floor: Option<f64>) -> (f64, f64) {
    let mut lo = f64::MAX;
    let mut hi = f64::MIN;
    for values in series {
        let mut v = values.clone();
        v.sort_by(f64::total_cmp);
        lo = lo.min(quantile(&v, 0.01));
        hi = hi.max(quantile(&v, 0.99));
    }
    if let Some(f) = floor {
        lo = lo.min(f);
    }
    if hi <= lo {
        hi = lo + 1.0;
    }
    let pad = (hi - lo) * 0.05;
    ((lo - pad).max(0.0), hi + pad)
}

fn rows(summary: &ChaosSummary) -> String {
    let mut out = String::new();
    let p = &summary.policies;
    for ((name, color), s) in POLICIES.iter().zip([&p.naive, &p.kyzlo, &p.oracle]) {
        let PolicyStats {
            realized_loss_pct: r,
            excess_loss_pct: e,
            exit_time_s: t,
            ..
        } = s;
        let _ = write!(
            out,
            r#"<tr><td style="color:{color};font-weight:600">{name}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.1}</td><td>{:.1}</td><td>{:.2}</td><td>{:.6}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            r.mean,
            r.p50,
            r.p95,
            r.p99,
            r.max,
            e.mean,
            t.p50,
            t.p99,
            s.attempts_mean,
            s.fees_lamports_mean / 1e9,
            s.double_executions,
            s.unresolved_at_deadline,
            s.halts,
        );
    }
    out
}

/// One run, zoomed on the minute around its stop: price, stop level, the stop's moment,
/// and for each policy every send (● first send, | a rebroadcast a node accepted, × one
/// it refused) and its landing (◆ landed, ✕ landed and failed), linked by a dashed line.
fn example(trace: &RunTrace, horizon: Duration) -> String {
    let stop_at = trace.stop_at.unwrap_or_default().as_secs_f64();
    let closing = trace
        .kyzlo
        .iter()
        .filter_map(|m| m.landed_at)
        .map(|d| d.as_secs_f64())
        .fold(stop_at, f64::max);
    let x0 = (stop_at - 10.0).max(0.0);
    let x1 = (stop_at + 50.0)
        .max((closing + 5.0).min(stop_at + 120.0))
        .min(horizon.as_secs_f64());
    let visible: Vec<(f64, f64)> = trace
        .prices
        .iter()
        .map(|(t, p)| (t.as_secs_f64(), *p))
        .filter(|(t, _)| (x0..=x1).contains(t))
        .collect();
    let lo = visible.iter().map(|(_, p)| *p).fold(trace.stop, f64::min);
    let hi = visible.iter().map(|(_, p)| *p).fold(trace.stop, f64::max);
    let pad = ((hi - lo) * 0.1).max(0.01);
    // The bottom quarter of the plot holds the transactions' rows.
    let frame = Frame {
        x0,
        x1,
        y0: lo - pad - (hi - lo + 2.0 * pad) * 0.45,
        y1: hi + pad,
    };
    let mut svg = open_svg("example", "one run around its stop");
    frame.axes(&mut svg, "seconds from the run's start", "price");
    let points: String = visible
        .iter()
        .map(|(t, p)| format!("{:.1},{:.1} ", frame.x(*t), frame.y(*p)))
        .collect();
    let _ = write!(
        svg,
        r##"<polyline fill="none" stroke="#24292f" stroke-width="1.5" points="{points}"/><line x1="{LEFT}" x2="{r}" y1="{ys:.1}" y2="{ys:.1}" stroke="#d62728" stroke-dasharray="6,4"/><text x="{tx}" y="{ty:.1}" fill="#d62728" font-size="11">stop {stop:.2}</text><line x1="{xs:.1}" x2="{xs:.1}" y1="{TOP}" y2="{b}" stroke="#57606a" stroke-dasharray="3,3"/><text x="{xl:.1}" y="{tl}" font-size="11" fill="#57606a">stop fires</text>"##,
        r = W - RIGHT,
        ys = frame.y(trace.stop),
        tx = LEFT + 4.0,
        ty = frame.y(trace.stop) - 4.0,
        stop = trace.stop,
        xs = frame.x(stop_at),
        b = H - BOTTOM,
        xl = frame.x(stop_at) + 4.0,
        tl = TOP + 12.0,
    );
    let row_kyzlo = H - BOTTOM - 46.0;
    let row_naive = H - BOTTOM - 20.0;
    let sx = |d: Duration| frame.x(d.as_secs_f64());
    marks(&mut svg, &trace.kyzlo, POLICIES[1].1, row_kyzlo, &sx);
    marks(&mut svg, &trace.naive, POLICIES[0].1, row_naive, &sx);
    for (row, (name, color)) in [(row_kyzlo, POLICIES[1]), (row_naive, POLICIES[0])] {
        let _ = write!(
            svg,
            r#"<text x="{x}" y="{y}" font-size="12" fill="{color}">{name}</text>"#,
            x = W - RIGHT + 12.0,
            y = row + 4.0,
        );
    }
    let _ = write!(
        svg,
        r##"<text x="{x}" y="{y}" font-size="11" fill="#57606a">● send</text><text x="{x}" y="{y2}" font-size="11" fill="#57606a">| resend</text><text x="{x}" y="{y3}" font-size="11" fill="#57606a">× refused</text><text x="{x}" y="{y4}" font-size="11" fill="#57606a">◆ landed</text><text x="{x}" y="{y5}" font-size="11" fill="#57606a">✕ landed, failed</text>"##,
        x = W - RIGHT + 12.0,
        y = TOP + 12.0,
        y2 = TOP + 28.0,
        y3 = TOP + 44.0,
        y4 = TOP + 60.0,
        y5 = TOP + 76.0,
    );
    svg.push_str("</svg>");
    svg
}

fn marks(
    svg: &mut String,
    marks: &[SendMark],
    color: &str,
    row: f64,
    sx: &dyn Fn(Duration) -> f64,
) {
    for m in marks {
        for (i, (at, accepted)) in m.sends.iter().enumerate() {
            let (symbol, fill) = match (i, accepted) {
                (0, _) => ("●", color),
                (_, true) => ("|", color),
                (_, false) => ("×", "#57606a"),
            };
            let _ = write!(
                svg,
                r#"<text x="{x:.1}" y="{y:.1}" fill="{fill}" font-size="12" text-anchor="middle">{symbol}</text>"#,
                x = sx(*at),
                y = row + 4.0,
            );
        }
        if let Some(at) = m.landed_at {
            let (symbol, fill) = if m.ok {
                ("◆", color)
            } else {
                ("✕", "#57606a")
            };
            let _ = write!(
                svg,
                r#"<line x1="{x1:.1}" x2="{x2:.1}" y1="{y:.1}" y2="{y:.1}" stroke="{color}" stroke-dasharray="2,2"/><text x="{x2:.1}" y="{ty:.1}" fill="{fill}" font-size="13" text-anchor="middle">{symbol}</text>"#,
                x1 = sx(m.at),
                x2 = sx(at),
                y = row,
                ty = row + 5.0,
            );
        }
    }
}

/// Room for the parts' names in the breakdown's waterfall.
const NAMES: f64 = 170.0;
const ROW: f64 = 24.0;
const COST: &str = "#d62728";
const SAVING: &str = "#2ca02c";

/// The mean breakdown as a waterfall: one row per part, its bar running from the sum of
/// the parts above it to that sum plus its own value (red a cost, green a saving), and
/// the total last, from zero.
fn waterfall(b: &LossBreakdown) -> String {
    let values = b.parts();
    let mut ends = vec![0.0];
    for v in values {
        let last = ends.last().copied().unwrap_or(0.0);
        ends.push(last + v);
    }
    let lo = ends.iter().copied().fold(b.total.min(0.0), f64::min);
    let hi = ends.iter().copied().fold(b.total.max(0.0), f64::max);
    let pad = ((hi - lo) * 0.08).max(0.01);
    let (x0, x1) = (lo - pad, hi + pad);
    let plot = W - NAMES - RIGHT;
    let x = |v: f64| NAMES + ((v - x0) / (x1 - x0)).clamp(0.0, 1.0) * plot;
    let rows = values.len() + 1;
    let height = TOP + ROW * rows as f64 + BOTTOM;
    let mut svg = format!(
        r#"<svg id="breakdown" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {height}" role="img" aria-label="where kyzlo's excess over the oracle goes">"#
    );
    let bottom = height - BOTTOM;
    for i in 0..=4 {
        let v = x0 + f64::from(i) / 4.0 * (x1 - x0);
        let _ = write!(
            svg,
            r##"<line x1="{px:.1}" x2="{px:.1}" y1="{TOP}" y2="{bottom}" stroke="#eaeef2"/><text x="{px:.1}" y="{ty}" font-size="11" fill="#57606a" text-anchor="middle">{label}</text>"##,
            px = x(v),
            ty = bottom + 16.0,
            label = short(v),
        );
    }
    let _ = write!(
        svg,
        r##"<line x1="{z:.1}" x2="{z:.1}" y1="{TOP}" y2="{bottom}" stroke="#57606a"/><text x="{mx}" y="{ay}" font-size="12" text-anchor="middle">points of the position (kyzlo's loss and fees, less the oracle's)</text>"##,
        z = x(0.0),
        mx = NAMES + plot / 2.0,
        ay = height - 10.0,
    );
    let bar = |svg: &mut String, row: usize, name: &str, from: f64, to: f64, color: &str| {
        let y = TOP + ROW * row as f64 + 4.0;
        let (a, b) = (x(from.min(to)), x(from.max(to)));
        let _ = write!(
            svg,
            r##"<text x="{nx}" y="{ty:.1}" font-size="12" text-anchor="end">{name}</text><rect x="{a:.1}" y="{y:.1}" width="{w:.1}" height="{h}" fill="{color}"/><text x="{vx:.1}" y="{ty:.1}" font-size="11" fill="#57606a">{value}</text>"##,
            nx = NAMES - 8.0,
            ty = y + 12.0,
            w = (b - a).max(1.0),
            h = ROW - 8.0,
            vx = b + 4.0,
            name = escape(name),
            value = shown(to - from),
        );
    };
    for (i, ((name, _), v)) in PARTS.iter().zip(values).enumerate() {
        let color = if v >= 0.0 { COST } else { SAVING };
        bar(&mut svg, i, name, ends[i], ends[i + 1], color);
    }
    bar(&mut svg, values.len(), "total", 0.0, b.total, POLICIES[1].1);
    for (i, (label, color)) in [("cost", COST), ("saving", SAVING), ("total", POLICIES[1].1)]
        .iter()
        .enumerate()
    {
        let y = TOP + 10.0 + 18.0 * i as f64;
        let _ = write!(
            svg,
            r#"<rect x="{a}" y="{ry}" width="14" height="10" fill="{color}"/><text x="{t}" y="{ty}" font-size="12">{label}</text>"#,
            a = W - RIGHT + 12.0,
            ry = y - 5.0,
            t = W - RIGHT + 32.0,
            ty = y + 4.0,
        );
    }
    svg.push_str("</svg>");
    svg
}

/// One run's breakdown as a table.
fn breakdown_table(b: &LossBreakdown) -> String {
    let mut out = String::from(
        "<table><thead><tr><th>part</th><th>points</th><th style=\"text-align:left\">kyzlo's time, or what it is</th></tr></thead><tbody>",
    );
    for ((name, what), v) in PARTS.iter().zip(b.parts()) {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td style=\"text-align:left\">{}</td></tr>",
            escape(name),
            shown(v),
            escape(what)
        );
    }
    let _ = write!(
        out,
        "<tr><td><b>total</b></td><td><b>{}</b></td><td style=\"text-align:left\">residual {:+.1e}; outside the sum, the fall from the stop's crossing to the tick that saw it: {}</td></tr></tbody></table>",
        shown(b.total),
        b.residual,
        shown(b.crossing_to_tick)
    );
    out
}

/// The HTML report.
#[must_use]
pub fn html(
    summary: &ChaosSummary,
    results: &[RunResult],
    trace: Option<&RunTrace>,
    horizon: Duration,
    stop_loss_bps: u16,
) -> String {
    let triggered: Vec<&RunResult> = results.iter().filter(|r| r.stop_at.is_some()).collect();
    let series = |f: &dyn Fn(&RunResult) -> [f64; 3]| {
        let mut out: [Vec<f64>; 3] = Default::default();
        for r in &triggered {
            for (i, v) in f(r).into_iter().enumerate() {
                out[i].push(v);
            }
        }
        out
    };
    let losses = series(&|r| {
        [
            r.naive.realized_loss_pct,
            r.kyzlo.realized_loss_pct,
            r.oracle.realized_loss_pct,
        ]
    });
    let times = series(&|r| {
        [
            r.naive.exit_time.as_secs_f64(),
            r.kyzlo.exit_time.as_secs_f64(),
            r.oracle.exit_time.as_secs_f64(),
        ]
    });
    let stop_pct = f64::from(stop_loss_bps) / 100.0;
    let loss_range = zoom(&losses, Some(stop_pct));
    let time_range = zoom(&times, Some(0.0));
    let mut page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>kyzlo chaos: {name}</title><style>{CSS}</style></head><body>\
         <h1>kyzlo chaos: {name}</h1><p class=\"muted\">{runs} runs from seed {seed}; the stop fired in {triggered}. Loss is against the entry; excess is the loss beyond the {stop_pct:.1}% stop.</p>\
         <h2>Results</h2><table><thead><tr><th>policy</th><th>loss % mean</th><th>p50</th><th>p95</th><th>p99</th><th>max</th><th>excess % mean</th><th>exit s p50</th><th>p99</th><th>transactions</th><th>fees SOL</th><th>double executions</th><th>unresolved at deadline</th><th>halts</th></tr></thead><tbody>{rows}</tbody></table>\
         <h2>Realized loss</h2><p class=\"muted\">Share of runs that lost at most x% (zoomed to where the policies differ; the dashed line is the stop).</p>{loss}\
         <h2>Time to exit</h2><p class=\"muted\">Share of runs closed within x seconds of the stop.</p>{time}\
         <h2>Where kyzlo's loss goes</h2><p class=\"muted\">kyzlo's mean excess over the oracle (its realized loss and fees less the oracle's: {total:+.3} points of the position), by what kyzlo was doing while the price fell: from the stop to its intent, preparing attempts, attempts refused for slippage or waited out until proven dead, other failed attempts, between exits (re-fires, halts, the operator), its closing confirmation beyond the oracle's; then its fill and fees beyond the oracle's, less the oracle's own wait. The parts add up to the total (mean residual {residual:+.1e}).</p>{waterfall}",
        name = escape(&summary.scenario),
        runs = summary.runs,
        seed = summary.seed,
        triggered = summary.triggered,
        rows = rows(summary),
        loss = cdf(
            "loss",
            losses,
            loss_range,
            "realized loss (% of entry)",
            Some((stop_pct, format!("stop {stop_pct:.1}%")))
        ),
        time = cdf(
            "time",
            times,
            time_range,
            "seconds from the stop to the closing landing",
            None
        ),
        total = summary.loss_breakdown.total,
        residual = summary.loss_breakdown.residual,
        waterfall = waterfall(&summary.loss_breakdown),
    );
    if let Some(trace) = trace {
        let _ = write!(
            page,
            "<h2>One run around its stop</h2><p class=\"muted\">Price, the stop level, and every transaction of kyzlo and of naive retry.</p>{}<p class=\"muted\">Where kyzlo's excess over the oracle went in this run, in points of the position:</p>{}",
            example(trace, horizon),
            breakdown_table(&trace.breakdown)
        );
    }
    page.push_str("</body></html>\n");
    page
}
