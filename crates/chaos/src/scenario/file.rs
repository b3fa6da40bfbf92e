//! Scenario files: a user's scenario in TOML (format in [`from_toml`]), validated into a
//! [`Scenario`], and the loader that takes a built-in name or a file.

use super::*;

/// Why a scenario could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// Neither a built-in name nor a readable file.
    #[error("no built-in scenario named {name:?} and no such file (built-in: {builtins})")]
    Unknown {
        /// The name given.
        name: String,
        /// The built-in names.
        builtins: String,
    },
    /// The file could not be read.
    #[error("cannot read scenario file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        source: std::io::Error,
    },
    /// The TOML is malformed or has an unknown or mistyped key.
    #[error("scenario file {path}: {message}")]
    Toml {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value is out of range.
    #[error("scenario file {path}: {key} = {value}: {expected}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key.
        key: &'static str,
        /// The value given.
        value: String,
        /// What is allowed.
        expected: &'static str,
    },
    /// The replay CSV is malformed.
    #[error(transparent)]
    Csv(#[from] kyzlo_adapters_sim::market::CsvError),
}

/// A scenario by built-in name or TOML file path.
///
/// # Errors
/// [`ScenarioError`] naming what is wrong.
pub fn load(name_or_path: &str) -> Result<Scenario, ScenarioError> {
    if let Some(s) = builtin(name_or_path) {
        return Ok(s);
    }
    let path = Path::new(name_or_path);
    if !path.exists() {
        return Err(ScenarioError::Unknown {
            name: name_or_path.to_owned(),
            builtins: BUILTIN.join(", "),
        });
    }
    let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Io {
        path: path.to_owned(),
        source,
    })?;
    from_toml(&text, path)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default = "default_stop")]
    stop_loss_bps: u16,
    #[serde(default = "default_position")]
    position_sol: f64,
    #[serde(default = "default_horizon")]
    horizon_s: f64,
    #[serde(default = "default_reaction")]
    operator_reaction_s: f64,
    market: MarketFile,
    #[serde(default)]
    faults: FaultsFile,
}

fn default_stop() -> u16 {
    500
}
fn default_position() -> f64 {
    10.0
}
fn default_horizon() -> f64 {
    600.0
}
fn default_reaction() -> f64 {
    60.0
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "snake_case")]
enum MarketFile {
    Generated {
        #[serde(default = "default_regime")]
        regime: String,
        #[serde(default = "default_start")]
        start_price: f64,
        crash_drop_pct: Option<f64>,
        crash_over_s: Option<f64>,
        crash_at_s: Option<f64>,
    },
    Replay {
        csv: PathBuf,
        from_ts_ms: Option<u64>,
    },
}

fn default_regime() -> String {
    "crash".to_owned()
}
fn default_start() -> f64 {
    100.0
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultsFile {
    profile: Option<ProfileName>,
    send_timeout: Option<f64>,
    timeout_lands: Option<f64>,
    drop: Option<f64>,
    rate_limited: Option<f64>,
    retry_after_s: Option<f64>,
    node_unhealthy: Option<f64>,
    blackouts_s: Option<Vec<[f64; 2]>>,
    blackouts_after_stop_s: Option<Vec<[f64; 2]>>,
    base_slippage_bps: Option<f64>,
    confirm_latency_median_ms: Option<f64>,
    cluster: Option<ClusterName>,
    provider_outages: Option<Vec<ProviderOutageFile>>,
}

/// One `[[faults.provider_outages]]`: a provider down or lagging around the stop.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderOutageFile {
    endpoint: u8,
    kind: OutageKind,
    lag_slots: Option<u64>,
    from_stop_s: f64,
    to_stop_s: f64,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum OutageKind {
    Down,
    Lagging,
}

/// The RPC nodes of a scenario file's `[faults] cluster`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ClusterName {
    Adversarial,
    Healthy,
    Ideal,
}

pub(super) fn secs(path: &Path, key: &'static str, v: f64) -> Result<Duration, ScenarioError> {
    if v.is_finite() && (0.0..1e7).contains(&v) {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(ScenarioError::Invalid {
            path: path.to_owned(),
            key,
            value: v.to_string(),
            expected: "a number of seconds from 0 to 10,000,000",
        })
    }
}

fn probability(
    path: &Path,
    key: &'static str,
    v: Option<f64>,
    into: &mut f64,
) -> Result<(), ScenarioError> {
    if let Some(v) = v {
        if !(0.0..=1.0).contains(&v) {
            return Err(ScenarioError::Invalid {
                path: path.to_owned(),
                key,
                value: v.to_string(),
                expected: "a probability from 0 to 1",
            });
        }
        *into = v;
    }
    Ok(())
}

