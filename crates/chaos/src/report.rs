//! The chaos report: one self-contained HTML page with the table, the realized-loss
//! distribution of each policy (as cumulative curves), and one example run's price path,
//! stop level and transactions with their outcomes, drawn as inline SVG.

use std::fmt::Write as _;
use std::time::Duration;

use crate::runner::{RunResult, RunTrace, SendMark};
use crate::stats::{ChaosSummary, table};

const W: f64 = 760.0;
const H: f64 = 320.0;
const PAD: f64 = 48.0;
const COLORS: [(&str, &str); 3] = [
    ("naive", "#d62728"),
    ("kyzlo", "#1f77b4"),
    ("oracle", "#2ca02c"),
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn axis(svg: &mut String, x_label: &str, y_label: &str, x_max: f64, y_min: f64, y_max: f64) {
    let _ = write!(
        svg,
        r##"<line x1="{PAD}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="#333"/><line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{y0}" stroke="#333"/><text x="{xm}" y="{yl}" text-anchor="middle" font-size="12">{x_label}</text><text x="12" y="{ym}" font-size="12" transform="rotate(-90 12 {ym})" text-anchor="middle">{y_label}</text>"##,
        y0 = H - PAD,
        x1 = W - PAD,
        xm = W / 2.0,
        yl = H - 10.0,
        ym = H / 2.0,
    );
    for i in 0..=4 {
        let f = f64::from(i) / 4.0;
        let x = PAD + f * (W - 2.0 * PAD);
        let y = H - PAD - f * (H - 2.0 * PAD);
        let _ = write!(
            svg,
            r##"<text x="{x}" y="{ty}" font-size="10" text-anchor="middle">{xv:.1}</text><text x="{tx}" y="{y}" font-size="10" text-anchor="end">{yv:.2}</text>"##,
            ty = H - PAD + 14.0,
            xv = f * x_max,
            tx = PAD - 4.0,
            yv = y_min + f * (y_max - y_min),
        );
    }
}

/// Cumulative distribution of realized loss per policy.
fn loss_cdf(results: &[RunResult]) -> String {
    let triggered: Vec<&RunResult> = results.iter().filter(|r| r.stop_at.is_some()).collect();
    let series: [Vec<f64>; 3] = [
        triggered
            .iter()
            .map(|r| r.naive.realized_loss_pct)
            .collect(),
        triggered
            .iter()
            .map(|r| r.kyzlo.realized_loss_pct)
            .collect(),
        triggered
            .iter()
            .map(|r| r.oracle.realized_loss_pct)
            .collect(),
    ];
    let x_max = series
        .iter()
        .flatten()
        .copied()
        .fold(1.0_f64, f64::max)
        .ceil();
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}">"#
    );
    axis(
        &mut svg,
        "realized loss (% of entry)",
        "fraction of runs",
        x_max,
        0.0,
        1.0,
    );
    for (i, (mut values, (name, color))) in series.into_iter().zip(COLORS).enumerate() {
        values.sort_by(f64::total_cmp);
        let n = values.len().max(1) as f64;
        let mut points = String::new();
        for (k, v) in values.iter().enumerate() {
            let x = PAD + (v / x_max).clamp(0.0, 1.0) * (W - 2.0 * PAD);
            let y = H - PAD - ((k + 1) as f64 / n) * (H - 2.0 * PAD);
            let _ = write!(points, "{x:.1},{y:.1} ");
        }
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}"/><text x="{lx}" y="{ly}" fill="{color}" font-size="12">{name}</text>"#,
            lx = W - PAD - 60.0,
            ly = PAD + 16.0 * i as f64,
        );
    }
    svg.push_str("</svg>");
    svg
}

fn marks(
    svg: &mut String,
    marks: &[SendMark],
    color: &str,
    row: f64,
    sx: impl Fn(Duration) -> f64,
) {
    for m in marks {
        let x = sx(m.at);
        let (symbol, fill) = match (m.landed_at, m.ok) {
            (Some(_), true) => ("●", color),
            (Some(_), false) => ("✕", "#555"),
            (None, _) => ("○", color),
        };
        let _ = write!(
            svg,
            r#"<text x="{x:.1}" y="{row}" fill="{fill}" font-size="14" text-anchor="middle">{symbol}</text>"#
        );
        if let Some(at) = m.landed_at {
            let _ = write!(
                svg,
                r#"<line x1="{x:.1}" y1="{y1}" x2="{x2:.1}" y2="{y1}" stroke="{color}" stroke-dasharray="2,2"/>"#,
                y1 = row - 4.0,
                x2 = sx(at)
            );
        }
    }
}

