//! What became of a sent transaction, proven from one consistent view of the chain.
//!
//! RPC nodes lag, a load-balanced URL mixes them, and a status can be processed before it
//! is confirmed (or vanish with an abandoned fork). So a transaction is declared dead only
//! when two answers agree through their context slots:
//!
//! 1. a node at least at the slot where the blockhash was first seen valid
//!    (`valid_at_slot`) says the blockhash can no longer carry a transaction, at its
//!    context slot `E` (the node has seen the blockhash, so "invalid" means expired); and
//! 2. a status look-up from a node whose context slot is at least `E` finds nothing: any
//!    landing happened before the expiry, so a node past `E` would show it. A recent
//!    look-up counts only while the node's status cache still covers every slot since
//!    `valid_at_slot` (the landing cannot be older than the first send, which came after
//!    that slot); past that, only a look-up with history does.
//!
//! A status seen below the required commitment is never death: it may be confirmed, or
//! dropped and then land from another copy. Anything short of the proof (an error, a
//! node behind, no history) leaves the transaction possibly alive.

use kyzlo_domain::{ErrorClass, TxSignature};

use crate::ports::{Blockhash, Chain, Commitment, DurableNonce, StatusLookup, TxStatus};

/// How many slots past `valid_at_slot` a recent status look-up is trusted to cover
/// (nodes keep about 300 slots of statuses; half of that leaves a margin).
pub const RECENT_STATUS_SLOTS: u64 = 150;

/// What identifies a sent transaction for the proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptKey {
    /// Its signature.
    pub signature: TxSignature,
    /// The blockhash its message carries.
    pub blockhash: Blockhash,
    /// A context slot at which a node saw the blockhash valid, read before the first send.
    pub valid_at_slot: u64,
}

/// What is known of a sent transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// It landed and succeeded, at the required commitment.
    Landed,
    /// It landed with an on-chain error, at the required commitment: nothing moved.
    LandedFailed(ErrorClass),
    /// It is seen below the required commitment: it may yet be confirmed, or vanish.
    Pending,
    /// Nothing proves it dead yet: it may still land.
    Unknown,
    /// It can never land.
    Dead,
}

impl Fate {
    /// The fate a status says, if it says one.
    #[must_use]
    pub fn of_status(status: Option<TxStatus>, commitment: Commitment) -> Option<Fate> {
        let status = status?;
        if status.commitment < commitment {
            return Some(Fate::Pending);
        }
        Some(match status.error {
            None => Fate::Landed,
            Some(class) => Fate::LandedFailed(class),
        })
    }
}

/// Reads what became of `key`'s transaction, proving death as the module docs say.
pub async fn prove(chain: &dyn Chain, key: &AttemptKey, commitment: Commitment) -> Fate {
    let recent = chain.statuses(&[key.signature], StatusLookup::Recent).await;
    if let Ok(seen) = &recent
        && let Some(fate) = Fate::of_status(seen.value.first().copied().flatten(), commitment)
    {
        return fate;
    }
    let Ok(valid) = chain
        .blockhash_valid(key.blockhash, key.valid_at_slot)
        .await
    else {
        return Fate::Unknown;
    };
    if valid.value || valid.context_slot < key.valid_at_slot {
        return Fate::Unknown;
    }
    let expired_at = valid.context_slot;
    if let Ok(seen) = &recent
        && seen.value.len() == 1
        && seen.context_slot >= expired_at
        && seen.context_slot <= key.valid_at_slot.saturating_add(RECENT_STATUS_SLOTS)
    {
        return Fate::Dead;
    }
    let Ok(history) = chain
        .statuses(&[key.signature], StatusLookup::WithHistory)
        .await
    else {
        return Fate::Unknown;
    };
    if history.value.len() != 1 {
        return Fate::Unknown;
    }
    if let Some(fate) = Fate::of_status(history.value[0], commitment) {
        return fate;
    }
    if history.context_slot >= expired_at {
        Fate::Dead
    } else {
        Fate::Unknown
    }
}

/// What became of a round: the attempts (and the cancel) built on one durable nonce
/// value, of which the chain lets at most one land.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoundFate {
    /// The transaction at this index landed and succeeded (at the commitment).
    Landed(usize),
    /// The transaction at this index landed with an on-chain error: it used the value
    /// up all the same, so no other can land.
    LandedFailed(usize, ErrorClass),
    /// None can land: the nonce holds another value and none of them is what moved it.
    Dead,
    /// Nothing settles it yet: the value has not moved (one of them may still land), or
    /// the chain could not be read consistently.
    Unknown,
}

/// Reads what became of the transactions `signatures`, all built on `nonce`:
///
/// 1. a status at the commitment settles it (a landing on a nonce, even a failed one,
///    moves the value on, so the others can never land);
/// 2. otherwise, the nonce read at the commitment, at context slot `C`, from a node at
///    least at `read_at_slot` (where the value they carry was read: a node behind it may
///    still show an older value, which proves nothing): the same value means any of them
///    may still land (never death, however long it takes);
/// 3. another value means none can land any more (values never repeat), and whichever
///    moved it landed at or before `C`: a look-up with history from a node at least at
///    `C` finds it, or finds none of them (then something else moved it: they are dead).
///    One of them seen below the commitment there is waited for.
pub async fn prove_round(
    chain: &dyn Chain,
    nonce: DurableNonce,
    read_at_slot: u64,
    signatures: &[TxSignature],
    commitment: Commitment,
) -> RoundFate {
    let settled = |statuses: &[Option<TxStatus>]| {
        statuses.iter().enumerate().find_map(|(i, status)| {
            match Fate::of_status(*status, commitment) {
                Some(Fate::Landed) => Some(RoundFate::Landed(i)),
                Some(Fate::LandedFailed(class)) => Some(RoundFate::LandedFailed(i, class)),
                _ => None,
            }
        })
    };
    if signatures.is_empty() {
        return RoundFate::Unknown;
    }
    if let Ok(seen) = chain.statuses(signatures, StatusLookup::Recent).await
        && seen.value.len() == signatures.len()
        && let Some(fate) = settled(&seen.value)
    {
        return fate;
    }
    let Ok(value) = chain.nonce(nonce.account, commitment).await else {
        return RoundFate::Unknown;
    };
    if value.context_slot < read_at_slot
        || value.value == Some(nonce.value)
        || value.value.is_none()
    {
        // Unchanged: any of them may land. An account without a nonce proves nothing.
        return RoundFate::Unknown;
    }
    let moved_by = value.context_slot;
    let Ok(history) = chain.statuses(signatures, StatusLookup::WithHistory).await else {
        return RoundFate::Unknown;
    };
    if history.value.len() != signatures.len() {
        return RoundFate::Unknown;
    }
    if let Some(fate) = settled(&history.value) {
        return fate;
    }
    let pending = history.value.iter().any(Option::is_some);
    if !pending && history.context_slot >= moved_by {
        RoundFate::Dead
    } else {
        RoundFate::Unknown
    }
}
