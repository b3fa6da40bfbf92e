//! The fleet's halt: one generation-numbered record every market of every instance
//! follows. A halt anywhere (a market's exit breaker, reconciliation, an operator's halt
//! on one instance, or `kyzlo fleet halt`) becomes a new generation of the record, and
//! every [`Fleet`] halts its markets when it sees it: pushed by the store when it can
//! announce changes (PostgreSQL's LISTEN/NOTIFY), re-read every
//! [`FleetSettings::poll`] in any case. A resume is a new generation carrying a proof
//! made with the operator's approval key ([`resume_proof`]); each instance checks the
//! proof with its own key before it resumes its markets, so a row written by somebody
//! without the key resumes nothing. While the store cannot be read for
//! [`FleetSettings::unreachable_after`], every market is held in ReduceOnly (a halt
//! elsewhere could not be seen) and the operator is alerted; exits go on.
//!
//! The service's tests run it over `testing::MemoryFleetStore`, the record in memory.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use async_trait::async_trait;
use hmac::{Hmac, Mac as _};
use kyzlo_domain::trading_state::{HaltCause, ReduceOnlyCause, TradingState};
use sha2::Sha256;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::control::{ApprovalKey, TradingControl, constant_time_eq};
use crate::ports::{Alert, AlertKind, PortError, Severity};

/// The fleet's halt record as last written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetHalt {
    /// Raised by every halt and every resume.
    pub generation: u64,
    /// Whether the fleet is halted.
    pub halted: bool,
    /// Why (a halt), or who resumed.
    pub detail: String,
    /// The instance or operator that wrote it.
    pub by: String,
    /// A resume's proof of the approval key for this generation ([`resume_proof`]).
    pub proof: Option<String>,
}

impl FleetHalt {
    /// The record of a fleet that was never halted.
    #[must_use]
    pub fn initial() -> Self {
        Self {
            generation: 0,
            halted: false,
            detail: String::new(),
            by: String::new(),
            proof: None,
        }
    }
}

/// Where the fleet's halt record is kept and announced.
#[async_trait]
pub trait FleetStore: Send + Sync {
    /// The record now.
    async fn read(&self) -> Result<FleetHalt, PortError>;

    /// Halts the fleet, as a new generation, unless it is halted already; the record as
    /// it stands after.
    async fn halt(&self, detail: &str, by: &str) -> Result<FleetHalt, PortError>;

    /// Resumes the fleet halted at `generation`, as generation `generation + 1` carrying
    /// `proof` ([`resume_proof`] for that generation); nothing when the record has moved
    /// on meanwhile. The record as it stands after.
    async fn resume(&self, generation: u64, proof: &str, by: &str) -> Result<FleetHalt, PortError>;

    /// Announcements of new generations, when the store pushes them (a reader still
    /// polls: an announcement can be missed).
    fn announcements(&self) -> Option<watch::Receiver<u64>>;
}

