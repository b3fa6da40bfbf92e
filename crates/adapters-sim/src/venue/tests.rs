//! Tests of the simulated venue's chain reads.

use std::sync::Arc;
use std::time::Duration;

use kyzlo_application::clock::Clock;
use kyzlo_application::ports::{Chain, Pair};
use kyzlo_domain::{Lamports, TokenAmount};

use super::{SimVenue, SimWallet};
use crate::faults::{ClusterProfile, FaultProfile, FaultSchedule};
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
