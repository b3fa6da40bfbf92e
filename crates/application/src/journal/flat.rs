//! The flat form durable journals store an exit-state transition in: a state or event
//! name plus its payload (attempt, signature, last valid height, exit kind, error class,
//! failure) in plain columns, the same for every storage so that each reads back what any
//! wrote. The names of states and events are the domain's own.

use kyzlo_domain::exit_state::{ExitEvent, ExitFailure, ExitState};
use kyzlo_domain::{ErrorClass, ExitKind, TxSignature};

/// The payload columns of a state or an event; unused ones are NULL.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Payload {
    /// The attempt number.
    pub attempt: Option<u32>,
    /// The transaction's signature.
    pub signature: Option<TxSignature>,
    /// The last valid block height (events only).
    pub last_valid_height: Option<u64>,
    /// The exit kind.
    pub exit_kind: Option<ExitKind>,
    /// The error class.
    pub class: Option<ErrorClass>,
    /// Why the exit failed.
    pub failure: Option<ExitFailure>,
}

impl Payload {
    /// An attempt and its signature.
    #[must_use]
    pub fn attempt(attempt: u32, signature: TxSignature) -> Self {
        Self {
            attempt: Some(attempt),
            signature: Some(signature),
            ..Self::default()
        }
    }

    /// A failure, with its class when it is a permanent one.
    #[must_use]
    pub fn failure(reason: ExitFailure) -> Self {
        Self {
            failure: Some(reason),
            class: match reason {
                ExitFailure::Permanent(class) => Some(class),
                _ => None,
            },
            ..Self::default()
        }
    }
}

/// The payload a state carries.
#[must_use]
pub fn state_payload(state: ExitState) -> Payload {
    match state {
        ExitState::PositionOpen => Payload::default(),
        ExitState::ExitSignalReceived { kind } => Payload {
            exit_kind: Some(kind),
            ..Payload::default()
        },
        ExitState::Submitted { attempt, signature }
        | ExitState::TimedOut { attempt, signature }
        | ExitState::Expired { attempt, signature }
        | ExitState::PositionClosed { attempt, signature } => Payload::attempt(attempt, signature),
        ExitState::LandedFailed {
            attempt,
            signature,
            class,
        } => Payload {
            class: Some(class),
            ..Payload::attempt(attempt, signature)
        },
        ExitState::EmergencyEscalation { next_attempt } => Payload {
            attempt: Some(next_attempt),
            ..Payload::default()
        },
        ExitState::ExitFailed { reason } => Payload::failure(reason),
    }
}

/// The payload an event carries.
#[must_use]
pub fn event_payload(event: ExitEvent) -> Payload {
    let signature = |signature| Payload {
        signature: Some(signature),
        ..Payload::default()
    };
    match event {
        ExitEvent::Signal { kind } => Payload {
            exit_kind: Some(kind),
            ..Payload::default()
        },
        ExitEvent::Submit {
            attempt,
            signature,
            last_valid_height,
        } => Payload {
            last_valid_height: Some(last_valid_height),
            ..Payload::attempt(attempt, signature)
        },
        ExitEvent::SubmitBeside { attempt, signature } => Payload::attempt(attempt, signature),
        ExitEvent::ConfirmTimedOut | ExitEvent::Escalate => Payload::default(),
        ExitEvent::ProvenExpired { signature: s } | ExitEvent::Landed { signature: s } => {
            signature(s)
        }
        ExitEvent::LandedFailed {
            signature: s,
            class,
        } => Payload {
            class: Some(class),
            ..signature(s)
        },
        ExitEvent::Fail { reason } => Payload::failure(reason),
    }
}

/// The column names of one payload group. States carry no block height: their
/// `last_valid_height` is empty and never read.
pub struct Group {
    /// The column of the name.
    pub name: &'static str,
    /// The column of the attempt.
    pub attempt: &'static str,
    /// The column of the signature.
    pub signature: &'static str,
    /// The column of the last valid height.
    pub last_valid_height: &'static str,
    /// The column of the exit kind.
    pub exit_kind: &'static str,
    /// The column of the class.
    pub class: &'static str,
    /// The column of the failure.
    pub failure: &'static str,
}

/// The columns of the state a transition leaves.
pub const FROM: Group = Group {
    name: "from_state",
    attempt: "from_attempt",
    signature: "from_signature",
    last_valid_height: "",
    exit_kind: "from_exit_kind",
    class: "from_class",
    failure: "from_failure",
};

