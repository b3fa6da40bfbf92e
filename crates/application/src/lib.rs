//! kyzlo's application layer: the ports (traits the adapters implement) and the services
//! that orchestrate ticks, entries and defensive exits against them.
//!
//! Services run on tokio and read time only through [`clock::Clock`], which is tokio's
//! clock: tests run them on paused time.
#![forbid(unsafe_code)]

pub mod assemble;
pub mod bot;
pub mod budget;
pub mod clock;
pub mod control;
pub mod entry;
pub mod execute;
pub mod exit;
pub mod fleet;
pub mod gateway;
pub mod guard;
pub mod journal;
pub mod metrics;
pub mod operator;
pub mod orchestrator;
pub mod ports;
pub mod proof;
pub mod reconcile;
pub mod retry;
pub mod rng;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
