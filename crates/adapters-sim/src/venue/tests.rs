//! Tests of the simulated venue's chain reads, and of a cluster of several providers
//! reached through the client's endpoint list.

use std::sync::Arc;
use std::time::Duration;

use kyzlo_application::clock::Clock;
use kyzlo_application::ports::{
    Blockhash, Chain, Commitment, DurableNonce, NonceAccount, Pair, QuoteRequest, Side,
    SignedTransaction, Signer, SwapRequest, SwapRouter,
};
use kyzlo_domain::{ErrorClass, Lamports, Slippage, TokenAmount};
use tokio::time::Instant;

use super::cluster::HEDGE_DELAY;
use super::{EndpointClient, SimVenue, SimWallet};
use crate::faults::{
    ClusterProfile, EndpointFault, EndpointOutage, FaultProfile, FaultSchedule, Topology,
};
use crate::market::{GeneratorConfig, Regime, SimMarket, generate};

fn venue(cluster: ClusterProfile) -> SimVenue {
    let clock = Clock::new();
    let path = generate(
        &GeneratorConfig::regime(Regime::Calm, 100.0, Duration::from_secs(600)),
        7,
    );
    let market = Arc::new(SimMarket::starting_now(Arc::new(path), clock));
    let faults = FaultProfile {
        cluster,
        ..FaultProfile::default()
    };
    SimVenue::new(
        market,
        Arc::new(FaultSchedule::new(faults, 7)),
        SimWallet {
            base: TokenAmount::new(1_000_000_000),
            quote: TokenAmount::new(1_000_000),
            fee_lamports: Lamports::new(1_000_000_000),
        },
        clock,
        Pair::SOL_USDC,
    )
}

#[tokio::test(start_paused = true)]
async fn the_latest_blockhash_is_valid_for_150_blocks_and_then_dead() {
    let v = venue(ClusterProfile::ideal());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let latest = v.latest_blockhash().await.unwrap();
    let height = v.block_height().await.unwrap();
    assert_eq!(latest.last_valid_block_height, height + 150);
    let seen = v.blockhash_valid(latest.blockhash, 0).await.unwrap();
    assert!(seen.value, "valid when handed out");
    // 151 blocks later (no skipped slots on the ideal cluster), it can carry nothing.
    tokio::time::sleep(Duration::from_millis(400) * 152).await;
    assert!(v.block_height().await.unwrap() > latest.last_valid_block_height);
    let later = v
        .blockhash_valid(latest.blockhash, seen.context_slot)
        .await
        .unwrap();
    assert!(!later.value, "dead past its last valid height");
}

#[tokio::test(start_paused = true)]
async fn a_node_behind_the_asked_context_slot_refuses_rather_than_answers() {
    let v = venue(ClusterProfile::ideal());
    tokio::time::sleep(Duration::from_secs(4)).await;
    let latest = v.latest_blockhash().await.unwrap();
    // No node is 1,000 slots ahead of the tip: the read is refused (-32016), never
    // answered from an older view.
    let tip = v
        .blockhash_valid(latest.blockhash, 0)
        .await
        .unwrap()
        .context_slot;
    let refused = v.blockhash_valid(latest.blockhash, tip + 1_000).await;
    assert!(refused.is_err(), "{refused:?}");
}

const S: fn(u64) -> Duration = Duration::from_secs;

/// Three providers on the ideal network, the primary in `fault` from 0 to 120 s.
fn providers(fault: EndpointFault) -> ClusterProfile {
    ClusterProfile {
        nodes: 3,
        topology: Topology::Endpoints,
        outages: vec![EndpointOutage {
            endpoint: 0,
            from: Duration::ZERO,
            until: S(120),
            fault,
        }],
        ..ClusterProfile::ideal()
    }
}

/// How long a block-height read takes.
async fn timed(v: &SimVenue) -> Duration {
    let started = Instant::now();
    v.block_height().await.unwrap();
    started.elapsed()
}

/// Sleeps until run time `t`.
async fn until(v: &SimVenue, t: Duration) {
    tokio::time::sleep(t.saturating_sub(v.run_time())).await;
}

