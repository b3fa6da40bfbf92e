//! The simulated venue on paused tokio time: fates, landings, fills, expiry, blackouts,
//! determinism and the paper wallet.

use std::sync::Arc;
use std::time::Duration;

use kyzlo_application::clock::Clock;
use kyzlo_application::ports::{
    Chain, HealthProbe, Pair, QuoteRequest, Side, SignedTransaction, Signer, StatusLookup,
    SwapRequest, SwapRouter, UnsignedTransaction,
};
use kyzlo_domain::{ErrorClass, Lamports, Price, Slippage, Timestamp, TokenAmount};
use tokio::time::timeout;

use super::*;
use crate::faults::{FaultProfile, FaultSchedule, SendFate};
use crate::market::{CrashSpec, GeneratorConfig, PricePath, Regime, SimMarket, generate};

const SOL: u64 = 1_000_000_000;
const USDC: u64 = 1_000_000;
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

fn wallet(sol: u64) -> SimWallet {
    SimWallet {
        base: TokenAmount::new(sol * SOL),
        quote: TokenAmount::new(1_000 * USDC),
        fee_lamports: Lamports::new(SOL),
    }
}

fn flat(price: f64) -> PricePath {
    PricePath::new(Duration::from_secs(1), vec![Price::new(price).unwrap()]).unwrap()
}

/// A straight 41 % fall over 60 s from 100, then flat: a steep crash with no noise.
fn steep_crash() -> PricePath {
    let config = GeneratorConfig {
        start_price: 100.0,
        step: Duration::from_secs(1),
        duration: Duration::from_secs(120),
        annual_vol: 0.0,
        drift_per_hour: 0.0,
        jump_rate_per_hour: 0.0,
        jump_mean_pct: 0.0,
        jump_std_pct: 0.0,
        crash: Some(CrashSpec {
            at: Duration::ZERO,
            drop_pct: 41.0,
            over: Duration::from_secs(60),
            vol_multiplier: 1.0,
        }),
    };
    config.validate().unwrap();
    generate(&config, 0)
}

fn venue(profile: FaultProfile, seed: u64, path: PricePath, w: SimWallet) -> SimVenue {
    let clock = Clock::new();
    let market = Arc::new(SimMarket::new(Arc::new(path), clock, Timestamp::ZERO));
    let schedule = Arc::new(FaultSchedule::new(profile, seed));
    SimVenue::new(market, schedule, w, clock, Pair::SOL_USDC)
}

/// A fixed-latency profile: every send lands `latency` later.
fn fixed_latency(latency: Duration) -> FaultProfile {
    FaultProfile {
        confirm_latency_median: latency,
        confirm_latency_sigma: 0.0,
        ..FaultProfile::default()
    }
}

async fn order(
    v: &SimVenue,
    side: Side,
    amount: u64,
    slippage_bps: u16,
    fee: u64,
    expiry: Option<u32>,
) -> SignedTransaction {
    let quote = v
        .quote(&QuoteRequest {
            side,
            amount_in: TokenAmount::new(amount),
            slippage: Slippage::from_bps(slippage_bps).unwrap(),
        })
        .await
        .unwrap();
    let unsigned = v
        .build_swap(&SwapRequest {
            quote,
            priority_fee: Lamports::new(fee),
            expiry_slots: expiry,
        })
        .await
        .unwrap();
    v.sign(&unsigned).unwrap()
}

async fn sell(v: &SimVenue, sol: u64) -> SignedTransaction {
    order(v, Side::Sell, sol * SOL, 100, 10_000, None).await
}

async fn advance_to(v: &SimVenue, at: Duration) {
    let now = v.run_time();
    if at > now {
        tokio::time::advance(at - now).await;
    }
}

/// The first bucket start at or after `from` whose fate satisfies `want`.
fn find(v: &SimVenue, from: Duration, fee: u64, want: impl Fn(SendFate) -> bool) -> Duration {
    let mut at = from;
    for _ in 0..100_000 {
        if want(v.schedule().send_fate(at, Lamports::new(fee))) {
            return at;
        }
        at = Duration::from_millis((at.as_millis() as u64 / 100 + 1) * 100);
    }
    panic!("no such fate after {from:?}");
}