/// The proof that whoever resumed the fleet at `generation` held the approval key: an
/// HMAC-SHA-256 of the generation under the key, in hex. Bound to its generation, so an
/// old resume cannot be replayed after a later halt.
#[must_use]
pub fn resume_proof(key: &ApprovalKey, generation: u64) -> String {
    // An HMAC takes a key of any length.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.bytes()) else {
        return String::new();
    };
    mac.update(b"kyzlo fleet resume ");
    mac.update(&generation.to_be_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `record` is a resume whose proof `key` made.
#[must_use]
pub fn resume_holds(key: &ApprovalKey, record: &FleetHalt) -> bool {
    !record.halted
        && record.proof.as_deref().is_some_and(|proof| {
            constant_time_eq(
                resume_proof(key, record.generation).as_bytes(),
                proof.as_bytes(),
            )
        })
}

/// How an instance follows the fleet.
#[derive(Debug, Clone)]
pub struct FleetSettings {
    /// How often the record is re-read whatever was announced.
    pub poll: Duration,
    /// How long the record may be unreadable before the markets go ReduceOnly.
    pub unreachable_after: Duration,
    /// This instance's name in what it writes.
    pub instance: String,
}

struct Member {
    name: String,
    control: Weak<TradingControl>,
    /// The generation of the fleet halt this market was halted under, if any: its
    /// resume follows the fleet's, and a resume of it by its own operator resumes the
    /// fleet.
    fleet_halt: Option<u64>,
    /// The generation its own halt (not the fleet's) became: a fleet resume resumes it.
    origin: Option<u64>,
}

/// One instance's follower of the fleet's halt (see the module docs).
pub struct Fleet {
    store: Arc<dyn FleetStore>,
    key: Option<ApprovalKey>,
    settings: FleetSettings,
    members: Mutex<Vec<Member>>,
    last: Mutex<Option<FleetHalt>>,
    wake: watch::Sender<()>,
}

impl Fleet {
    /// A follower of `store` for this instance; `key` is the operator's approval key
    /// (without one, a fleet resume cannot be checked and this instance stays halted).
    #[must_use]
    pub fn new(
        store: Arc<dyn FleetStore>,
        key: Option<ApprovalKey>,
        settings: FleetSettings,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            key,
            settings,
            members: Mutex::new(Vec::new()),
            last: Mutex::new(None),
            wake: watch::channel(()).0,
        })
    }

    /// The record as last read.
    #[must_use]
    pub fn last(&self) -> Option<FleetHalt> {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Adds a market: halted at once if the fleet is (as last read), and followed from
    /// now on; a halt of its own is the fleet's. It leaves when its control is dropped.
    pub async fn join(&self, name: &str, control: &Arc<TradingControl>) {
        let halted = self.last().filter(|r| r.halted);
        if let Some(record) = &halted {
            let _ = control.halt(HaltCause::Fleet, describe(record)).await;
        }
        self.members
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Member {
                name: name.to_owned(),
                control: Arc::downgrade(control),
                fleet_halt: halted.map(|r| r.generation),
                origin: None,
            });
        // Its own changes of state wake the follower, so its halt reaches the fleet now.
        let mut changes = control.subscribe();
        let wake = self.wake.clone();
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                wake.send_replace(());
            }
        });
        self.wake.send_replace(());
    }

    /// Follows the record until `shutdown`: re-read on every announcement, every change
    /// of a market's state, and every [`FleetSettings::poll`] of the services' clock.
    pub async fn run(self: Arc<Self>, shutdown: watch::Receiver<bool>) {
        self.follow_until(shutdown, None).await;
    }

    /// As [`Fleet::run`], re-read on every `pulse` instead of every poll of the services'
    /// clock, and the unreachable bound measured in real time: for markets on simulated
    /// time (paper), whose clock races ahead of the database's.
    pub async fn run_on_pulse(
        self: Arc<Self>,
        shutdown: watch::Receiver<bool>,
        pulse: watch::Receiver<u64>,
    ) {
        self.follow_until(shutdown, Some(pulse)).await;
    }

    async fn follow_until(
        self: Arc<Self>,
        mut shutdown: watch::Receiver<bool>,
        mut pulse: Option<watch::Receiver<u64>>,
    ) {
        let mut announced = self.store.announcements();
        let mut woken = self.wake.subscribe();
        let real = pulse.is_some();
        let mut reached = Reached::now(real);
        let mut unreachable = false;
        loop {
            match self.store.read().await {
                Ok(record) => {
                    reached = Reached::now(real);
                    if unreachable {
                        unreachable = false;
                        tracing::info!("the fleet's database answers again");
                    }
                    self.follow(record).await;
                    // On every read, after the record is followed: a market restarted in
                    // this state from its journal leaves it too.
                    for (_, control) in self.controls() {
                        let _ = control
                            .leave_reduce_only(ReduceOnlyCause::FleetUnreachable)
                            .await;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the fleet's halt record could not be read");
                    if reached.elapsed() >= self.settings.unreachable_after {
                        self.hold_unreachable(!unreachable, &e).await;
                        unreachable = true;
                    }
                }
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                () = async {
                    match pulse.as_mut() {
                        Some(rx) => {
                            if rx.changed().await.is_err() {
                                std::future::pending::<()>().await;
                            }
                        }
                        None => tokio::time::sleep(self.settings.poll).await,
                    }
                } => {}
                _ = woken.changed() => {}
                Some(()) = async {
                    match announced.as_mut() {
                        Some(rx) => rx.changed().await.ok(),
                        None => std::future::pending().await,
                    }
                } => {}
            }
            if *shutdown.borrow() {
                return;
            }
        }
    }

    /// Every market still running, with its control.
    fn controls(&self) -> Vec<(usize, Arc<TradingControl>)> {
        let mut members = self.members.lock().unwrap_or_else(PoisonError::into_inner);
        members.retain(|m| m.control.strong_count() > 0);
        members
            .iter()
            .enumerate()
            .filter_map(|(i, m)| m.control.upgrade().map(|c| (i, c)))
            .collect()
    }

    fn member<T>(&self, i: usize, f: impl FnOnce(&mut Member) -> T) -> Option<T> {
        self.members
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(i)
            .map(f)
    }

    /// Brings the markets and the record into step: a resume the fleet proved resumes
    /// the markets it halted; a market's own halt or resume becomes the fleet's; a fleet
    /// halt halts every market.
    async fn follow(&self, mut record: FleetHalt) {
        let seen = self.last().map(|r| r.generation);
        if let Some(seen) = seen
            && record.generation < seen
        {
            // Generations only grow: an older record written back is no resume.
            tracing::error!(
                found = record.generation,
                seen,
                "the fleet's halt record went back to an older generation: ignored"
            );
            return;
        }
        if !record.halted {
            // Every read, not only a new generation's: a market that joins after the
            // resume was read (it started halted from its journal) follows it too.
            let new = seen != Some(record.generation);
            record = self.resume_markets(record, new).await;
        }
        let proved = self.key.as_ref().filter(|key| resume_holds(key, &record));
        for (i, control) in self.controls() {
            let state = control.state();
            let fleet_halt = self.member(i, |m| m.fleet_halt).flatten();
            if !record.halted
                && let (Some(key), TradingState::Halted { reason, .. }) = (proved, &state)
                && reason.cause == HaltCause::Fleet
            {
                // It joined while the resume was being followed: it follows it too.
                if let Err(e) = control.resume(key.bytes()).await {
                    tracing::error!(error = %e, "a market could not follow the fleet's resume");
                }
            } else if !record.halted
                && let TradingState::Halted { reason, .. } = &state
                && fleet_halt.is_none()
            {
                let name = self.member(i, |m| m.name.clone()).unwrap_or_default();
                let detail = format!("market {name}: {reason}");
                match self.store.halt(&detail, &self.settings.instance).await {
                    Ok(after) => {
                        if after.halted {
                            self.member(i, |m| m.origin = Some(after.generation));
                        }
                        record = after;
                    }
                    Err(e) => tracing::error!(error = %e, "the fleet could not be halted"),
                }
            } else if record.halted && fleet_halt == Some(record.generation) && !state.is_halted() {
                // Its operator resumed it with the approval key: the fleet follows.
                record = self.resume_fleet(&record).await.unwrap_or(record);
            }
        }
        if record.halted {
            for (i, control) in self.controls() {
                let _ = control.halt(HaltCause::Fleet, describe(&record)).await;
                self.member(i, |m| m.fleet_halt = Some(record.generation));
            }
        }
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(record);
    }

    /// Resumes the fleet halted at `record`'s generation with this instance's key.
    async fn resume_fleet(&self, record: &FleetHalt) -> Option<FleetHalt> {
        let key = self.key.as_ref()?;
        let proof = resume_proof(key, record.generation + 1);
        match self
            .store
            .resume(record.generation, &proof, &self.settings.instance)
            .await
        {
            Ok(after) => Some(self.resume_markets(after, true).await),
            Err(e) => {
                tracing::error!(error = %e, "the fleet could not be resumed");
                None
            }
        }
    }

    /// Resumes the markets the fleet halted (halted for the fleet, or whose own halt was
    /// the fleet's), if `record` is a resume proved with this instance's key. A resume
    /// this instance cannot verify (`new`: read for the first time) is paged and answered
    /// with a new fleet halt, so the record never says "trading" while markets stay
    /// halted. The record as it stands after.
    async fn resume_markets(&self, record: FleetHalt, new: bool) -> FleetHalt {
        let halted: Vec<_> = self
            .controls()
            .into_iter()
            .filter(|(i, c)| {
                let origin = self.member(*i, |m| m.origin.is_some()) == Some(true);
                match c.state() {
                    TradingState::Halted { reason, .. } => {
                        origin || reason.cause == HaltCause::Fleet
                    }
                    _ => false,
                }
            })
            .collect();
        if halted.is_empty() {
            return record;
        }
        let Some(key) = self.key.as_ref().filter(|key| resume_holds(key, &record)) else {
            // A record never resumed (a fresh process's own record) proves nothing and
            // claims nothing: the markets' halts become the fleet's again.
            if !new || record.generation == 0 {
                return record;
            }
            let why = if self.key.is_some() {
                "without a proof of this instance's approval key"
            } else {
                "but this instance has no approval key (api.approval_key) to check it with"
            };
            let detail = format!(
                "the resume at generation {} by {} came {why}: halted again",
                record.generation, record.by
            );
            if let Some((_, control)) = halted.first() {
                control
                    .alert(Alert {
                        kind: AlertKind::TradingHalted,
                        severity: Severity::Critical,
                        message: detail.clone(),
                        position: None,
                    })
                    .await;
            }
            return match self.store.halt(&detail, &self.settings.instance).await {
                Ok(after) => after,
                Err(e) => {
                    tracing::error!(error = %e, "the fleet could not be halted");
                    record
                }
            };
        };
        for (i, control) in halted {
            match control.resume(key.bytes()).await {
                Ok(()) => {
                    self.member(i, |m| {
                        m.fleet_halt = None;
                        m.origin = None;
                    });
                }
                Err(e) => {
                    tracing::error!(error = %e, "a market could not follow the fleet's resume")
                }
            }
        }
        record
    }

    /// Holds every market in ReduceOnly while the record cannot be read; alerts when it
    /// begins (`first`).
    async fn hold_unreachable(&self, first: bool, error: &PortError) {
        let mut alerted = !first;
        for (_, control) in self.controls() {
            let _ = control
                .enter_reduce_only(ReduceOnlyCause::FleetUnreachable)
                .await;
            if !alerted {
                alerted = true;
                control
                    .alert(Alert {
                        kind: AlertKind::TradingHalted,
                        severity: Severity::Critical,
                        message: format!(
                            "the fleet's database cannot be reached for {:?} ({error}): no entries until it answers; exits continue",
                            self.settings.unreachable_after
                        ),
                        position: None,
                    })
                    .await;
            }
        }
    }
}

/// When the record was last read: on the services' clock, or in real time.
#[derive(Clone, Copy)]
enum Reached {
    Clock(Instant),
    Real(std::time::Instant),
}

impl Reached {
    fn now(real: bool) -> Self {
        if real {
            Reached::Real(std::time::Instant::now())
        } else {
            Reached::Clock(Instant::now())
        }
    }

    fn elapsed(self) -> Duration {
        match self {
            Reached::Clock(at) => at.elapsed(),
            Reached::Real(at) => at.elapsed(),
        }
    }
}

/// A market's halt reason for a fleet halt.
fn describe(record: &FleetHalt) -> String {
    format!(
        "fleet halt (generation {}, by {}): {}",
        record.generation, record.by, record.detail
    )
}
