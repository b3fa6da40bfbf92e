//! The files under `deploy/`: every `kyzlo_*` metric (and label value) the Grafana
//! dashboard and the Prometheus rules query exists in the exposition; the rules hold the
//! required alerts and pass promtool's check and unit tests when promtool is installed;
//! the dashboard is well formed; the systemd unit runs kyzlo hardened and passes
//! `systemd-analyze verify` when available.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers panic on broken fixtures by design

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;

use common::{Exposition, parse_openmetrics, promtool, record_every_event};
use kyzlo_adapters_telemetry::PrometheusMetrics;
use serde_json::Value;

fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn read(name: &str) -> String {
    let path = deploy_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn dashboard() -> Value {
    serde_json::from_str(&read("grafana-dashboard.json")).unwrap()
}

fn rules() -> serde_yaml_ng::Value {
    serde_yaml_ng::from_str(&read("prometheus-alerts.yml")).unwrap()
}

fn exposition() -> Exposition {
    let m = PrometheusMetrics::new();
    record_every_event(&m);
    parse_openmetrics(&m.render().unwrap()).unwrap()
}

/// Every PromQL expression in the dashboard: targets, annotations, variable queries.
fn dashboard_exprs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr" | "definition", Value::String(s)) => out.push(s.clone()),
                    ("query", Value::String(s)) if s.contains("kyzlo_") => out.push(s.clone()),
                    _ => dashboard_exprs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| dashboard_exprs(v, out)),
        _ => {}
    }
}

fn rule_list() -> Vec<serde_yaml_ng::Value> {
    rules()["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap().clone())
        .collect()
}

/// A `kyzlo_*` selector in an expression: the metric and its `label="value"` matchers
/// (regex, negative and templated matchers are left out).
#[derive(Debug)]
struct Selector {
    metric: String,
    equals: Vec<(String, String)>,
}

fn selectors(expr: &str) -> Vec<Selector> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("kyzlo_") {
        let boundary = rest[..at].chars().next_back().is_none_or(|c| !is_ident(c));
        let tail = &rest[at..];
        let end = tail.find(|c| !is_ident(c)).unwrap_or(tail.len());
        let metric = &tail[..end];
        rest = &tail[end..];
        if !boundary {
            continue;
        }
        let mut equals = Vec::new();
        if let Some(body) = rest.strip_prefix('{') {
            let close = body.find('}').expect("unclosed selector");
            for matcher in body[..close]
                .split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
            {
                if matcher.contains("=~") || matcher.contains("!=") || matcher.contains('$') {
                    continue;
                }
                let (label, value) = matcher.split_once('=').expect("a matcher");
                equals.push((
                    label.trim().to_owned(),
                    value.trim().trim_matches('"').to_owned(),
                ));
            }
        }
        out.push(Selector {
            metric: metric.to_owned(),
            equals,
        });
    }
    out
}

fn check_exprs_against_exposition(
    source: &str,
    exprs: &[String],
    exposition: &Exposition,
) -> usize {
    let names = exposition.sample_names();
    let mut checked = 0;
    for expr in exprs {
        for s in selectors(expr) {
            assert!(
                names.contains(&s.metric),
                "{source}: {} is not exposed (in `{expr}`)",
                s.metric
            );
            let matches = exposition
                .families
                .values()
                .flat_map(|f| &f.samples)
                .any(|sample| {
                    sample.name == s.metric
                        && s.equals
                            .iter()
                            .all(|(k, v)| sample.labels.get(k) == Some(v))
                });
            assert!(
                matches,
                "{source}: no {} sample has {:?} (in `{expr}`)",
                s.metric, s.equals
            );
            checked += 1;
        }
    }
    checked
}

#[test]
fn dashboard_and_rules_query_only_metrics_and_labels_kyzlo_exposes() {
    let exposition = exposition();
    let mut exprs = Vec::new();
    dashboard_exprs(&dashboard(), &mut exprs);
    let in_dashboard = check_exprs_against_exposition("dashboard", &exprs, &exposition);
    let rule_exprs: Vec<String> = rule_list()
        .iter()
        .map(|r| r["expr"].as_str().unwrap().to_owned())
        .collect();
    let in_rules = check_exprs_against_exposition("rules", &rule_exprs, &exposition);
    assert!(
        in_dashboard >= 30,
        "only {in_dashboard} selectors found in the dashboard"
    );
    assert!(
        in_rules >= 4,
        "only {in_rules} selectors found in the rules"
    );

    // The dashboard covers what the issue asks for.
    let used: BTreeSet<String> = exprs
        .iter()
        .flat_map(|e| selectors(e).into_iter().map(|s| s.metric))
        .collect();
    for needed in [
        "kyzlo_exits_first_attempt_total",
        "kyzlo_exits_required_retry_total",
        "kyzlo_exits_failed_total",
        "kyzlo_exits_deadline_exceeded_total",
        "kyzlo_exit_duration_seconds_bucket",
        "kyzlo_exit_slippage_bps_bucket",
        "kyzlo_latency_breaker_state",
        "kyzlo_trading_state",
        "kyzlo_dependency_latency_quantile_seconds",
        "kyzlo_gateway_ownership_conflicts_total",
        "kyzlo_tick_errors_total",
    ] {
        assert!(
            used.contains(needed),
            "the dashboard does not chart {needed}"
        );
    }
}

