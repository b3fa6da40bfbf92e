//! The checker's evidence read straight from the database's tables: every intent and
//! every attempt of one wallet's market, decoded strictly (a value this build cannot read
//! back fails the test, naming its column), so the checker judges exactly what was
//! stored. (The journal port reads back only what start-up and the operator need: open
//! positions, unresolved intents, exits.)

use kyzlo_application::journal::{
    AttemptOutcome, AttemptRecord, IntentAction, IntentOutcome, IntentRecord,
};
use kyzlo_application::ports::{Blockhash, Fill, Side};
use kyzlo_domain::{
    ErrorClass, ExitKind, IntentId, Lamports, PositionId, Slippage, Timestamp, TokenAmount,
    TxSignature,
};
use tokio_postgres::{Client, Row};

fn u64_of(row: &Row, column: &str) -> u64 {
    let value: i64 = row.get(column);
    u64::try_from(value).unwrap_or_else(|_| panic!("{column}: negative {value}"))
}

fn base58<const N: usize>(row: &Row, column: &str) -> [u8; N] {
    let text: String = row.get(column);
    bs58::decode(&text)
        .into_vec()
        .ok()
        .and_then(|bytes| <[u8; N]>::try_from(bytes).ok())
        .unwrap_or_else(|| panic!("{column}: {text:?} is not {N} bytes of base58"))
}

fn named<T: Copy>(all: &[T], name: impl Fn(T) -> &'static str, column: &str, text: &str) -> T {
    all.iter()
        .copied()
        .find(|v| name(*v) == text)
        .unwrap_or_else(|| panic!("{column}: unknown name {text:?}"))
}

fn intent(row: &Row) -> (IntentRecord, Option<IntentOutcome>) {
    let exit_kind: Option<String> = row.get("exit_kind");
    let action = match (row.get::<_, &str>("action"), exit_kind.as_deref()) {
        ("enter", None) => IntentAction::Enter,
        ("exit", Some(kind)) => {
            IntentAction::Exit(named(&ExitKind::ALL, ExitKind::as_str, "exit_kind", kind))
        }
        (action, kind) => panic!("action {action:?} with exit_kind {kind:?}"),
    };
    let record = IntentRecord {
        intent: IntentId(u64_of(row, "id")),
        position: PositionId(u64_of(row, "position_id")),
        action,
        side: named(
            &[Side::Buy, Side::Sell],
            Side::as_str,
            "side",
            row.get("side"),
        ),
        amount_in: TokenAmount::new(u64_of(row, "amount_in")),
        created_at: Timestamp::from_micros(u64_of(row, "created_at_us")),
    };
    let fill = || Fill {
        amount_in: TokenAmount::new(u64_of(row, "fill_amount_in")),
        amount_out: TokenAmount::new(u64_of(row, "fill_amount_out")),
        fee: Lamports::new(u64_of(row, "fill_fee_lamports")),
    };
    let outcome = match row.get::<_, Option<&str>>("outcome") {
        None => None,
        Some("filled") => Some(IntentOutcome::Filled(fill())),
        Some("landed") => Some(IntentOutcome::Landed {
            signature: TxSignature(base58(row, "landed_signature")),
            provisional: fill(),
        }),
        Some("failed") => Some(IntentOutcome::Failed),
        Some(other) => panic!("intents.outcome: {other:?}"),
    };
    (record, outcome)
}

fn attempt(row: &Row) -> (AttemptRecord, Option<AttemptOutcome>) {
    let bps = u64_of(row, "slippage_bps");
    let slippage = u16::try_from(bps)
        .ok()
        .and_then(|bps| Slippage::from_bps(bps).ok())
        .unwrap_or_else(|| panic!("slippage_bps: {bps}"));
    let outcome = match row.get::<_, Option<&str>>("outcome") {
        None => None,
        Some("landed") => Some(AttemptOutcome::Landed),
        Some("failed") => Some(AttemptOutcome::Failed(named(
            &ErrorClass::ALL,
            ErrorClass::as_str,
            "outcome_class",
            row.get("outcome_class"),
        ))),
        Some("expired") => Some(AttemptOutcome::Expired),
        Some(other) => panic!("attempts.outcome: {other:?}"),
    };
    let record = AttemptRecord {
        intent: IntentId(u64_of(row, "intent_id")),
        attempt: u32::try_from(u64_of(row, "attempt")).unwrap_or(u32::MAX),
        signature: TxSignature(base58(row, "signature")),
        blockhash: Blockhash(base58(row, "blockhash")),
        valid_at_slot: u64_of(row, "valid_at_slot"),
        last_valid_block_height: u64_of(row, "last_valid_block_height"),
        slippage,
        priority_fee: Lamports::new(u64_of(row, "priority_fee_lamports")),
        amount_in: TokenAmount::new(u64_of(row, "amount_in")),
        min_out: TokenAmount::new(u64_of(row, "min_out")),
        sent_at: Timestamp::from_micros(u64_of(row, "sent_at_us")),
        nonce: None,
    };
    (record, outcome)
}

/// Every intent of `wallet`'s `market`, with its outcome, in id order.
pub async fn intents(
    client: &Client,
    wallet: &str,
    market: &str,
) -> Vec<(IntentRecord, Option<IntentOutcome>)> {
    let rows = client
        .query(
            "SELECT * FROM intents WHERE wallet = $1 AND market = $2 ORDER BY id",
            &[&wallet, &market],
        )
        .await
        .unwrap_or_else(|e| panic!("read the intents: {e}"));
    rows.iter().map(intent).collect()
}

/// Every attempt of `wallet`'s `market`, with its outcome, in (intent, attempt) order.
pub async fn attempts(
    client: &Client,
    wallet: &str,
    market: &str,
) -> Vec<(AttemptRecord, Option<AttemptOutcome>)> {
    let rows = client
        .query(
            "SELECT * FROM attempts WHERE wallet = $1 AND market = $2
              ORDER BY intent_id, attempt",
            &[&wallet, &market],
        )
        .await
        .unwrap_or_else(|e| panic!("read the attempts: {e}"));
    rows.iter().map(attempt).collect()
}