/// A sale of 0.5 SOL built with a blockhash life of `expiry_slots` (none: the router's
/// newest blockhash), signed.
async fn sale(v: &SimVenue, expiry_slots: Option<u32>) -> SignedTransaction {
    let quote = v
        .quote(&QuoteRequest {
            side: Side::Sell,
            amount_in: TokenAmount::new(500_000_000),
            slippage: Slippage::from_bps(500).unwrap(),
        })
        .await
        .unwrap();
    let unsigned = v
        .build_swap(&SwapRequest {
            quote,
            priority_fee: Lamports::new(0),
            expiry_slots,
            attempt: 1,
            nonce: None,
        })
        .await
        .unwrap();
    v.sign(&unsigned).unwrap()
}

/// Whether the client passes `endpoint` over now.
fn passed_over(v: &SimVenue, endpoint: usize) -> bool {
    v.lock().cluster.passed_over(endpoint, v.run_time())
}

#[tokio::test(start_paused = true)]
async fn a_dead_primary_is_hedged_then_passed_over_until_a_probe_after_its_cool_down_succeeds() {
    let v = venue(providers(EndpointFault::Down));
    until(&v, S(2)).await;
    // The primary gives no answer: after the hedge delay the same read also goes to the
    // next provider, whose answer wins. The client's first call starts its probes.
    assert_eq!(timed(&v).await, HEDGE_DELAY);
    // Until the primary's probe (at 2 s) times out, every read is hedged again.
    assert!(!passed_over(&v, 0));
    assert_eq!(timed(&v).await, HEDGE_DELAY);
    until(&v, Duration::from_millis(3_000)).await;
    assert!(passed_over(&v, 0));
    assert_eq!(timed(&v).await, Duration::ZERO);
    // Past the first cool-down (33 s) it is still dead: its failing probes keep it
    // passed over, and no call pays for finding out.
    until(&v, S(40)).await;
    assert_eq!(timed(&v).await, Duration::ZERO);
    // Back at 120 s, but its probe at 118 s failed at 119 s: passed over until the first
    // probe after 149 s succeeds (at 150 s).
    until(&v, S(149)).await;
    assert!(passed_over(&v, 0));
    until(&v, S(150)).await;
    assert!(!passed_over(&v, 0));
    assert_eq!(timed(&v).await, Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_client_that_knows_only_the_dead_primary_gets_no_answer_until_it_recovers() {
    let v = venue(providers(EndpointFault::Down)).with_client(EndpointClient {
        endpoints: 1,
        ..EndpointClient::default()
    });
    until(&v, S(2)).await;
    let started = Instant::now();
    let error = v.block_height().await.unwrap_err();
    assert_eq!(
        (error.class, started.elapsed()),
        (ErrorClass::RpcTimeout, S(1))
    );
    // Nothing sent through it reaches a leader.
    let tx = sale(&v, Some(20)).await;
    let error = v.send(&tx).await.unwrap_err();
    assert_eq!(error.class, ErrorClass::RpcTimeout);
    until(&v, S(60)).await;
    assert!(v.landings().is_empty());
    until(&v, S(121)).await;
    assert!(v.block_height().await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_send_to_the_dead_primary_fails_over_within_the_call_and_lands() {
    let v = venue(providers(EndpointFault::Down));
    until(&v, S(2)).await;
    let tx = sale(&v, Some(20)).await;
    let started = Instant::now();
    v.send(&tx).await.unwrap();
    // Sends are not hedged.
    assert_eq!(
        started.elapsed(),
        S(1),
        "one request timeout, then the next provider"
    );
    until(&v, S(10)).await;
    let landings = v.landings();
    assert_eq!(landings.len(), 1);
    assert!(landings[0].ok && landings[0].signature == tx.signature);
    // The primary stays passed over: the next send goes straight to the next provider.
    let again = sale(&v, Some(20)).await;
    let started = Instant::now();
    v.send(&again).await.unwrap();
    assert_eq!(started.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn a_lagging_provider_is_probed_behind_and_tried_last_while_alone_it_answers_from_its_old_view()
 {
    let v = venue(providers(EndpointFault::Lagging { slots: 60 }));
    until(&v, S(60)).await;
    // The client's first call probes every provider: the primary, 60 slots behind the
    // others, is tried after them.
    v.block_height().await.unwrap();
    assert_eq!(v.block_height().await.unwrap(), v.slot_now());
    // A client that knows only the primary (nothing to probe) gets its old view.
    let v = venue(providers(EndpointFault::Lagging { slots: 60 })).with_client(EndpointClient {
        endpoints: 1,
        ..EndpointClient::default()
    });
    until(&v, S(60)).await;
    // Healthy by its own account: answered at once, 60 slots behind the tip.
    let started = Instant::now();
    let height = v.block_height().await.unwrap();
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(height, v.slot_now() - 60);
    // A swap on the router's newest blockhash is refused at its preflight ("blockhash
    // not found"): a node's answer, so the client does not fail over.
    let fresh = sale(&v, None).await;
    assert_eq!(
        v.send(&fresh).await.unwrap_err().class,
        ErrorClass::BlockhashExpired
    );
    // One on a blockhash 130 slots old (a 20-slot life) is one it has seen.
    let short = sale(&v, Some(20)).await;
    v.send(&short).await.unwrap();
    until(&v, S(70)).await;
    assert!(v.landings().iter().any(|l| l.signature == short.signature));
    until(&v, S(121)).await;
    assert_eq!(v.block_height().await.unwrap(), v.slot_now());
}

const NONCE: NonceAccount = NonceAccount([0x4E; 32]);

/// A sale of `amount` lamports of SOL on the wallet's nonce at `value`, with `slippage_bps`.
async fn sale_on_nonce(
    v: &SimVenue,
    value: Blockhash,
    amount: u64,
    slippage_bps: u16,
) -> SignedTransaction {
    let quote = v
        .quote(&QuoteRequest {
            side: Side::Sell,
            amount_in: TokenAmount::new(amount),
            slippage: Slippage::from_bps(slippage_bps).unwrap(),
        })
        .await
        .unwrap();
    let unsigned = v
        .build_swap(&SwapRequest {
            quote,
            priority_fee: Lamports::new(10_000),
            expiry_slots: Some(20),
            attempt: 1,
            nonce: Some(DurableNonce {
                account: NONCE,
                value,
            }),
        })
        .await
        .unwrap();
    assert_eq!(
        unsigned.last_valid_block_height,
        kyzlo_application::ports::NO_LAST_VALID_HEIGHT,
        "it never expires"
    );
    v.sign(&unsigned).unwrap()
}

async fn nonce_value(v: &SimVenue) -> Blockhash {
    v.nonce(NONCE, Commitment::Confirmed)
        .await
        .unwrap()
        .value
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn two_swaps_on_one_nonce_value_land_at_most_once_and_move_the_value_on() {
    let v = venue(ClusterProfile::ideal()).with_nonce_account(NONCE);
    until(&v, S(2)).await;
    let value = nonce_value(&v).await;
    assert_eq!(v.nonce_value(), Some(value));
    // Another account holds no nonce; a swap on it is refused at the build.
    assert_eq!(
        v.nonce(NonceAccount([1; 32]), Commitment::Confirmed)
            .await
            .unwrap()
            .value,
        None
    );
    let first = sale_on_nonce(&v, value, 100_000_000, 500).await;
    let second = sale_on_nonce(&v, value, 200_000_000, 500).await;
    assert_eq!(first.blockhash, value, "the nonce's value is its blockhash");
    v.send(&first).await.unwrap();
    v.send(&second).await.unwrap();
    // Long past any blockhash's life: a nonce transaction does not expire, but once one
    // landed the other never can.
    until(&v, S(120)).await;
    let landings = v.landings();
    assert_eq!(landings.len(), 1, "{landings:?}");
    assert!(landings[0].ok);
    let moved = nonce_value(&v).await;
    assert_ne!(moved, value);
    assert_eq!(
        v.send(&second).await.unwrap_err().class,
        ErrorClass::BlockhashExpired,
        "a node refuses a nonce value it no longer holds"
    );
    until(&v, S(130)).await;
    assert_eq!(v.landings().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_failed_swap_on_a_nonce_pays_its_fee_and_uses_the_value_up_and_a_cancel_moves_it_without_a_swap()
 {
    // No preflight: the failing swap reaches the leader.
    let v = venue(ClusterProfile {
        preflight: false,
        ..ClusterProfile::ideal()
    })
    .with_nonce_account(NONCE);
    until(&v, S(2)).await;
    let value = nonce_value(&v).await;
    let before = v.wallet();
    // More than the wallet holds: it lands with an error.
    let failing = sale_on_nonce(&v, value, 5_000_000_000, 100).await;
    let held_back = sale_on_nonce(&v, value, 100_000_000, 500).await;
    v.send(&failing).await.unwrap();
    until(&v, S(5)).await;
    let landings = v.landings();
    assert_eq!(landings.len(), 1);
    assert!(!landings[0].ok);
    assert_eq!(landings[0].fee, Lamports::new(15_000));
    assert_eq!(
        v.wallet().base.get(),
        before.base.get() - 15_000,
        "the fee is paid from the same lamports"
    );
    let after_failure = nonce_value(&v).await;
    assert_ne!(
        after_failure, value,
        "a failed landing advances the nonce too"
    );
    v.send(&held_back).await.unwrap();
    until(&v, S(10)).await;
    assert_eq!(v.landings().len(), 1, "the held-back swap cannot land");
    // A cancel on the new value: it lands, swaps nothing, moves the value.
    let cancel = v
        .build_cancel(
            DurableNonce {
                account: NONCE,
                value: after_failure,
            },
            Lamports::new(1_000),
        )
        .await
        .unwrap();
    let cancel = v.sign(&cancel).unwrap();
    let swap = sale_on_nonce(&v, after_failure, 100_000_000, 500).await;
    v.send(&cancel).await.unwrap();
    until(&v, S(15)).await;
    v.send(&swap).await.unwrap();
    until(&v, S(20)).await;
    let landings = v.landings();
    assert_eq!(landings.len(), 2);
    assert!(landings[1].cancel && landings[1].ok);
    assert_eq!(landings[1].amount_out, TokenAmount::ZERO);
    assert_eq!(landings[1].fee, Lamports::new(6_000));
    assert_ne!(nonce_value(&v).await, after_failure);
}

#[tokio::test(start_paused = true)]
async fn a_lagging_node_shows_the_older_nonce_value_and_forwards_what_the_leader_refuses() {
    // A client that knows only the lagging primary (one that knows the others tries it
    // last).
    let v = venue(providers(EndpointFault::Lagging { slots: 60 }))
        .with_client(EndpointClient {
            endpoints: 1,
            ..EndpointClient::default()
        })
        .with_nonce_account(NONCE);
    until(&v, S(40)).await;
    let value = v.nonce_value().unwrap();
    // Used up by a cancel the lagging primary does not see yet.
    let cancel = v
        .build_cancel(
            DurableNonce {
                account: NONCE,
                value,
            },
            Lamports::new(1_000),
        )
        .await
        .unwrap();
    let cancel = v.sign(&cancel).unwrap();
    let swap = sale_on_nonce(&v, value, 100_000_000, 500).await;
    v.send(&cancel).await.unwrap();
    until(&v, S(45)).await;
    assert_ne!(v.nonce_value(), Some(value));
    let seen = v.nonce(NONCE, Commitment::Confirmed).await.unwrap();
    assert_eq!(
        seen.value,
        Some(value),
        "60 slots behind, it shows the old value"
    );
    // Its preflight passes on its old view; the leader refuses it unpaid.
    v.send(&swap).await.unwrap();
    until(&v, S(60)).await;
    let landings = v.landings();
    assert_eq!(landings.len(), 1);
    assert!(landings[0].cancel);
}