#[test]
fn the_rules_hold_the_required_alerts_with_severity_and_summary() {
    let rules = rule_list();
    let by_name: BTreeMap<&str, &serde_yaml_ng::Value> = rules
        .iter()
        .map(|r| (r["alert"].as_str().unwrap(), r))
        .collect();
    for required in [
        "KyzloLatencyBreakerOpen",
        "KyzloTradingHalted",
        "KyzloExitDeadlineExceeded",
        "KyzloExitP99TimeHigh",
    ] {
        let rule = by_name
            .get(required)
            .unwrap_or_else(|| panic!("{required} missing"));
        let severity = rule["labels"]["severity"].as_str();
        assert!(
            matches!(severity, Some("warning" | "critical")),
            "{required}: {severity:?}"
        );
        assert!(
            rule["annotations"]["summary"]
                .as_str()
                .is_some_and(|s| !s.is_empty())
        );
    }
}

#[test]
fn promtool_checks_and_unit_tests_the_rules_when_installed() {
    let dir = deploy_dir();
    let rules = dir.join("prometheus-alerts.yml");
    let Some(check) = promtool(&["check", "rules", rules.to_str().unwrap()], None) else {
        eprintln!("promtool not installed: rules checked by structure and names only");
        return;
    };
    assert!(
        check.status.success(),
        "promtool check rules:\n{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let tests = dir.join("prometheus-alerts.test.yml");
    let test = promtool(&["test", "rules", tests.to_str().unwrap()], None).unwrap();
    assert!(
        test.status.success(),
        "promtool test rules:\n{}{}",
        String::from_utf8_lossy(&test.stdout),
        String::from_utf8_lossy(&test.stderr)
    );
}

#[test]
fn the_dashboard_is_well_formed() {
    let d = dashboard();
    assert_eq!(d["uid"], "kyzlo-exits");
    let variables: BTreeSet<&str> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert!(variables.contains("datasource") && variables.contains("instance"));
    let panels = d["panels"].as_array().unwrap();
    let mut ids = BTreeSet::new();
    for p in panels {
        let title = p["title"].as_str().unwrap();
        assert!(
            ids.insert(p["id"].as_u64().unwrap()),
            "duplicate id in {title}"
        );
        let g = &p["gridPos"];
        let (x, w, h) = (
            g["x"].as_u64().unwrap(),
            g["w"].as_u64().unwrap(),
            g["h"].as_u64().unwrap(),
        );
        assert!(x + w <= 24 && w > 0 && h > 0, "{title}: gridPos {g}");
        if p["type"] == "row" {
            continue;
        }
        assert!(
            ["stat", "timeseries"].contains(&p["type"].as_str().unwrap()),
            "{title}: panel type {}",
            p["type"]
        );
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{title}");
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title}: no targets");
        let ref_ids: BTreeSet<&str> = targets
            .iter()
            .map(|t| t["refId"].as_str().unwrap())
            .collect();
        assert_eq!(ref_ids.len(), targets.len(), "{title}: duplicate refId");
        for t in targets {
            assert!(
                t["expr"].as_str().is_some_and(|e| e.contains("kyzlo_")),
                "{title}: {t}"
            );
        }
    }
}

#[test]
fn the_systemd_unit_runs_kyzlo_hardened() {
    let unit = read("kyzlo.service");
    let mut sections: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut current = String::new();
    for line in unit.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.to_owned();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not key=value: {line}"));
        sections
            .entry(current.clone())
            .or_default()
            .push((key.to_owned(), value.to_owned()));
    }
    let service = &sections["Service"];
    let get = |key: &str| {
        service
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(
        get("ExecStart"),
        Some("/usr/local/bin/kyzlo run --config /etc/kyzlo/kyzlo.toml")
    );
    assert_eq!(
        get("KillSignal"),
        Some("SIGINT"),
        "Ctrl-C semantics on stop"
    );
    for (key, value) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("CapabilityBoundingSet", ""),
        ("MemoryDenyWriteExecute", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("SystemCallFilter", "@system-service"),
        ("UMask", "0077"),
    ] {
        assert_eq!(get(key), Some(value), "{key}");
    }
    assert_eq!(
        sections["Install"],
        vec![("WantedBy".to_owned(), "multi-user.target".to_owned())]
    );

    // systemd's own checker, with the binary (not installed here) replaced by /bin/true.
    let Ok(probe) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze not installed: unit checked by structure only");
        return;
    };
    if !probe.status.success() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("kyzlo-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("kyzlo.service");
    std::fs::write(
        &path,
        unit.replace("ExecStart=/usr/local/bin/kyzlo ", "ExecStart=/bin/true "),
    )
    .unwrap();
    let verify = Command::new("systemd-analyze")
        .args(["verify", path.to_str().unwrap()])
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&verify.stderr);
    assert!(
        verify.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify:\n{stderr}"
    );
}
