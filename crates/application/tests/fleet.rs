//! The fleet's halt on paused time: a halt in one market halts every market of every
//! instance; a resume needs a proof of the approval key; an unreachable record holds the
//! markets in ReduceOnly and lets them go when it answers again.
#![allow(clippy::unwrap_used)] // test helpers panic on broken fixtures by design

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use kyzlo_application::clock::Clock;
use kyzlo_application::control::{ApprovalKey, TradingControl};
use kyzlo_application::fleet::{
    Fleet, FleetHalt, FleetSettings, FleetStore, resume_holds, resume_proof,
};
use kyzlo_application::journal::{Journal as _, MemoryJournal};
use kyzlo_application::metrics::CountingMetrics;
use kyzlo_application::ports::{AlertKind, PortError};
use kyzlo_application::testing::{MemoryFleetStore, RecordingAlerts};
use kyzlo_domain::ErrorClass;
use kyzlo_domain::trading_state::{HaltCause, ReduceOnlyCause, TradingState};
use tokio::sync::watch;

const KEY: &str = "fleet-approval-key-0123456789abcdef";
const POLL: Duration = Duration::from_secs(2);

struct Market {
    control: Arc<TradingControl>,
    journal: Arc<MemoryJournal>,
    alerts: Arc<RecordingAlerts>,
}

fn market(key: Option<&str>) -> Market {
    let journal = Arc::new(MemoryJournal::new());
    let alerts = Arc::new(RecordingAlerts::default());
    let control = Arc::new(TradingControl::new(
        TradingState::Active,
        key.map(|k| ApprovalKey::new(k).unwrap()),
        journal.clone(),
        alerts.clone(),
        Arc::new(CountingMetrics::new()),
        Clock::new(),
    ));
    Market {
        control,
        journal,
        alerts,
    }
}

fn settings(instance: &str) -> FleetSettings {
    FleetSettings {
        poll: POLL,
        unreachable_after: Duration::from_secs(10),
        instance: instance.to_owned(),
    }
}

/// A store that can be cut off, polled only (no announcements).
struct Flaky {
    inner: MemoryFleetStore,
    down: AtomicBool,
    announce: bool,
}

impl Flaky {
    fn new(announce: bool) -> Arc<Self> {
        Arc::new(Self {
            inner: MemoryFleetStore::default(),
            down: AtomicBool::new(false),
            announce,
        })
    }

