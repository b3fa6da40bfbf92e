//! The invariant checker: what must hold after any run of the bot against any venue,
//! judged from the run's evidence (the venue's trace of sends and landings, the
//! journal, the alerts, and what each start of the bot found). Any test can build an
//! [`Evidence`] and call [`check`].
//!
//! 1. **At most one landed transaction per intent**: no intent's signatures land
//!    successfully twice.
//! 2. **Nothing sent that was not journaled first**: every send of a signature comes
//!    after the journal write of its attempt.
//! 3. **Journal equals chain**: after the final reconciliation, every position's
//!    remaining size in the journal equals what its landed entries bought less what its
//!    landed exits sold (no lost and no phantom position).
//! 4. **A halt survives every restart**: a start after a journaled halt, or after an
//!    alerted halt that no operator lifted, starts halted.
//! 5. **Every exit ends in time or is alerted**: an exit intent is settled within the
//!    deadline plus one attempt's life, or a deadline alert for its position was sent
//!    (exits a crash interrupted are settled by reconciliation and exempt); an exit that
//!    failed while the bot was running was alerted.
//! 6. **Never more sold than held**: no position's landed exits sold more than its
//!    landed entries bought.
//! 7. **Every halt is alerted once**: as many halt alerts as halts in each life (one
//!    fewer allowed only in a life a crash ended).
//! 8. **Reconciliation finishes**: the final start of the bot settles every intent.
//! 9. **A cancel cancels** (nonce mode): an intent whose cancel landed has no swap that
//!    landed, and an intent settled as failed leaves none of its attempts able to land:
//!    at the end the nonce holds the value of none that a node accepted. A cancel's landing is
//!    no swap: rules 1, 3 and 6 count swaps only.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use kyzlo_adapters_sim::trace::TraceEvent;
use kyzlo_application::journal::{
    AttemptOutcome, AttemptRecord, IntentAction, IntentOutcome, IntentRecord, PositionRecord,
};
use kyzlo_application::ports::{Alert, AlertKind, Blockhash};
use kyzlo_domain::trading_state::TradingState;
use kyzlo_domain::{IntentId, PositionId, Timestamp, TxSignature};

/// One start of the bot.
#[derive(Debug, Clone, PartialEq)]
pub struct Start {
    /// When it started.
    pub at: Timestamp,
    /// The trading state the journal held before it.
    pub journaled: Option<TradingState>,
    /// Whether an alerted halt was in force that no operator had lifted.
    pub halt_alerted_not_lifted: bool,
    /// The state the bot started in.
    pub started: TradingState,
}

/// One life of the bot: from a start to a crash or a shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Life {
    /// When it started.
    pub from: Timestamp,
    /// When it ended.
    pub to: Timestamp,
    /// Whether a crash ended it.
    pub crashed: bool,
    /// Halts that took effect during it.
    pub halts: u64,
}

/// What a run left behind (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    /// The venue's trace (sends, landings) with the journal's attempt writes.
    pub trace: Vec<TraceEvent>,
    /// Every intent journaled, with its outcome.
    pub intents: Vec<(IntentRecord, Option<IntentOutcome>)>,
    /// Every attempt journaled, with its outcome.
    pub attempts: Vec<(AttemptRecord, Option<AttemptOutcome>)>,
    /// When each intent was settled in the journal.
    pub settled_at: BTreeMap<IntentId, Timestamp>,
    /// When the run's trace began (run time zero), to place landings on the bot's clock.
    pub started: Timestamp,
    /// Open positions after the final reconciliation.
    pub open_positions: Vec<PositionRecord>,
    /// Every alert, with when it was sent.
    pub alerts: Vec<(Timestamp, Alert)>,
    /// Every start of the bot.
    pub starts: Vec<Start>,
    /// Every life of the bot.
    pub lives: Vec<Life>,
    /// How long an exit may take: the deadline plus one attempt's life.
    pub exit_bound: Duration,
    /// Whether the final reconciliation settled everything.
    pub reconciled: bool,
    /// The wallet's durable nonce's value at the end, when it has one.
    pub nonce_value: Option<Blockhash>,
}