async fn status(
    v: &SimVenue,
    tx: &SignedTransaction,
) -> Option<kyzlo_application::ports::TxStatus> {
    v.statuses(&[tx.signature], StatusLookup::Recent)
        .await
        .unwrap()[0]
}

#[tokio::test(start_paused = true)]
async fn a_healthy_send_lands_after_its_latency_and_moves_the_wallet_once() {
    let v = venue(
        fixed_latency(Duration::from_millis(800)),
        1,
        flat(100.0),
        wallet(2),
    );
    let tx = sell(&v, 1).await;
    v.send(&tx).await.unwrap();
    advance_to(&v, Duration::from_millis(700)).await;
    assert_eq!(status(&v, &tx).await, None);
    advance_to(&v, Duration::from_millis(800)).await;
    let st = status(&v, &tx).await.unwrap();
    assert_eq!((st.commitment, st.error), (Commitment::Confirmed, None));
    assert_eq!(st.slot, 2);
    let fill = v.fill(tx.signature, Side::Sell).await.unwrap().unwrap();
    // 1 SOL at 100 USDC, 5 bps worse.
    assert_eq!(fill.amount_out, TokenAmount::new(99_950_000));
    assert_eq!(fill.amount_in, TokenAmount::new(SOL));
    assert_eq!(fill.fee, Lamports::new(15_000));
    let b = v.balances().await.unwrap();
    assert_eq!(b.base, TokenAmount::new(SOL));
    assert_eq!(b.quote, TokenAmount::new(1_000 * USDC + 99_950_000));
    assert_eq!(b.fee_lamports, Lamports::new(SOL - 15_000));
    assert_eq!(v.fees_paid(), Lamports::new(15_000));
    let landings = v.landings();
    assert_eq!(landings.len(), 1);
    assert_eq!(landings[0].at, Duration::from_millis(800));
    assert!(landings[0].ok);
}

#[tokio::test(start_paused = true)]
async fn the_same_bytes_resent_never_land_twice() {
    let v = venue(
        fixed_latency(Duration::from_millis(800)),
        1,
        flat(100.0),
        wallet(3),
    );
    let tx = sell(&v, 1).await;
    for k in 0..10u64 {
        advance_to(&v, Duration::from_millis(300 * k)).await;
        v.send(&tx).await.unwrap();
    }
    advance_to(&v, Duration::from_secs(60)).await;
    v.send(&tx).await.unwrap();
    assert_eq!(v.sends(), 11);
    assert_eq!(v.first_sent_at(tx.signature), Some(Duration::ZERO));
    assert_eq!(v.first_sent_at(kyzlo_domain::TxSignature([9; 64])), None);
    assert_eq!(v.landings().len(), 1);
    assert_eq!(v.wallet().base, TokenAmount::new(2 * SOL));
    assert_eq!(v.fees_paid(), Lamports::new(15_000));
}

#[tokio::test(start_paused = true)]
async fn a_late_landing_after_the_senders_timeout_really_lands() {
    let profile = FaultProfile {
        send_timeout: 1.0,
        timeout_lands: 1.0,
        ..FaultProfile::default()
    };
    let v = venue(profile, 4, flat(100.0), wallet(2));
    let tx = sell(&v, 1).await;
    let SendFate::HangsThenLands { after } = v
        .schedule()
        .send_fate(Duration::ZERO, Lamports::new(10_000))
    else {
        panic!("the profile hangs every send");
    };
    assert!(after > Duration::from_secs(2));
    assert!(
        timeout(CLIENT_TIMEOUT, v.send(&tx)).await.is_err(),
        "the send hangs"
    );
    assert_eq!(v.run_time(), CLIENT_TIMEOUT);
    assert_eq!(status(&v, &tx).await, None);
    advance_to(&v, after).await;
    assert_eq!(status(&v, &tx).await.unwrap().error, None);
    assert_eq!(v.landings()[0].at, after);
    assert_eq!(v.wallet().base, TokenAmount::new(SOL));
}