/// The columns of the event.
pub const EVENT: Group = Group {
    name: "event",
    attempt: "event_attempt",
    signature: "event_signature",
    last_valid_height: "event_last_valid_block_height",
    exit_kind: "event_exit_kind",
    class: "event_class",
    failure: "event_failure",
};

/// The columns of the state a transition enters.
pub const TO: Group = Group {
    name: "to_state",
    attempt: "to_attempt",
    signature: "to_signature",
    last_valid_height: "",
    exit_kind: "to_exit_kind",
    class: "to_class",
    failure: "to_failure",
};

/// A stored payload group, read part by part: each journal checks a part against its own
/// column when (and only when) the name needs it.
pub trait PayloadSource {
    /// The journal's error.
    type Error;

    /// The state's or event's name.
    ///
    /// # Errors
    /// The column is missing or not text.
    fn name(&self) -> Result<&str, Self::Error>;
    /// The attempt number.
    ///
    /// # Errors
    /// The column is missing or out of range.
    fn attempt(&self) -> Result<u32, Self::Error>;
    /// The signature.
    ///
    /// # Errors
    /// The column is missing or not a signature.
    fn signature(&self) -> Result<TxSignature, Self::Error>;
    /// The last valid block height.
    ///
    /// # Errors
    /// The column is missing or out of range.
    fn last_valid_height(&self) -> Result<u64, Self::Error>;
    /// The exit kind.
    ///
    /// # Errors
    /// The column is missing or not a kind.
    fn exit_kind(&self) -> Result<ExitKind, Self::Error>;
    /// The error class.
    ///
    /// # Errors
    /// The column is missing or not a class.
    fn class(&self) -> Result<ErrorClass, Self::Error>;
    /// The failure.
    ///
    /// # Errors
    /// The column is missing or not a failure.
    fn failure(&self) -> Result<ExitFailure, Self::Error>;
    /// The error for a name no state or event has.
    fn unknown_name(&self, name: &str) -> Self::Error;
}

/// The state a stored group holds.
///
/// # Errors
/// What `source` refuses: a part the name needs is missing or malformed, or the name is
/// unknown.
pub fn state_from<S: PayloadSource>(source: &S) -> Result<ExitState, S::Error> {
    let name = source.name()?;
    Ok(match name {
        "position_open" => ExitState::PositionOpen,
        "exit_signal_received" => ExitState::ExitSignalReceived {
            kind: source.exit_kind()?,
        },
        "submitted" => ExitState::Submitted {
            attempt: source.attempt()?,
            signature: source.signature()?,
        },
        "timed_out" => ExitState::TimedOut {
            attempt: source.attempt()?,
            signature: source.signature()?,
        },
        "expired" => ExitState::Expired {
            attempt: source.attempt()?,
            signature: source.signature()?,
        },
        "landed_failed" => ExitState::LandedFailed {
            attempt: source.attempt()?,
            signature: source.signature()?,
            class: source.class()?,
        },
        "emergency_escalation" => ExitState::EmergencyEscalation {
            next_attempt: source.attempt()?,
        },
        "position_closed" => ExitState::PositionClosed {
            attempt: source.attempt()?,
            signature: source.signature()?,
        },
        "exit_failed" => ExitState::ExitFailed {
            reason: source.failure()?,
        },
        _ => return Err(source.unknown_name(name)),
    })
}

/// The event a stored group holds.
///
/// # Errors
/// As [`state_from`].
pub fn event_from<S: PayloadSource>(source: &S) -> Result<ExitEvent, S::Error> {
    let name = source.name()?;
    Ok(match name {
        "signal" => ExitEvent::Signal {
            kind: source.exit_kind()?,
        },
        "submit" => ExitEvent::Submit {
            attempt: source.attempt()?,
            signature: source.signature()?,
            last_valid_height: source.last_valid_height()?,
        },
        "submit_beside" => ExitEvent::SubmitBeside {
            attempt: source.attempt()?,
            signature: source.signature()?,
        },
        "confirm_timed_out" => ExitEvent::ConfirmTimedOut,
        "proven_expired" => ExitEvent::ProvenExpired {
            signature: source.signature()?,
        },
        "landed_failed" => ExitEvent::LandedFailed {
            signature: source.signature()?,
            class: source.class()?,
        },
        "landed" => ExitEvent::Landed {
            signature: source.signature()?,
        },
        "escalate" => ExitEvent::Escalate,
        "fail" => ExitEvent::Fail {
            reason: source.failure()?,
        },
        _ => return Err(source.unknown_name(name)),
    })
}