/// A broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// 1: more than one landed transaction for one intent.
    DoubleExecution {
        /// The intent.
        intent: IntentId,
        /// How many of its transactions landed.
        landed: usize,
    },
    /// 2: a send of a signature no journaled attempt had.
    SentUnjournaled {
        /// The transaction.
        signature: TxSignature,
    },
    /// 3: the journal's position differs from what the chain moved.
    PositionMismatch {
        /// The position.
        position: PositionId,
        /// Remaining size in the journal.
        journal: u64,
        /// Bought less sold on chain.
        chain: i128,
    },
    /// 4: a start after a halt did not start halted.
    HaltLost {
        /// When the bot started.
        at: Timestamp,
        /// What it started in.
        started: String,
    },
    /// 5: an exit neither ended in time nor was alerted.
    ExitLate {
        /// The intent.
        intent: IntentId,
        /// How long it took (`None`: never settled).
        took: Option<Duration>,
    },
    /// 5: an exit failed without an alert.
    ExitFailedSilently {
        /// The intent.
        intent: IntentId,
    },
    /// 6: a position sold more than it bought.
    Oversold {
        /// The position.
        position: PositionId,
        /// Bought less sold.
        net: i128,
    },
    /// 7: halts and halt alerts disagree in a life.
    HaltAlerts {
        /// When the life started.
        life_from: Timestamp,
        /// Halts in it.
        halts: u64,
        /// Halt alerts in it.
        alerts: u64,
    },
    /// 8: the final reconciliation did not finish.
    ReconciliationStuck,
    /// 9: a swap of an intent landed and so did its cancel.
    LandedDespiteCancel {
        /// The intent.
        intent: IntentId,
    },
    /// 9: an intent settled as failed has an attempt that can still land.
    FailedButLive {
        /// The intent.
        intent: IntentId,
        /// The attempt.
        attempt: u32,
    },
}

impl Violation {
    /// How bad it is: lower is worse (a double execution first). The explorer shrinks a
    /// failing run toward its worst violation.
    #[must_use]
    pub fn severity(&self) -> u8 {
        match self {
            Violation::DoubleExecution { .. }
            | Violation::LandedDespiteCancel { .. }
            | Violation::FailedButLive { .. } => 0,
            Violation::SentUnjournaled { .. } => 1,
            Violation::Oversold { .. } => 2,
            Violation::HaltLost { .. } => 3,
            Violation::PositionMismatch { .. } => 4,
            Violation::ExitLate { .. } | Violation::ExitFailedSilently { .. } => 5,
            Violation::HaltAlerts { .. } => 6,
            Violation::ReconciliationStuck => 7,
        }
    }