#[tokio::test(start_paused = true)]
async fn dropped_and_hung_sends_never_land_unless_rebroadcast_and_then_land_once() {
    let profile = FaultProfile {
        drop: 0.3,
        send_timeout: 0.3,
        timeout_lands: 0.0,
        ..FaultProfile::default()
    };
    let v = venue(profile, 9, flat(100.0), wallet(5));
    let at = find(&v, Duration::ZERO, 10_000, |f| f == SendFate::Dropped);
    advance_to(&v, at).await;
    let dropped = sell(&v, 1).await;
    v.send(&dropped).await.unwrap();
    let at = find(&v, v.run_time() + Duration::from_millis(100), 10_000, |f| {
        f == SendFate::HangsNeverLands
    });
    advance_to(&v, at).await;
    let hung = sell(&v, 1).await;
    assert!(timeout(CLIENT_TIMEOUT, v.send(&hung)).await.is_err());
    // Not resent: neither ever lands.
    let quiet = v.run_time() + Duration::from_secs(120);
    advance_to(&v, quiet).await;
    assert!(v.landings().is_empty());
    assert_eq!(status(&v, &dropped).await, None);
    assert_eq!(v.wallet(), wallet(5));

    // A fresh pair, rebroadcast at a moment whose fate lands: each lands exactly once.
    let start = v.run_time() + Duration::from_millis(100);
    let at = find(&v, start, 10_000, |f| f == SendFate::Dropped);
    advance_to(&v, at).await;
    let dropped = sell(&v, 1).await;
    v.send(&dropped).await.unwrap();
    let at = find(&v, v.run_time() + Duration::from_millis(100), 10_000, |f| {
        matches!(f, SendFate::Lands { .. })
    });
    advance_to(&v, at).await;
    for _ in 0..5 {
        let _ = timeout(CLIENT_TIMEOUT, v.send(&dropped)).await;
    }
    advance_to(&v, v.run_time() + Duration::from_secs(5)).await;
    let landed: Vec<_> = v
        .landings()
        .into_iter()
        .filter(|l| l.signature == dropped.signature)
        .collect();
    assert_eq!(landed.len(), 1, "rebroadcasts of the same bytes land once");
}