    fn check(&self) -> Result<(), PortError> {
        if self.down.load(Ordering::SeqCst) {
            Err(PortError::new(
                "fleet.read",
                ErrorClass::Unknown,
                "connection refused",
            ))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl FleetStore for Flaky {
    async fn read(&self) -> Result<FleetHalt, PortError> {
        self.check()?;
        self.inner.read().await
    }
    async fn halt(&self, detail: &str, by: &str) -> Result<FleetHalt, PortError> {
        self.check()?;
        self.inner.halt(detail, by).await
    }
    async fn resume(&self, g: u64, proof: &str, by: &str) -> Result<FleetHalt, PortError> {
        self.check()?;
        self.inner.resume(g, proof, by).await
    }
    fn announcements(&self) -> Option<watch::Receiver<u64>> {
        if self.announce {
            self.inner.announcements()
        } else {
            None
        }
    }
}

async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

fn halted(control: &TradingControl) -> Option<HaltCause> {
    match control.state() {
        TradingState::Halted { reason, .. } => Some(reason.cause),
        _ => None,
    }
}

#[test]
fn a_resume_proof_is_bound_to_its_key_and_generation() {
    let key = ApprovalKey::new(KEY).unwrap();
    let other = ApprovalKey::new("another-key-that-is-long-enough").unwrap();
    let record = |generation, proof: String| FleetHalt {
        generation,
        halted: false,
        detail: String::new(),
        by: String::new(),
        proof: Some(proof),
    };
    assert!(resume_holds(&key, &record(4, resume_proof(&key, 4))));
    assert!(
        !resume_holds(&key, &record(6, resume_proof(&key, 4))),
        "replayed"
    );
    assert!(
        !resume_holds(&key, &record(4, resume_proof(&other, 4))),
        "wrong key"
    );
    assert!(!resume_holds(&key, &record(4, "00".repeat(32))));
    let mut halted = record(4, resume_proof(&key, 4));
    halted.halted = true;
    assert!(!resume_holds(&key, &halted), "a halt is no resume");
}

#[tokio::test(start_paused = true)]
async fn a_halt_in_one_market_halts_every_market_of_every_instance_and_a_proved_resume_lifts_it() {
    let store = Arc::new(MemoryFleetStore::default());
    let (_stop, shutdown) = watch::channel(false);
    let mut markets = Vec::new();
    for instance in ["a", "b"] {
        let fleet = Fleet::new(
            store.clone(),
            Some(ApprovalKey::new(KEY).unwrap()),
            settings(instance),
        );
        for i in 0..3 {
            let m = market(Some(KEY));
            fleet.join(&format!("{instance}{i}"), &m.control).await;
            markets.push(m);
        }
        tokio::spawn(fleet.run(shutdown.clone()));
    }
    settle().await;
    assert!(markets.iter().all(|m| halted(&m.control).is_none()));

    // One market's exit breaker halts it: the fleet follows, announced, without a poll.
    let _ = markets[4]
        .control
        .halt(HaltCause::ExitBreaker, "2 consecutive failed exits")
        .await;
    settle().await;
    let record = store.read().await.unwrap();
    assert!(record.halted);
    assert!(record.detail.contains("b1"), "{}", record.detail);
    assert!(record.detail.contains("exit_breaker"), "{}", record.detail);
    for (i, m) in markets.iter().enumerate() {
        let expected = if i == 4 {
            HaltCause::ExitBreaker
        } else {
            HaltCause::Fleet
        };
        assert_eq!(halted(&m.control), Some(expected), "market {i}");
        // Journaled, so a restart starts halted.
        let state = m.journal.load().await.unwrap().trading_state.unwrap();
        assert!(state.is_halted(), "market {i}: {state:?}");
    }

    // A resume without the key's proof resumes nothing and pages.
    store
        .resume(record.generation, &"ab".repeat(32), "somebody")
        .await
        .unwrap();
    settle().await;
    assert!(markets.iter().all(|m| halted(&m.control).is_some()));
    assert!(
        markets
            .iter()
            .any(|m| m.alerts.count(AlertKind::TradingHalted) >= 2)
    );

    // Halted again, then resumed with the proof: every market trades again.
    let record = store.halt("operator fleet halt", "ops").await.unwrap();
    settle().await;
    let proof = resume_proof(&ApprovalKey::new(KEY).unwrap(), record.generation + 1);
    store
        .resume(record.generation, &proof, "ops")
        .await
        .unwrap();
    settle().await;
    for (i, m) in markets.iter().enumerate() {
        assert_eq!(m.control.state(), TradingState::Active, "market {i}");
    }
}

#[tokio::test(start_paused = true)]
async fn an_operator_resume_of_one_market_resumes_the_fleet() {
    let store = Arc::new(MemoryFleetStore::default());
    let (_stop, shutdown) = watch::channel(false);
    let fleet = Fleet::new(
        store.clone(),
        Some(ApprovalKey::new(KEY).unwrap()),
        settings("a"),
    );
    let (one, two) = (market(Some(KEY)), market(Some(KEY)));
    fleet.join("one", &one.control).await;
    fleet.join("two", &two.control).await;
    tokio::spawn(fleet.run(shutdown));
    settle().await;
    store.halt("operator fleet halt", "ops").await.unwrap();
    settle().await;
    assert_eq!(halted(&two.control), Some(HaltCause::Fleet));
    one.control.resume(KEY.as_bytes()).await.unwrap();
    settle().await;
    assert!(!store.read().await.unwrap().halted);
    assert_eq!(two.control.state(), TradingState::Active);
}

#[tokio::test(start_paused = true)]
async fn without_announcements_a_halt_is_seen_within_one_poll() {
    let store = Flaky::new(false);
    let (_stop, shutdown) = watch::channel(false);
    let fleet = Fleet::new(store.clone(), None, settings("a"));
    let m = market(None);
    fleet.join("m", &m.control).await;
    tokio::spawn(fleet.run(shutdown));
    settle().await;
    store
        .inner
        .halt("operator fleet halt", "ops")
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let mut state = m.control.subscribe();
    state.wait_for(TradingState::is_halted).await.unwrap();
    assert!(started.elapsed() <= POLL, "{:?}", started.elapsed());
}

#[tokio::test(start_paused = true)]
async fn a_market_joining_a_halted_fleet_starts_halted() {
    let store = Arc::new(MemoryFleetStore::default());
    store.halt("operator fleet halt", "ops").await.unwrap();
    let (_stop, shutdown) = watch::channel(false);
    let fleet = Fleet::new(store.clone(), None, settings("a"));
    tokio::spawn(fleet.clone().run(shutdown));
    settle().await;
    let late = market(None);
    fleet.join("late", &late.control).await;
    assert_eq!(halted(&late.control), Some(HaltCause::Fleet));
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_fleet_holds_entries_after_its_bound_and_lets_go_when_it_answers() {
    let store = Flaky::new(false);
    let (_stop, shutdown) = watch::channel(false);
    let fleet = Fleet::new(store.clone(), None, settings("a"));
    let m = market(None);
    fleet.join("m", &m.control).await;
    tokio::spawn(fleet.run(shutdown));
    settle().await;
    store.down.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(m.control.state(), TradingState::Active, "within the bound");
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(
        matches!(
            m.control.state(),
            TradingState::ReduceOnly {
                cause: ReduceOnlyCause::FleetUnreachable,
                ..
            }
        ),
        "{:?}",
        m.control.state()
    );
    assert_eq!(m.alerts.count(AlertKind::TradingHalted), 1, "paged once");
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(
        m.alerts.count(AlertKind::TradingHalted),
        1,
        "not paged again"
    );
    store.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(POLL * 2).await;
    assert_eq!(m.control.state(), TradingState::Active);
}

#[tokio::test(start_paused = true)]
async fn a_market_restarting_halted_by_the_fleet_follows_a_resume_made_while_it_was_down() {
    let store = Arc::new(MemoryFleetStore::default());
    let record = store.halt("operator fleet halt", "ops").await.unwrap();
    let proof = resume_proof(&ApprovalKey::new(KEY).unwrap(), record.generation + 1);
    store
        .resume(record.generation, &proof, "ops")
        .await
        .unwrap();
    let (_stop, shutdown) = watch::channel(false);
    let fleet = Fleet::new(
        store.clone(),
        Some(ApprovalKey::new(KEY).unwrap()),
        settings("a"),
    );
    tokio::spawn(fleet.clone().run(shutdown));
    settle().await;
    // Started from its journal, halted by the fleet's earlier generation.
    let m = market(Some(KEY));
    let _ = m
        .control
        .halt(HaltCause::Fleet, "fleet halt (generation 1)")
        .await;
    fleet.join("m", &m.control).await;
    settle().await;
    assert_eq!(m.control.state(), TradingState::Active);
    assert!(
        !store.read().await.unwrap().halted,
        "the fleet was not halted again"
    );
}

#[tokio::test(start_paused = true)]
async fn a_market_s_own_halt_during_a_fleet_halt_is_not_lifted_by_the_fleet_s_resume() {
    let store = Arc::new(MemoryFleetStore::default());
    let (_stop, shutdown) = watch::channel(false);
    let fleet = Fleet::new(
        store.clone(),
        Some(ApprovalKey::new(KEY).unwrap()),
        settings("a"),
    );
    let (calm, short) = (market(Some(KEY)), market(Some(KEY)));
    fleet.join("calm", &calm.control).await;
    fleet.join("short", &short.control).await;
    tokio::spawn(fleet.run(shutdown));
    settle().await;
    let record = store.halt("operator fleet halt", "ops").await.unwrap();
    settle().await;
    // Reconciliation finds a shortfall while the fleet is halted: its own reason, paged.
    let paged = short.alerts.count(AlertKind::TradingHalted);
    let _ = short
        .control
        .halt(HaltCause::Reconciliation, "the wallet holds less")
        .await;
    assert_eq!(halted(&short.control), Some(HaltCause::Reconciliation));
    assert_eq!(short.alerts.count(AlertKind::TradingHalted), paged + 1);
    let proof = resume_proof(&ApprovalKey::new(KEY).unwrap(), record.generation + 1);
    store
        .resume(record.generation, &proof, "ops")
        .await
        .unwrap();
    settle().await;
    assert_eq!(calm.control.state(), TradingState::Active);
    assert_eq!(halted(&short.control), Some(HaltCause::Reconciliation));
}

#[tokio::test(start_paused = true)]
async fn a_resume_without_a_valid_proof_halts_the_fleet_again_and_an_older_record_is_ignored() {
    let store = Flaky::new(true);
    let (_stop, shutdown) = watch::channel(false);
    let fleet = Fleet::new(
        store.clone(),
        Some(ApprovalKey::new(KEY).unwrap()),
        settings("a"),
    );
    let m = market(Some(KEY));
    fleet.join("m", &m.control).await;
    tokio::spawn(fleet.run(shutdown));
    settle().await;
    let record = store
        .inner
        .halt("operator fleet halt", "ops")
        .await
        .unwrap();
    settle().await;
    store
        .inner
        .resume(record.generation, &"cd".repeat(32), "somebody")
        .await
        .unwrap();
    settle().await;
    let after = store.read().await.unwrap();
    assert!(after.halted, "the record must not say trading: {after:?}");
    assert!(after.detail.contains("without a proof"), "{}", after.detail);
    assert!(m.control.state().is_halted());
}