    /// The invariant's short name.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Violation::DoubleExecution { .. } => "double-execution",
            Violation::SentUnjournaled { .. } => "sent-unjournaled",
            Violation::PositionMismatch { .. } => "position-mismatch",
            Violation::HaltLost { .. } => "halt-lost",
            Violation::ExitLate { .. } => "exit-late",
            Violation::ExitFailedSilently { .. } => "exit-failed-silently",
            Violation::Oversold { .. } => "oversold",
            Violation::HaltAlerts { .. } => "halt-alerts",
            Violation::ReconciliationStuck => "reconciliation-stuck",
            Violation::LandedDespiteCancel { .. } => "landed-despite-cancel",
            Violation::FailedButLive { .. } => "failed-but-live",
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::DoubleExecution { intent, landed } => {
                write!(f, "{intent}: {landed} transactions landed")
            }
            Violation::SentUnjournaled { signature } => {
                write!(f, "{signature} sent before its attempt was journaled")
            }
            Violation::PositionMismatch {
                position,
                journal,
                chain,
            } => write!(
                f,
                "{position}: journal holds {journal}, the chain moved {chain}"
            ),
            Violation::HaltLost { at, started } => {
                write!(f, "started at {at:?} in {started} after a halt")
            }
            Violation::ExitLate { intent, took } => match took {
                Some(t) => write!(f, "{intent} took {t:?} with no deadline alert"),
                None => write!(f, "{intent} never settled and no deadline alert"),
            },
            Violation::ExitFailedSilently { intent } => {
                write!(f, "{intent} failed without an alert")
            }
            Violation::Oversold { position, net } => {
                write!(f, "{position}: sold {} more than it bought", -net)
            }
            Violation::HaltAlerts {
                life_from,
                halts,
                alerts,
            } => write!(
                f,
                "life from {life_from:?}: {halts} halts, {alerts} halt alerts"
            ),
            Violation::ReconciliationStuck => {
                f.write_str("the final reconciliation did not settle every intent")
            }
            Violation::LandedDespiteCancel { intent } => {
                write!(f, "{intent}: a swap landed and so did its cancel")
            }
            Violation::FailedButLive { intent, attempt } => write!(
                f,
                "{intent} settled failed, but its attempt {attempt} carries the nonce's value: it can still land"
            ),
        }
    }
}

fn crashed_within(lives: &[Life], from: Timestamp, to: Timestamp) -> bool {
    lives
        .iter()
        .any(|l| l.crashed && l.to >= from && l.to <= to)
}