#[tokio::test(start_paused = true)]
async fn refusals_are_not_forwarded_and_a_later_resend_draws_again() {
    let profile = FaultProfile {
        rate_limited: 0.4,
        node_unhealthy: 0.4,
        retry_after: Duration::from_secs(2),
        ..FaultProfile::default()
    };
    let v = venue(profile, 12, flat(100.0), wallet(2));
    let quote_ok = |v: &SimVenue, at: Duration| v.schedule().call_fails(at).is_none();
    let mut at = Duration::ZERO;
    while !quote_ok(&v, at) || !quote_ok(&v, at) {
        at += Duration::from_millis(100);
    }
    advance_to(&v, at).await;
    let tx = sell(&v, 1).await;
    let limited = find(&v, v.run_time(), 10_000, |f| {
        matches!(f, SendFate::RateLimited { .. })
    });
    advance_to(&v, limited).await;
    let e = v.send(&tx).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::RateLimited);
    assert_eq!(
        (e.retry_after, e.code),
        (Some(Duration::from_secs(2)), Some(429))
    );
    let behind = find(&v, v.run_time(), 10_000, |f| f == SendFate::NodeUnhealthy);
    advance_to(&v, behind).await;
    let e = v.send(&tx).await.unwrap_err();
    assert_eq!(
        (e.class, e.code),
        (ErrorClass::NodeUnhealthy, Some(-32_005))
    );
    let lands = find(&v, v.run_time(), 10_000, |f| {
        matches!(f, SendFate::Lands { .. })
    });
    advance_to(&v, lands).await;
    v.send(&tx).await.unwrap();
    advance_to(&v, lands + Duration::from_secs(30)).await;
    assert_eq!(v.landings().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn in_a_crash_one_percent_slippage_fails_where_five_percent_succeeds() {
    let v = venue(
        fixed_latency(Duration::from_secs(2)),
        1,
        steep_crash(),
        wallet(2),
    );
    let tight = order(&v, Side::Sell, SOL, 100, 10_000, None).await;
    let wide = order(&v, Side::Sell, SOL, 500, 10_000, None).await;
    v.send(&tight).await.unwrap();
    v.send(&wide).await.unwrap();
    advance_to(&v, Duration::from_secs(3)).await;
    let st = status(&v, &tight).await.unwrap();
    assert_eq!(st.error, Some(ErrorClass::SlippageExceeded));
    assert_eq!(status(&v, &wide).await.unwrap().error, None);
    // The failed one paid its fee and moved nothing.
    let failed = v.fill(tight.signature, Side::Sell).await.unwrap().unwrap();
    assert_eq!(
        (failed.amount_in, failed.amount_out),
        (TokenAmount::ZERO, TokenAmount::ZERO)
    );
    assert_eq!(failed.fee, Lamports::new(15_000));
    assert_eq!(v.wallet().base, TokenAmount::new(SOL));
    assert_eq!(v.fees_paid(), Lamports::new(30_000));
    let landings = v.landings();
    assert_eq!(landings.iter().filter(|l| l.ok).count(), 1);
    assert_eq!(
        landings.iter().find(|l| !l.ok).unwrap().error,
        Some(ErrorClass::SlippageExceeded)
    );
}

#[tokio::test(start_paused = true)]
async fn a_second_whole_balance_sale_landing_fails_for_lack_of_funds() {
    let v = venue(
        fixed_latency(Duration::from_millis(500)),
        1,
        flat(100.0),
        wallet(1),
    );
    let first = sell(&v, 1).await;
    let second = sell(&v, 1).await;
    v.send(&first).await.unwrap();
    tokio::time::advance(Duration::from_millis(100)).await;
    v.send(&second).await.unwrap();
    advance_to(&v, Duration::from_secs(2)).await;
    assert_eq!(status(&v, &first).await.unwrap().error, None);
    assert_eq!(
        status(&v, &second).await.unwrap().error,
        Some(ErrorClass::InsufficientFunds)
    );
    let landings = v.landings();
    assert_eq!(landings.len(), 2);
    assert!(landings[0].at < landings[1].at, "settled in landing order");
    assert_eq!(v.wallet().base, TokenAmount::ZERO);
}

#[tokio::test(start_paused = true)]
async fn buys_spend_quote_and_receive_base() {
    let v = venue(
        fixed_latency(Duration::from_millis(500)),
        1,
        flat(100.0),
        wallet(0),
    );
    let tx = order(&v, Side::Buy, 100 * USDC, 50, 0, None).await;
    v.send(&tx).await.unwrap();
    advance_to(&v, Duration::from_secs(1)).await;
    let w = v.wallet();
    assert_eq!(w.quote, TokenAmount::new(900 * USDC));
    assert_eq!(w.base, TokenAmount::new(999_500_000));
    assert_eq!(v.fees_paid(), Lamports::new(5_000));
}

#[tokio::test(start_paused = true)]
async fn a_blackout_makes_every_call_hang_until_the_clients_timeout_fires() {
    let profile = FaultProfile {
        blackouts: vec![(Duration::from_secs(5), Duration::from_secs(60))],
        ..fixed_latency(Duration::from_millis(500))
    };
    let v = venue(profile, 2, flat(100.0), wallet(2));
    let tx = sell(&v, 1).await;
    advance_to(&v, Duration::from_secs(6)).await;
    let request = QuoteRequest {
        side: Side::Sell,
        amount_in: TokenAmount::new(SOL),
        slippage: Slippage::from_bps(100).unwrap(),
    };
    let before = v.run_time();
    assert!(timeout(CLIENT_TIMEOUT, v.quote(&request)).await.is_err());
    assert_eq!(
        v.run_time() - before,
        CLIENT_TIMEOUT,
        "the timeout fired on paused time"
    );
    assert!(timeout(CLIENT_TIMEOUT, v.send(&tx)).await.is_err());
    assert!(
        timeout(
            CLIENT_TIMEOUT,
            v.statuses(&[tx.signature], StatusLookup::Recent)
        )
        .await
        .is_err()
    );
    assert!(timeout(CLIENT_TIMEOUT, v.block_height()).await.is_err());
    assert!(timeout(CLIENT_TIMEOUT, v.balances()).await.is_err());
    assert!(
        timeout(CLIENT_TIMEOUT, v.fill(tx.signature, Side::Sell))
            .await
            .is_err()
    );
    assert!(timeout(CLIENT_TIMEOUT, v.probe()).await.is_err());
    // Without a client timeout the hang ends in an RPC timeout an hour later.
    let e = v.block_height().await.unwrap_err();
    assert_eq!(e.class, ErrorClass::RpcTimeout);
    // What was sent in the blackout never reached the chain; a resend after it lands.
    let v = venue(
        FaultProfile {
            blackouts: vec![(Duration::from_secs(5), Duration::from_secs(15))],
            ..fixed_latency(Duration::from_millis(500))
        },
        2,
        flat(100.0),
        wallet(2),
    );
    let tx = sell(&v, 1).await;
    advance_to(&v, Duration::from_secs(6)).await;
    assert!(timeout(CLIENT_TIMEOUT, v.send(&tx)).await.is_err());
    advance_to(&v, Duration::from_secs(15)).await;
    assert_eq!(status(&v, &tx).await, None);
    assert!(v.landings().is_empty());
    v.probe().await.unwrap();
    v.send(&tx).await.unwrap();
    advance_to(&v, Duration::from_secs(16)).await;
    assert_eq!(status(&v, &tx).await.unwrap().error, None);
}

#[tokio::test(start_paused = true)]
async fn a_landing_past_the_blockhash_expiry_never_lands_and_expired_sends_are_refused() {
    let v = venue(
        fixed_latency(Duration::from_secs(2)),
        1,
        flat(100.0),
        wallet(2),
    );
    // Two slots of life (0.8 s at 400 ms slots) against a 2 s latency.
    let tx = order(&v, Side::Sell, SOL, 100, 0, Some(2)).await;
    assert_eq!(tx.last_valid_block_height, 2);
    assert_eq!(v.expiry_time(2), Duration::from_millis(1_200));
    v.send(&tx).await.unwrap();
    advance_to(&v, Duration::from_secs(5)).await;
    assert_eq!(status(&v, &tx).await, None);
    assert!(v.landings().is_empty());
    let late = order(&v, Side::Sell, SOL, 100, 0, Some(2)).await;
    advance_to(&v, Duration::from_secs(7)).await;
    let e = v.send(&late).await.unwrap_err();
    assert_eq!(
        (e.class, e.code),
        (ErrorClass::BlockhashExpired, Some(-32_002))
    );
    // No expiry asked: 150 slots.
    let default = sell(&v, 1).await;
    assert_eq!(default.last_valid_block_height, v.height_now() + 150);
}

#[tokio::test(start_paused = true)]
async fn block_height_counts_slots_less_the_node_lag() {
    let v = venue(FaultProfile::default(), 1, flat(100.0), wallet(1));
    assert_eq!(v.block_height().await.unwrap(), 0);
    tokio::time::advance(Duration::from_secs(10)).await;
    assert_eq!(v.block_height().await.unwrap(), 25);
    let lagging = venue(
        FaultProfile {
            node_lag_slots: 40,
            ..FaultProfile::default()
        },
        1,
        flat(100.0),
        wallet(1),
    );
    assert_eq!(lagging.block_height().await.unwrap(), 0);
    tokio::time::advance(Duration::from_secs(100)).await;
    assert_eq!(lagging.block_height().await.unwrap(), 250 - 40);
    assert_eq!(lagging.height_now(), 250);
}

#[tokio::test(start_paused = true)]
async fn bad_requests_get_typed_errors() {
    let v = venue(FaultProfile::default(), 1, flat(100.0), wallet(1));
    let e = v
        .statuses(
            &[kyzlo_domain::TxSignature([0; 64]); 257],
            StatusLookup::Recent,
        )
        .await
        .unwrap_err();
    assert_eq!((e.class, e.code), (ErrorClass::Unknown, Some(-32_602)));
    let garbage = UnsignedTransaction {
        bytes: vec![1, 2, 3],
        last_valid_block_height: 9,
    };
    assert_eq!(
        v.sign(&garbage).unwrap_err().class,
        ErrorClass::SignatureFailure
    );
    let mut forged = sell(&v, 1).await;
    forged.signature.0[0] ^= 1;
    assert_eq!(
        v.send(&forged).await.unwrap_err().class,
        ErrorClass::SignatureFailure
    );
    let e = v
        .quote(&QuoteRequest {
            side: Side::Sell,
            amount_in: TokenAmount::ZERO,
            slippage: Slippage::from_bps(100).unwrap(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.class, ErrorClass::NoRoute);
    // Bytes of another venue session cannot be signed here.
    let other = venue(FaultProfile::default(), 1, flat(100.0), wallet(1))
        .with_height_source(HeightSource::Virtual);
    let unsigned = other
        .build_swap(&SwapRequest {
            quote: v
                .quote(&QuoteRequest {
                    side: Side::Sell,
                    amount_in: TokenAmount::new(SOL),
                    slippage: Slippage::from_bps(100).unwrap(),
                })
                .await
                .unwrap(),
            priority_fee: Lamports::new(0),
            expiry_slots: None,
        })
        .await
        .unwrap();
    assert!(v.sign(&unsigned).is_ok(), "same session 0, same format");
    // A wallet that cannot pay the fee is refused at preflight.
    let poor = venue(
        FaultProfile::default(),
        1,
        flat(100.0),
        SimWallet {
            fee_lamports: Lamports::new(1_000),
            ..wallet(1)
        },
    );
    let tx = sell(&poor, 1).await;
    assert_eq!(
        poor.send(&tx).await.unwrap_err().class,
        ErrorClass::InsufficientFunds
    );
}

#[tokio::test(start_paused = true)]
async fn rate_limited_quotes_carry_their_retry_after() {
    let v = venue(
        FaultProfile::named("rate-limited").unwrap(),
        3,
        flat(100.0),
        wallet(1),
    );
    let request = QuoteRequest {
        side: Side::Sell,
        amount_in: TokenAmount::new(SOL),
        slippage: Slippage::from_bps(100).unwrap(),
    };
    let mut limited = 0;
    let mut quoted = 0;
    for _ in 0..200 {
        match v.quote(&request).await {
            Ok(q) => {
                quoted += 1;
                assert_eq!(q.expected_out, TokenAmount::new(100 * USDC));
                assert_eq!(q.min_out, TokenAmount::new(99 * USDC));
            }
            Err(e) => {
                limited += 1;
                assert_eq!(e.class, ErrorClass::RateLimited);
                assert_eq!(e.retry_after, Some(Duration::from_secs(2)));
                assert_eq!(e.code, Some(429));
            }
        }
        tokio::time::advance(Duration::from_millis(100)).await;
    }
    assert!((40..=80).contains(&limited), "{limited} of 200 limited");
    assert!(quoted > 100);
}

/// Forty orders on a flaky network during a crash, each resent a few times.
async fn scenario(seed: u64) -> Vec<Landing> {
    let path = generate(
        &GeneratorConfig::regime(Regime::Crash, 50.0, Duration::from_secs(3_600)),
        seed,
    );
    let profile = FaultProfile {
        send_timeout: 0.2,
        timeout_lands: 0.5,
        drop: 0.1,
        rate_limited: 0.1,
        ..FaultProfile::default()
    };
    let v = venue(profile, seed, path, wallet(100));
    let mut sent = Vec::new();
    for k in 0..40u64 {
        advance_to(&v, Duration::from_millis(1_300 * k)).await;
        let quote = v
            .quote(&QuoteRequest {
                side: Side::Sell,
                amount_in: TokenAmount::new(SOL),
                slippage: Slippage::from_bps(100).unwrap(),
            })
            .await;
        let Ok(quote) = quote else { continue };
        let unsigned = v
            .build_swap(&SwapRequest {
                quote,
                priority_fee: Lamports::new(10_000),
                expiry_slots: Some(60),
            })
            .await
            .unwrap();
        let tx = v.sign(&unsigned).unwrap();
        let _ = timeout(CLIENT_TIMEOUT, v.send(&tx)).await;
        sent.push(tx);
        for tx in sent.iter().rev().take(3) {
            let _ = timeout(CLIENT_TIMEOUT, v.send(tx)).await;
        }
    }
    advance_to(&v, Duration::from_secs(600)).await;
    v.landings()
}

#[tokio::test(start_paused = true)]
async fn the_same_seed_replays_the_same_landings_and_another_seed_differs() {
    let a = scenario(17).await;
    let b = scenario(17).await;
    let c = scenario(18).await;
    assert!(a.len() > 10, "{} landings", a.len());
    assert_eq!(a, b);
    assert_ne!(a, c);
    // Never the same signature twice.
    let mut sigs: Vec<_> = a.iter().map(|l| l.signature).collect();
    sigs.sort();
    sigs.dedup();
    assert_eq!(sigs.len(), a.len());
}

#[tokio::test(start_paused = true)]
async fn the_paper_wallet_persists_landings_for_a_restarted_venue_to_reconcile() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("paper-wallet.json");
    let paper = PaperWallet::open(&file, wallet(3)).unwrap();
    let genesis = paper.genesis_ms();
    let v = venue(
        fixed_latency(Duration::from_millis(500)),
        1,
        flat(100.0),
        wallet(0),
    )
    .with_paper_wallet(paper);
    assert_eq!(v.wallet(), wallet(3));
    let tx = sell(&v, 1).await;
    v.send(&tx).await.unwrap();
    advance_to(&v, Duration::from_secs(1)).await;
    let landed = status(&v, &tx).await.unwrap();
    assert_eq!(landed.error, None);
    let fill = v.fill(tx.signature, Side::Sell).await.unwrap().unwrap();

    // The process dies; a new one opens the same file.
    drop(v);
    let paper = PaperWallet::open(&file, wallet(0)).unwrap();
    assert_eq!(paper.session(), 2);
    assert_eq!(paper.genesis_ms(), genesis);
    assert_eq!(paper.ledger().len(), 1);
    let clock = Clock::new();
    let market = Arc::new(SimMarket::starting_now(Arc::new(flat(100.0)), clock));
    let bad = FaultSchedule::new(
        FaultProfile {
            drop: 2.0,
            ..FaultProfile::default()
        },
        1,
    );
    assert!(matches!(
        SimVenue::paper(
            market.clone(),
            Arc::new(bad),
            PaperWallet::open(&dir.path().join("other.json"), wallet(0)).unwrap(),
            clock,
            Pair::SOL_USDC
        ),
        Err(SimError::InvalidParameter { field: "drop", .. })
    ));
    let schedule = Arc::new(FaultSchedule::new(
        fixed_latency(Duration::from_millis(500)),
        1,
    ));
    let v = SimVenue::paper(market, schedule, paper, clock, Pair::SOL_USDC).unwrap();
    assert_eq!(v.wallet().base, TokenAmount::new(2 * SOL));
    let reconciled = v
        .statuses(&[tx.signature], StatusLookup::WithHistory)
        .await
        .unwrap()[0]
        .unwrap();
    assert_eq!(reconciled, landed);
    assert_eq!(v.fill(tx.signature, Side::Sell).await.unwrap(), Some(fill));
    // The old bytes never execute again, and the new session signs differently.
    v.send(&tx).await.unwrap();
    let next = sell(&v, 1).await;
    assert_ne!(next.signature, tx.signature);
    assert!(v.landings().is_empty());
}

#[tokio::test(start_paused = true)]
async fn continuing_heights_start_at_their_base_and_advance_with_run_time() {
    let v = venue(
        fixed_latency(Duration::from_millis(500)),
        1,
        flat(100.0),
        wallet(1),
    )
    .with_height_source(HeightSource::Continuing { base_height: 1_000 });
    assert_eq!(v.block_height().await.unwrap(), 1_000);
    tokio::time::advance(Duration::from_secs(4)).await;
    assert_eq!(v.block_height().await.unwrap(), 1_010);
    // A transaction still lands within its life on the continuing chain.
    let tx = sell(&v, 1).await;
    assert!(tx.last_valid_block_height >= 1_010 + 150);
    v.send(&tx).await.unwrap();
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(status(&v, &tx).await.unwrap().error, None);
}
