//! Tests of the simulated venue's chain reads, and of a cluster of several providers
//! reached through the client's endpoint list.

use std::sync::Arc;
use std::time::Duration;

use kyzlo_application::clock::Clock;
use kyzlo_application::ports::{
    Chain, Pair, QuoteRequest, Side, SignedTransaction, Signer, SwapRequest, SwapRouter,
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