/// Checks every invariant of the module docs against `e`.
#[must_use]
pub fn check(e: &Evidence) -> Vec<Violation> {
    let mut out = Vec::new();
    let intents: HashMap<IntentId, &IntentRecord> =
        e.intents.iter().map(|(i, _)| (i.intent, i)).collect();
    let owner: HashMap<TxSignature, IntentId> = e
        .attempts
        .iter()
        .map(|(a, _)| (a.signature, a.intent))
        .collect();

    let cancels: std::collections::HashSet<TxSignature> = e
        .attempts
        .iter()
        .filter(|(a, _)| a.nonce.is_some_and(|n| n.cancel))
        .map(|(a, _)| a.signature)
        .collect();
    let mut cancelled: std::collections::BTreeSet<IntentId> = std::collections::BTreeSet::new();

    // 1 and 3, 6: what landed, per intent and per position.
    let mut landed_per_intent: BTreeMap<IntentId, usize> = BTreeMap::new();
    let mut landed_at: BTreeMap<IntentId, Timestamp> = BTreeMap::new();
    let mut net: BTreeMap<PositionId, i128> = BTreeMap::new();
    for event in &e.trace {
        if let TraceEvent::Landed {
            signature,
            at,
            amount_in,
            amount_out,
            error: None,
            ..
        } = event
            && let Some(intent) = owner.get(signature)
            && let Some(record) = intents.get(intent)
        {
            if cancels.contains(signature) {
                cancelled.insert(*intent);
                continue;
            }
            *landed_per_intent.entry(*intent).or_default() += 1;
            landed_at
                .entry(*intent)
                .or_insert(e.started.saturating_add(*at));
            let change = match record.action {
                IntentAction::Enter => i128::from(amount_out.get()),
                IntentAction::Exit(_) => -i128::from(amount_in.get()),
            };
            *net.entry(record.position).or_default() += change;
        }
    }
    for (intent, landed) in &landed_per_intent {
        if *landed > 1 {
            out.push(Violation::DoubleExecution {
                intent: *intent,
                landed: *landed,
            });
        }
        if cancelled.contains(intent) {
            out.push(Violation::LandedDespiteCancel { intent: *intent });
        }
    }
    // 9: a failed intent leaves nothing that can land: no attempt a node accepted still
    // carries the nonce's value (one every node refused is held by nobody).
    if let Some(value) = e.nonce_value {
        let accepted: std::collections::HashSet<TxSignature> = e
            .trace
            .iter()
            .filter_map(|event| match event {
                TraceEvent::Sent {
                    signature,
                    accepted: true,
                    ..
                } => Some(*signature),
                _ => None,
            })
            .collect();
        for (a, _) in e
            .attempts
            .iter()
            .filter(|(a, _)| accepted.contains(&a.signature))
        {
            let failed = e
                .intents
                .iter()
                .any(|(i, o)| i.intent == a.intent && matches!(o, Some(IntentOutcome::Failed)));
            if failed && a.nonce.is_some_and(|n| n.nonce.value == value && !n.cancel) {
                out.push(Violation::FailedButLive {
                    intent: a.intent,
                    attempt: a.attempt,
                });
            }
        }
    }

    // 2: journaled before sent.
    let mut journaled = std::collections::HashSet::new();
    for event in &e.trace {
        match event {
            TraceEvent::Journaled { signature } => {
                journaled.insert(*signature);
            }
            TraceEvent::Sent { signature, .. } if !journaled.contains(signature) => {
                out.push(Violation::SentUnjournaled {
                    signature: *signature,
                });
                journaled.insert(*signature);
            }
            _ => {}
        }
    }

    // 3 and 6: journal against chain, after the final reconciliation.
    if e.reconciled {
        let journal: BTreeMap<PositionId, u64> = e
            .open_positions
            .iter()
            .map(|p| (p.position, p.remaining.get()))
            .collect();
        let mut positions: Vec<PositionId> = net.keys().chain(journal.keys()).copied().collect();
        positions.sort();
        positions.dedup();
        for position in positions {
            let chain = net.get(&position).copied().unwrap_or(0);
            let held = journal.get(&position).copied().unwrap_or(0);
            if chain < 0 {
                out.push(Violation::Oversold {
                    position,
                    net: chain,
                });
            }
            if i128::from(held) != chain.max(0) {
                out.push(Violation::PositionMismatch {
                    position,
                    journal: held,
                    chain,
                });
            }
        }
    } else {
        out.push(Violation::ReconciliationStuck);
    }

    // 4: halts survive restarts.
    for start in &e.starts {
        let must_halt = start
            .journaled
            .as_ref()
            .is_some_and(TradingState::is_halted)
            || start.halt_alerted_not_lifted;
        if must_halt && !start.started.is_halted() {
            out.push(Violation::HaltLost {
                at: start.at,
                started: start.started.as_str().to_owned(),
            });
        }
    }

    // 5: exits end in time or are alerted.
    let alerted = |kind: AlertKind, position: PositionId, after: Timestamp| {
        e.alerts
            .iter()
            .any(|(at, a)| a.kind == kind && a.position == Some(position) && *at >= after)
    };
    for (intent, outcome) in &e.intents {
        if !matches!(intent.action, IntentAction::Exit(_)) {
            continue;
        }
        let created = intent.created_at;
        let bound = created.saturating_add(e.exit_bound);
        // Closed when its transaction landed, even if the journal heard of it later.
        let settled = match (
            e.settled_at.get(&intent.intent),
            landed_at.get(&intent.intent),
        ) {
            (Some(s), Some(l)) => Some((*s).min(*l)),
            (s, l) => s.or(l).copied(),
        };
        let interrupted = crashed_within(&e.lives, created, settled.unwrap_or(bound).min(bound));
        if interrupted {
            continue;
        }
        let deadline_alert = alerted(AlertKind::ExitDeadlineExceeded, intent.position, created);
        // A failure alerted in time ended the exit, even if the journal heard of it later.
        let failed_in_time = e.alerts.iter().any(|(at, a)| {
            a.kind == AlertKind::ExitFailed
                && a.position == Some(intent.position)
                && *at >= created
                && *at <= bound
        });
        let late = settled.is_none_or(|s| s > bound) && !failed_in_time;
        if late && !deadline_alert {
            out.push(Violation::ExitLate {
                intent: intent.intent,
                took: settled.map(|s| s.saturating_since(created)),
            });
        }
        if matches!(outcome, Some(IntentOutcome::Failed))
            && !deadline_alert
            && !alerted(AlertKind::ExitFailed, intent.position, created)
        {
            out.push(Violation::ExitFailedSilently {
                intent: intent.intent,
            });
        }
    }

    // 7: every halt alerted once.
    for life in &e.lives {
        let alerts = e
            .alerts
            .iter()
            .filter(|(at, a)| {
                a.kind == AlertKind::TradingHalted && *at >= life.from && *at <= life.to
            })
            .count() as u64;
        let ok = alerts == life.halts || (life.crashed && alerts + 1 == life.halts);
        if !ok {
            out.push(Violation::HaltAlerts {
                life_from: life.from,
                halts: life.halts,
                alerts,
            });
        }
    }
    out
}

