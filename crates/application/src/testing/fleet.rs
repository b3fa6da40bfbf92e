//! The fleet's halt record in memory, announced to its follower at once: what the fleet
//! service's tests run on.

use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use tokio::sync::watch;

use crate::fleet::{FleetHalt, FleetStore};
use crate::ports::PortError;

/// The fleet's halt record in memory, announced to its follower at once.
pub struct MemoryFleetStore {
    record: Mutex<FleetHalt>,
    announce: watch::Sender<u64>,
}

impl Default for MemoryFleetStore {
    fn default() -> Self {
        Self {
            record: Mutex::new(FleetHalt::initial()),
            announce: watch::channel(0).0,
        }
    }
}

impl MemoryFleetStore {
    fn change(&self, f: impl FnOnce(&mut FleetHalt)) -> FleetHalt {
        let mut record = self.record.lock().unwrap_or_else(PoisonError::into_inner);
        let before = record.generation;
        f(&mut record);
        if record.generation != before {
            self.announce.send_replace(record.generation);
        }
        record.clone()
    }
}

#[async_trait]
impl FleetStore for MemoryFleetStore {
    async fn read(&self) -> Result<FleetHalt, PortError> {
        Ok(self.change(|_| {}))
    }

    async fn halt(&self, detail: &str, by: &str) -> Result<FleetHalt, PortError> {
        Ok(self.change(|r| {
            if !r.halted {
                *r = FleetHalt {
                    generation: r.generation + 1,
                    halted: true,
                    detail: detail.to_owned(),
                    by: by.to_owned(),
                    proof: None,
                };
            }
        }))
    }

    async fn resume(&self, generation: u64, proof: &str, by: &str) -> Result<FleetHalt, PortError> {
        Ok(self.change(|r| {
            if r.halted && r.generation == generation {
                *r = FleetHalt {
                    generation: generation + 1,
                    halted: false,
                    detail: "resumed".to_owned(),
                    by: by.to_owned(),
                    proof: Some(proof.to_owned()),
                };
            }
        }))
    }

    fn announcements(&self) -> Option<watch::Receiver<u64>> {
        Some(self.announce.subscribe())
    }
}