/// One run: price, stop level, and each policy's transactions.
fn example(trace: &RunTrace, horizon: Duration) -> String {
    let t_max = trace
        .kyzlo
        .iter()
        .chain(&trace.naive)
        .flat_map(|m| [Some(m.at), m.landed_at])
        .flatten()
        .max()
        .unwrap_or(horizon)
        .max(trace.stop_at.unwrap_or_default() + Duration::from_secs(60))
        .min(horizon)
        .as_secs_f64()
        .max(1.0);
    let visible: Vec<(f64, f64)> = trace
        .prices
        .iter()
        .filter(|(t, _)| t.as_secs_f64() <= t_max)
        .map(|(t, p)| (t.as_secs_f64(), *p))
        .collect();
    let lo = visible.iter().map(|(_, p)| *p).fold(trace.stop, f64::min) * 0.98;
    let hi = visible.iter().map(|(_, p)| *p).fold(trace.entry, f64::max) * 1.01;
    let sx = |t: f64| PAD + (t / t_max).clamp(0.0, 1.0) * (W - 2.0 * PAD);
    let sy = |p: f64| H - PAD - ((p - lo) / (hi - lo)).clamp(0.0, 1.0) * (H - 2.0 * PAD);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}">"#
    );
    axis(&mut svg, "seconds", "price", t_max, lo, hi);
    let points: String = visible
        .iter()
        .map(|(t, p)| format!("{:.1},{:.1} ", sx(*t), sy(*p)))
        .collect();
    let _ = write!(
        svg,
        r##"<polyline fill="none" stroke="#333" stroke-width="1.5" points="{points}"/><line x1="{PAD}" y1="{ys}" x2="{x1}" y2="{ys}" stroke="#d62728" stroke-dasharray="6,4"/><text x="{tx}" y="{ty}" fill="#d62728" font-size="11">stop {stop:.2}</text>"##,
        ys = sy(trace.stop),
        x1 = W - PAD,
        tx = PAD + 4.0,
        ty = sy(trace.stop) - 4.0,
        stop = trace.stop,
    );
    if let Some(at) = trace.stop_at {
        let _ = write!(
            svg,
            r##"<line x1="{x:.1}" y1="{PAD}" x2="{x:.1}" y2="{y0}" stroke="#999" stroke-dasharray="3,3"/>"##,
            x = sx(at.as_secs_f64()),
            y0 = H - PAD
        );
    }
    let scale = |d: Duration| sx(d.as_secs_f64());
    marks(&mut svg, &trace.kyzlo, COLORS[1].1, PAD + 14.0, scale);
    marks(&mut svg, &trace.naive, COLORS[0].1, PAD + 32.0, scale);
    let _ = write!(
        svg,
        r#"<text x="{x}" y="{y1}" fill="{c1}" font-size="11">kyzlo</text><text x="{x}" y="{y2}" fill="{c0}" font-size="11">naive</text>"#,
        x = W - PAD + 4.0,
        y1 = PAD + 14.0,
        y2 = PAD + 32.0,
        c1 = COLORS[1].1,
        c0 = COLORS[0].1,
    );
    svg.push_str("</svg>");
    svg
}

/// The HTML report.
#[must_use]
pub fn html(
    summary: &ChaosSummary,
    results: &[RunResult],
    trace: Option<&RunTrace>,
    horizon: Duration,
) -> String {
    let mut page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>kyzlo chaos: {name}</title>\
         <style>body{{font-family:sans-serif;max-width:820px;margin:2em auto}}pre{{font-size:11px}}</style></head><body>\
         <h1>kyzlo chaos: {name}</h1><pre>{table}</pre><h2>Realized loss per policy</h2>{cdf}",
        name = escape(&summary.scenario),
        table = escape(&table(summary)),
        cdf = loss_cdf(results),
    );
    if let Some(trace) = trace {
        let _ = write!(
            page,
            "<h2>Example run</h2><p>Price, stop level and the stop trigger (dotted); each \
             transaction at its send time: ● landed, ✕ landed failed, ○ never landed; a dashed \
             line runs to its landing.</p>{}",
            example(trace, horizon)
        );
    }
    page.push_str("</body></html>\n");
    page
}
