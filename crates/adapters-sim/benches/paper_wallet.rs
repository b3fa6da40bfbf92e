//! What one landing costs the paper wallet file once its ledger is full
//! ([`LEDGER_LIMIT`] entries, what a long replay reaches): appending the landing as one
//! line (what `record_landing` does), against rewriting the whole file (what every landing
//! and every blockhash handed out cost before the file became append-only, and what the
//! file still does once per [`LEDGER_LIMIT`] appends). Both fsync, on the machine's disk.
//!
//! Run: `cargo bench -p kyzlo-adapters-sim --bench paper_wallet`.

use criterion::{Criterion, criterion_group, criterion_main};
use kyzlo_adapters_sim::wallet::{LEDGER_LIMIT, LedgerEntry, LedgerStatus, PaperWallet, SimWallet};
use kyzlo_application::ports::{Fill, Side};
use kyzlo_domain::{Lamports, TokenAmount, TxSignature};

fn entry(n: u64) -> LedgerEntry {
    let mut signature = [0u8; 64];
    signature[..8].copy_from_slice(&n.to_le_bytes());
    LedgerEntry {
        signature: TxSignature(signature),
        status: LedgerStatus::Ok,
        slot: n,
        side: if n.is_multiple_of(2) {
            Side::Buy
        } else {
            Side::Sell
        },
        fill: Fill {
            amount_in: TokenAmount::new(100_000_000 + n),
            amount_out: TokenAmount::new(600_000_000 + n),
            fee: Lamports::new(25_000),
        },
    }
}

fn wallet() -> SimWallet {
    SimWallet {
        base: TokenAmount::new(1_000_000_000),
        quote: TokenAmount::new(1_000_000_000),
        fee_lamports: Lamports::new(1_000_000_000),
    }
}

fn full_ledger(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut paper =
        PaperWallet::open(&dir.path().join("paper-wallet.json"), wallet()).expect("a new wallet");
    let mut n = 0u64;
    for _ in 0..LEDGER_LIMIT {
        n += 1;
        paper.record_landing(wallet(), entry(n)).expect("a landing");
    }
    paper.save().expect("a rewrite");
    let mut group = c.benchmark_group("paper_wallet_full_ledger");
    group.sample_size(20);
    group.bench_function("append_one_landing", |b| {
        b.iter(|| {
            n += 1;
            paper.record_landing(wallet(), entry(n)).expect("a landing");
        });
    });
    group.bench_function("rewrite_whole_file", |b| {
        b.iter(|| paper.save().expect("a rewrite"));
    });
    group.finish();
}

criterion_group!(benches, full_ledger);
criterion_main!(benches);