/// Parses a scenario file. The format:
///
/// ```toml
/// name = "my-crash"
/// description = "19 May 2021 under a flaky RPC"
/// stop_loss_bps = 500        # default 500
/// position_sol = 10.0        # default 10
/// horizon_s = 600            # default 600
/// operator_reaction_s = 60   # default 60: an operator force-exits this long after a halt
///
/// [market]                   # either generated...
/// kind = "generated"
/// regime = "crash"           # calm | trending | crash
/// start_price = 100.0
/// crash_drop_pct = 20.0
/// crash_over_s = 100.0
/// crash_at_s = 0.0
///
/// # [market]                 # ...or replayed from a CSV (ts_ms,price or OHLCV), relative
/// # kind = "replay"          # paths resolved against the scenario file's folder
/// # csv = "sol_usdt_1m.csv"
/// # from_ts_ms = 1621425480000
///
/// [faults]                   # a named profile, then overrides
/// profile = "flaky"          # none | flaky | rpc-blackout | late-landing | rate-limited | slippage-storm | node-behind | adversarial
/// send_timeout = 0.5
/// timeout_lands = 0.3
/// drop = 0.05
/// rate_limited = 0.0
/// retry_after_s = 1.0
/// node_unhealthy = 0.0
/// blackouts_s = [[20, 65]]            # RPC blackouts, seconds from the run's start
/// blackouts_after_stop_s = [[0, 45]]   # ... or from the moment the stop fires in each run
/// base_slippage_bps = 5.0
/// confirm_latency_median_ms = 600
/// cluster = "adversarial"    # adversarial | healthy (the default) | ideal: the RPC nodes
///
/// [[faults.provider_outages]] # makes the cluster's nodes providers, one endpoint each,
/// endpoint = 0                # reached through the client's endpoint list (kyzlo's knows
/// kind = "down"               # them all, naive's only the primary, endpoint 0); "down":
/// from_stop_s = -10.0         # no answer, nothing sent lands; "lagging" with
/// to_stop_s = 80.0            # lag_slots = 60: answers 60 slots behind the tip; seconds
///                             # from the stop, negative before it
/// ```
///
/// # Errors
/// [`ScenarioError`] naming the key, its value and what is allowed.
pub fn from_toml(text: &str, path: &Path) -> Result<Scenario, ScenarioError> {
    let file: ScenarioFile = toml::from_str(text).map_err(|e| ScenarioError::Toml {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let invalid =
        |key: &'static str, value: String, expected: &'static str| ScenarioError::Invalid {
            path: path.to_owned(),
            key,
            value,
            expected,
        };
    if file.stop_loss_bps == 0 || file.stop_loss_bps >= 10_000 {
        return Err(invalid(
            "stop_loss_bps",
            file.stop_loss_bps.to_string(),
            "1 to 9999 (a stop at or above 100% is no stop)",
        ));
    }
    if !(file.position_sol.is_finite() && file.position_sol > 0.0 && file.position_sol < 1e9) {
        return Err(invalid(
            "position_sol",
            file.position_sol.to_string(),
            "a positive amount of SOL below 1e9",
        ));
    }
    let horizon = secs(path, "horizon_s", file.horizon_s)?;
    let operator_reaction = secs(path, "operator_reaction_s", file.operator_reaction_s)?;
    let market = match file.market {
        MarketFile::Generated {
            regime,
            start_price,
            crash_drop_pct,
            crash_over_s,
            crash_at_s,
        } => {
            let regime = match regime.as_str() {
                "calm" => Regime::Calm,
                "trending" => Regime::Trending,
                "crash" => Regime::Crash,
                _ => return Err(invalid("market.regime", regime, "calm, trending or crash")),
            };
            let mut config = GeneratorConfig::regime(regime, start_price, horizon);
            if let Some(drop_pct) = crash_drop_pct {
                let over = secs(path, "market.crash_over_s", crash_over_s.unwrap_or(100.0))?;
                let at = secs(path, "market.crash_at_s", crash_at_s.unwrap_or(0.0))?;
                config.crash = Some(CrashSpec {
                    at,
                    drop_pct,
                    over,
                    vol_multiplier: 3.0,
                });
            }
            config.validate().map_err(|e| ScenarioError::Toml {
                path: path.to_owned(),
                message: format!("market: {e}"),
            })?;
            MarketSpec::Generated(config)
        }
        MarketFile::Replay { csv, from_ts_ms } => {
            let csv = if csv.is_relative() {
                path.parent().unwrap_or(Path::new(".")).join(csv)
            } else {
                csv
            };
            let full = load_csv(&csv, CsvRules::default())?;
            let start = match from_ts_ms {
                Some(ts) => {
                    let first = full.first_ts_ms();
                    if ts < first {
                        return Err(invalid(
                            "market.from_ts_ms",
                            ts.to_string(),
                            "a timestamp inside the CSV",
                        ));
                    }
                    Duration::from_millis(ts - first)
                }
                None => Duration::ZERO,
            };
            if start >= full.duration() {
                return Err(invalid(
                    "market.from_ts_ms",
                    from_ts_ms.unwrap_or(0).to_string(),
                    "a timestamp inside the CSV",
                ));
            }
            MarketSpec::Replay(Arc::new(full.slice_from(start)))
        }
    };
    let f = file.faults;
    let mut faults = f.profile.map(ProfileName::profile).unwrap_or_default();
    probability(
        path,
        "faults.send_timeout",
        f.send_timeout,
        &mut faults.send_timeout,
    )?;
    probability(
        path,
        "faults.timeout_lands",
        f.timeout_lands,
        &mut faults.timeout_lands,
    )?;
    probability(path, "faults.drop", f.drop, &mut faults.drop)?;
    probability(
        path,
        "faults.rate_limited",
        f.rate_limited,
        &mut faults.rate_limited,
    )?;
    probability(
        path,
        "faults.node_unhealthy",
        f.node_unhealthy,
        &mut faults.node_unhealthy,
    )?;
    if let Some(v) = f.retry_after_s {
        faults.retry_after = secs(path, "faults.retry_after_s", v)?;
    }
    if let Some(v) = f.confirm_latency_median_ms {
        faults.confirm_latency_median = secs(path, "faults.confirm_latency_median_ms", v / 1000.0)?;
    }
    if let Some(v) = f.base_slippage_bps {
        if !(v.is_finite() && (0.0..1000.0).contains(&v)) {
            return Err(invalid(
                "faults.base_slippage_bps",
                v.to_string(),
                "0 to 1000",
            ));
        }
        faults.base_slippage_bps = v;
    }
    if let Some(cluster) = f.cluster {
        faults.cluster = match cluster {
            ClusterName::Adversarial => ClusterProfile::adversarial(),
            ClusterName::Healthy => ClusterProfile::default(),
            ClusterName::Ideal => ClusterProfile::ideal(),
        };
    }
    let outages_around_stop = match &f.provider_outages {
        Some(outages) => {
            faults.cluster.topology = Topology::Endpoints;
            outages
                .iter()
                .map(|o| provider_outage(path, o, faults.cluster.nodes))
                .collect::<Result<Vec<_>, _>>()?
        }
        None => Vec::new(),
    };
    if let Some(windows) = &f.blackouts_s {
        faults.blackouts = windows_of(path, "faults.blackouts_s", windows)?;
    }
    let blackouts_after_stop = match &f.blackouts_after_stop_s {
        Some(windows) => windows_of(path, "faults.blackouts_after_stop_s", windows)?,
        None => Vec::new(),
    };
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let position = (file.position_sol * SOL as f64) as u64;
    Ok(Scenario {
        name: file.name,
        description: file.description,
        market,
        faults,
        stop_loss_bps: file.stop_loss_bps,
        position,
        horizon,
        operator_reaction,
        tick: Duration::from_secs(1),
        blackouts_after_stop,
        outages_around_stop,
        durable_nonce: false,
    })
}

/// A `[[faults.provider_outages]]` entry on a cluster of `nodes` providers.
fn provider_outage(
    path: &Path,
    o: &ProviderOutageFile,
    nodes: u8,
) -> Result<OutageAroundStop, ScenarioError> {
    let invalid = |key: &'static str, value: String, expected: &'static str| {
        Err(ScenarioError::Invalid {
            path: path.to_owned(),
            key,
            value,
            expected,
        })
    };
    if o.endpoint >= nodes {
        return invalid(
            "faults.provider_outages.endpoint",
            o.endpoint.to_string(),
            "an endpoint of the cluster, from 0 (the primary) to its nodes less one",
        );
    }
    let seconds = |v: f64| v.is_finite() && v.abs() < 1e7;
    if !(seconds(o.from_stop_s) && seconds(o.to_stop_s) && o.from_stop_s < o.to_stop_s) {
        return invalid(
            "faults.provider_outages",
            format!(
                "from_stop_s = {}, to_stop_s = {}",
                o.from_stop_s, o.to_stop_s
            ),
            "seconds from the stop (negative before it), from_stop_s before to_stop_s",
        );
    }
    let fault = match (o.kind, o.lag_slots) {
        (OutageKind::Down, None) => EndpointFault::Down,
        (OutageKind::Lagging, Some(slots)) if (1..=10_000).contains(&slots) => {
            EndpointFault::Lagging { slots }
        }
        (kind, slots) => {
            return invalid(
                "faults.provider_outages.lag_slots",
                format!("{slots:?} with kind = {kind:?}"),
                "1 to 10000 with kind = \"lagging\", absent with kind = \"down\"",
            );
        }
    };
    Ok(OutageAroundStop {
        endpoint: o.endpoint,
        from: FromStop::from_secs(o.from_stop_s),
        until: FromStop::from_secs(o.to_stop_s),
        fault,
    })
}
