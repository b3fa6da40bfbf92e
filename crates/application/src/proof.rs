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

use crate::ports::{Blockhash, Chain, Commitment, StatusLookup, TxStatus};

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