impl Evidence {
    /// A readable timeline of the run (times in seconds of the bot's clock): its lives,
    /// every intent with its attempts and their landings, and the alerts. What
    /// `kyzlo verify --explain` prints for a replayed seed.
    #[must_use]
    pub fn timeline(&self) -> String {
        use std::fmt::Write as _;
        let secs = |t: Timestamp| t.as_micros() as f64 / 1e6;
        let mut out = String::new();
        for life in &self.lives {
            let _ = writeln!(
                out,
                "life {:.1}..{:.1} s{} halts {}",
                secs(life.from),
                secs(life.to),
                if life.crashed { " (crashed)" } else { "" },
                life.halts
            );
        }
        for start in &self.starts {
            let _ = writeln!(
                out,
                "start at {:.1} s: journal {:?}, started {}",
                secs(start.at),
                start.journaled.as_ref().map(TradingState::as_str),
                start.started
            );
        }
        let landings: HashMap<TxSignature, (Duration, Option<kyzlo_domain::ErrorClass>)> = self
            .trace
            .iter()
            .filter_map(|e| match e {
                TraceEvent::Landed {
                    signature,
                    at,
                    error,
                    ..
                } => Some((*signature, (*at, *error))),
                _ => None,
            })
            .collect();
        for (intent, outcome) in &self.intents {
            let _ = writeln!(
                out,
                "{} {} {:?} {:?} created {:.1} s settled {:?} -> {:?}",
                intent.intent,
                intent.position,
                intent.action,
                intent.side,
                secs(intent.created_at),
                self.settled_at.get(&intent.intent).map(|t| secs(*t)),
                outcome.map(|o| match o {
                    IntentOutcome::Filled(f) =>
                        format!("filled {} -> {}", f.amount_in, f.amount_out),
                    IntentOutcome::Landed { provisional: f, .. } =>
                        format!("landed, fill unread {} -> >={}", f.amount_in, f.amount_out),
                    IntentOutcome::Failed => "failed".to_owned(),
                })
            );
            for (a, o) in self
                .attempts
                .iter()
                .filter(|(a, _)| a.intent == intent.intent)
            {
                let landed = landings.get(&a.signature).map(|(at, err)| {
                    format!(
                        "landed at {:.1} s{}",
                        secs(self.started.saturating_add(*at)),
                        err.map(|e| format!(" failed {e}")).unwrap_or_default()
                    )
                });
                let _ = writeln!(
                    out,
                    "  attempt {} {} sent {:.1} s lvh {} -> {:?} {}",
                    a.attempt,
                    a.signature,
                    secs(a.sent_at),
                    a.last_valid_block_height,
                    o,
                    landed.unwrap_or_default()
                );
            }
        }
        for (at, alert) in &self.alerts {
            let _ = writeln!(
                out,
                "alert {:.1} s {}: {}",
                secs(*at),
                alert.kind.as_str(),
                alert.message
            );
        }
        for p in &self.open_positions {
            let _ = writeln!(
                out,
                "open after reconciliation: {} remaining {}",
                p.position, p.remaining
            );
        }
        out
    }
}
