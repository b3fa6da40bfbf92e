//! The named fault profiles.

use super::*;

/// The named fault profiles (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProfileName {
    /// A healthy network.
    None,
    /// Some timeouts, drops, 429s and unhealthy nodes.
    Flaky,
    /// A 45 s blackout of every RPC call.
    RpcBlackout,
    /// Many sends hang and land late.
    LateLanding,
    /// Many 429s with a retry-after.
    RateLimited,
    /// Wide slippage and noisy prices at landing.
    SlippageStorm,
    /// Unhealthy and lagging nodes.
    NodeBehind,
    /// The adversarial cluster on an otherwise healthy network.
    Adversarial,
}

impl ProfileName {
    /// Every name, in [`FaultProfile::NAMES`]' order.
    pub const ALL: [ProfileName; 8] = [
        ProfileName::None,
        ProfileName::Flaky,
        ProfileName::RpcBlackout,
        ProfileName::LateLanding,
        ProfileName::RateLimited,
        ProfileName::SlippageStorm,
        ProfileName::NodeBehind,
        ProfileName::Adversarial,
    ];

    /// The name as written in files and on the command line.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            ProfileName::None => "none",
            ProfileName::Flaky => "flaky",
            ProfileName::RpcBlackout => "rpc-blackout",
            ProfileName::LateLanding => "late-landing",
            ProfileName::RateLimited => "rate-limited",
            ProfileName::SlippageStorm => "slippage-storm",
            ProfileName::NodeBehind => "node-behind",
            ProfileName::Adversarial => "adversarial",
        }
    }

    /// The profile it names.
    #[must_use]
    pub fn profile(self) -> FaultProfile {
        let healthy = FaultProfile::default();
        match self {
            ProfileName::None => healthy,
            ProfileName::Flaky => FaultProfile {
                send_timeout: 0.05,
                timeout_lands: 0.5,
                drop: 0.05,
                rate_limited: 0.02,
                node_unhealthy: 0.01,
                confirm_latency_sigma: 0.7,
                ..healthy
            },
            ProfileName::RpcBlackout => FaultProfile {
                blackouts: vec![(Duration::from_secs(30), Duration::from_secs(75))],
                ..healthy
            },
            ProfileName::LateLanding => FaultProfile {
                send_timeout: 0.6,
                timeout_lands: 0.8,
                ..healthy
            },
            ProfileName::RateLimited => FaultProfile {
                rate_limited: 0.3,
                retry_after: Duration::from_secs(2),
                ..healthy
            },
            ProfileName::SlippageStorm => FaultProfile {
                base_slippage_bps: 30.0,
                confirm_price_noise_bps: 100.0,
                ..healthy
            },
            ProfileName::NodeBehind => FaultProfile {
                node_unhealthy: 0.25,
                cluster: ClusterProfile {
                    lagging: 0.3,
                    lagging_slots: 40,
                    ..ClusterProfile::default()
                },
                ..healthy
            },
            ProfileName::Adversarial => FaultProfile {
                cluster: ClusterProfile::adversarial(),
                ..healthy
            },
        }
    }
}

impl std::str::FromStr for ProfileName {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|n| n.as_str() == name)
            .ok_or_else(|| {
                format!(
                    "{name:?}: expected one of {}",
                    FaultProfile::NAMES.join(", ")
                )
            })
    }
}
