//! kyzlo's simulated venue: the market, chain, router and signer behind paper mode and
//! the chaos benchmark.
//!
//! - [`market`]: price paths (a recorded CSV series or a seeded generator: GBM, Poisson
//!   jumps and a crash segment calibrated on SOL/USDT in May 2021) and [`SimMarket`], the
//!   [`PriceFeed`](kyzlo_application::ports::PriceFeed) over one.
//! - [`faults`]: a time-keyed, seeded [`FaultSchedule`] (latencies, hung sends, late
//!   landings, drops, 429s, node-behind, blackouts) that every policy of a run consults,
//!   so two policies sending at the same moment meet the same network.
//! - [`venue`]: [`SimVenue`], the router, chain, signer and health probe in one, settling
//!   landings lazily against a [`SimWallet`]; [`wallet`]: the paper wallet file.
//!
//! Everything runs on tokio's clock (through
//! [`Clock`](kyzlo_application::clock::Clock)), so on paused time thousands of runs take
//! seconds, and everything random comes from a seed ([`rng::SimRng`]): the same seed
//! replays the same run. The only wall-clock read is the paper wallet's block height
//! ([`HeightSource::Continuing`]). What it never does: touch the network, or execute the
//! same signed bytes twice.
#![forbid(unsafe_code)]

pub mod error;
pub mod faults;
pub mod market;
pub mod report;
pub mod rng;
pub mod summary;
pub mod trace;
pub mod venue;
pub mod wallet;

pub use error::{CsvError, SimError};
pub use faults::{ClusterProfile, FaultProfile, FaultSchedule, ProfileName, SendFate, Topology};
pub use market::{
    CrashSpec, GeneratorConfig, PricePath, Regime, SimMarket, generate, load_csv, parse_csv,
};
pub use trace::{Trace, TraceEvent};
pub use venue::{Landing, SimVenue};
pub use wallet::{HeightSource, LedgerEntry, LedgerStatus, PaperWallet, SimWallet};
