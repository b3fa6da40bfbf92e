//! The adapter through its real `RpcClient` against a real `solana-test-validator` on
//! loopback, with faults from a JSON-RPC proxy in between.
//!
//! One validator serves the whole run. The binary has its own runner (`harness = false`)
//! so that it can re-execute itself inside a private network namespace first (see
//! `support/cluster.rs`) and stop the validator when the run ends. It accepts name
//! filters like libtest and prints libtest's summary line. A missing validator binary
//! fails the run with how to install it.

#[path = "support/cluster.rs"]
mod cluster;
#[path = "support/http.rs"]
mod http;
#[path = "support/ledger.rs"]
mod ledger;
#[path = "support/proxy.rs"]
mod proxy;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use kyzlo_adapters_solana::fees::total_fee;
use kyzlo_adapters_solana::{
    AssembleSettings, Assembler, Hash, KeypairSigner, NATIVE_MINT, Pubkey, SolanaChain,
    SolanaConfig, SwapPlan, TokenPair, Url, lookup, nonce,
};
use kyzlo_application::ports::{
    Blockhash, Chain, Commitment, DurableNonce, HealthProbe, NonceAccount, Side, Signer,
    StatusLookup, WalletAddress,
};
use kyzlo_application::proof::{AttemptKey, Fate, prove};
use kyzlo_domain::{ErrorClass, Lamports, TokenAmount};
use ledger::{
    ACCOUNT_SIZE, MINT_SIZE, TOKEN, confirmed, create_account, funded_wallet, initialize_account3,
    initialize_mint2, mint_to, plain_client, token_transfer, transfer, unsigned,
};
use proxy::{Fault, Proxy};
use solana_keypair::Keypair;
use solana_signer::Signer as _;

const SOL: u64 = 1_000_000_000;
/// The local validator's fee per signature.
const FEE: u64 = 5_000;

/// Validator options. Slots of 16 ticks (100 ms instead of 400 ms) let a blockhash
/// expire (150 blocks) in about 15 s instead of 60 s.
const VALIDATOR_ARGS: &[&str] = &["--ticks-per-slot", "16"];

/// What every test gets.
struct Env {
    rpc: Url,
    /// An existing mint nobody holds: the quote of tests that trade SOL alone.
    quote_mint: Pubkey,
}

type Test = fn(Arc<Env>) -> BoxFuture<'static, ()>;

macro_rules! tests {
    ($($name:ident),* $(,)?) => {
        const TESTS: &[(&str, Test)] = &[$((stringify!($name), |env| Box::pin($name(env)))),*];
    };
}

tests![
    only_loopback_can_reach_the_validator,
    sol_transfer_is_signed_sent_confirmed_and_balances_follow,
    resending_the_same_bytes_after_landing_succeeds_and_executes_once,
    spl_tokens_are_minted_and_transferred_and_balances_follow,
    fill_of_a_real_swap_like_transaction_reads_sol_in_and_tokens_out,
    preflight_refusals_map_to_their_classes,
    a_transaction_that_lands_and_fails_is_reported_with_its_error_not_as_missing,
    an_attempt_is_proven_dead_only_once_its_blockhash_expired_and_nothing_landed,
    a_send_held_back_lands_late_and_is_reported_as_landed_not_lost,
    reads_fail_over_to_the_second_endpoint_when_the_first_times_out,
    proxy_faults_map_to_their_classes,
    probe_fees_and_blockhash_validity_against_the_validator,
    an_own_v0_attempt_carries_its_compute_budget_and_a_lookup_table_lives_its_chosen_life_and_pays_its_bid,
    two_transactions_on_one_nonce_value_land_at_most_once_and_the_value_moves_on,
    a_cancel_on_the_nonce_makes_the_transaction_held_back_unlandable,
];

fn config(endpoints: Vec<Url>) -> SolanaConfig {
    SolanaConfig {
        // Generous: the validator shares two cores with the build and the other tests.
        request_timeout: Duration::from_secs(5),
        ..SolanaConfig::new(endpoints)
    }
}

fn chain_with(config: &SolanaConfig, wallet: &Pubkey, quote: Pubkey) -> SolanaChain {
    SolanaChain::new(
        config,
        WalletAddress(wallet.to_bytes()),
        TokenPair {
            base: NATIVE_MINT,
            quote,
        },
    )
    .expect("valid config")
}

fn direct(env: &Env, wallet: &Pubkey) -> SolanaChain {
    chain_with(&config(vec![env.rpc.clone()]), wallet, env.quote_mint)
}

async fn signed_transfer(
    chain: &SolanaChain,
    wallet: &KeypairSigner,
    to: &Pubkey,
    lamports: u64,
) -> kyzlo_application::ports::SignedTransaction {
    let latest = chain.newest_blockhash().await.expect("blockhash");
    let payer = wallet.pubkey();
    wallet
        .sign(&unsigned(
            &payer,
            &[transfer(&payer, to, lamports)],
            &[],
            latest.blockhash,
            latest.last_valid_block_height,
        ))
        .expect("signed")
}

async fn only_loopback_can_reach_the_validator(_env: Arc<Env>) {
    assert_eq!(cluster::isolated(), Ok(true));
}

async fn sol_transfer_is_signed_sent_confirmed_and_balances_follow(env: Arc<Env>) {
    let wallet = funded_wallet(&env.rpc, 2 * SOL).await;
    let chain = direct(&env, &wallet.pubkey());
    let before = chain.balances().await.expect("balances");
    assert_eq!(before.fee_lamports, Lamports::new(2 * SOL));
    assert_eq!(
        before.base,
        TokenAmount::new(2 * SOL),
        "SOL base counts native lamports"
    );
    assert_eq!(before.quote, TokenAmount::ZERO);

    let recipient = Pubkey::new_unique();
    let tx = signed_transfer(&chain, &wallet, &recipient, 1_000_000).await;
    chain.send(&tx).await.expect("sent");
    let status = confirmed(&chain, tx.signature).await;
    assert_eq!(status.error, None);

    let after = chain.balances().await.expect("balances");
    assert_eq!(after.fee_lamports, Lamports::new(2 * SOL - 1_000_000 - FEE));
    let received = plain_client(&env.rpc)
        .get_balance(&recipient)
        .await
        .expect("balance");
    assert_eq!(received, 1_000_000);
}

async fn resending_the_same_bytes_after_landing_succeeds_and_executes_once(env: Arc<Env>) {
    let wallet = funded_wallet(&env.rpc, SOL).await;
    let chain = direct(&env, &wallet.pubkey());
    let recipient = Pubkey::new_unique();
    let tx = signed_transfer(&chain, &wallet, &recipient, 2_000_000).await;
    chain.send(&tx).await.expect("sent");
    confirmed(&chain, tx.signature).await;
    for _ in 0..3 {
        chain
            .send(&tx)
            .await
            .expect("the same bytes again: already processed is success");
    }
    let skipping = SolanaConfig {
        skip_preflight: true,
        ..config(vec![env.rpc.clone()])
    };
    chain_with(&skipping, &wallet.pubkey(), env.quote_mint)
        .send(&tx)
        .await
        .expect("without preflight too");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let received = plain_client(&env.rpc)
        .get_balance(&recipient)
        .await
        .expect("balance");
    assert_eq!(received, 2_000_000, "executed once");
}

/// Sends `instructions` paid and signed by `wallet` (and `co_signers`) and waits for
/// their success.
async fn execute(
    chain: &SolanaChain,
    wallet: &KeypairSigner,
    instructions: &[solana_instruction::Instruction],
    co_signers: &[&Keypair],
) {
    let latest = chain.newest_blockhash().await.expect("blockhash");
    let payer = wallet.pubkey();
    let tx = wallet
        .sign(&unsigned(
            &payer,
            instructions,
            co_signers,
            latest.blockhash,
            latest.last_valid_block_height,
        ))
        .expect("signed");
    chain.send(&tx).await.expect("sent");
    assert_eq!(confirmed(chain, tx.signature).await.error, None);
}

/// Creates a mint of 6 decimals whose authority is `wallet`.
async fn create_mint(url: &Url, chain: &SolanaChain, wallet: &KeypairSigner) -> Pubkey {
    let rent = plain_client(url)
        .get_minimum_balance_for_rent_exemption(MINT_SIZE as usize)
        .await
        .expect("rent");
    let mint = Keypair::new();
    let payer = wallet.pubkey();
    let instructions = [
        create_account(&payer, &mint.pubkey(), rent, MINT_SIZE, &TOKEN),
        initialize_mint2(&mint.pubkey(), 6, &payer),
    ];
    execute(chain, wallet, &instructions, &[&mint]).await;
    mint.pubkey()
}

/// Creates a mint (6 decimals, the wallet its authority) and a token account of it for
/// the wallet and for `other`; mints `amount` to the wallet. Returns (mint, wallet's
/// account, other's account).
async fn token_setup(
    env: &Env,
    chain: &SolanaChain,
    wallet: &KeypairSigner,
    other: &Pubkey,
    amount: u64,
) -> (Pubkey, Pubkey, Pubkey) {
    let mint = create_mint(&env.rpc, chain, wallet).await;
    let rent = plain_client(&env.rpc)
        .get_minimum_balance_for_rent_exemption(ACCOUNT_SIZE as usize)
        .await
        .expect("rent");
    let (mine, theirs) = (Keypair::new(), Keypair::new());
    let payer = wallet.pubkey();
    let instructions = [
        create_account(&payer, &mine.pubkey(), rent, ACCOUNT_SIZE, &TOKEN),
        initialize_account3(&mine.pubkey(), &mint, &payer),
        create_account(&payer, &theirs.pubkey(), rent, ACCOUNT_SIZE, &TOKEN),
        initialize_account3(&theirs.pubkey(), &mint, other),
        mint_to(&mint, &mine.pubkey(), &payer, amount),
    ];
    execute(chain, wallet, &instructions, &[&mine, &theirs]).await;
    (mint, mine.pubkey(), theirs.pubkey())
}

async fn spl_tokens_are_minted_and_transferred_and_balances_follow(env: Arc<Env>) {
    let wallet = funded_wallet(&env.rpc, SOL).await;
    let other = Pubkey::new_unique();
    let setup_chain = direct(&env, &wallet.pubkey());
    let (mint, mine, theirs) = token_setup(&env, &setup_chain, &wallet, &other, 1_000_000).await;
    let chain = chain_with(&config(vec![env.rpc.clone()]), &wallet.pubkey(), mint);
    assert_eq!(
        chain.balances().await.expect("balances").quote,
        TokenAmount::new(1_000_000)
    );

    let latest = chain.newest_blockhash().await.expect("blockhash");
    let payer = wallet.pubkey();
    let tx = wallet
        .sign(&unsigned(
            &payer,
            &[token_transfer(&mine, &theirs, &payer, 400_000)],
            &[],
            latest.blockhash,
            latest.last_valid_block_height,
        ))
        .expect("signed");
    chain.send(&tx).await.expect("sent");
    assert_eq!(confirmed(&chain, tx.signature).await.error, None);
    assert_eq!(
        chain.balances().await.expect("balances").quote,
        TokenAmount::new(600_000)
    );
    let theirs_now = plain_client(&env.rpc)
        .get_token_account_balance(&theirs)
        .await
        .expect("balance");
    assert_eq!(theirs_now.amount, "400000");
}

async fn fill_of_a_real_swap_like_transaction_reads_sol_in_and_tokens_out(env: Arc<Env>) {
    // A "sell" in one transaction: the wallet pays 0.01 SOL away and receives 250,000
    // base units of its token (minted, the wallet being the mint authority).
    let wallet = funded_wallet(&env.rpc, SOL).await;
    let other = Pubkey::new_unique();
    let setup_chain = direct(&env, &wallet.pubkey());
    let (mint, mine, _) = token_setup(&env, &setup_chain, &wallet, &other, 1).await;
    let chain = chain_with(&config(vec![env.rpc.clone()]), &wallet.pubkey(), mint);
    let payer = wallet.pubkey();
    let latest = chain.newest_blockhash().await.expect("blockhash");
    let tx = wallet
        .sign(&unsigned(
            &payer,
            &[
                transfer(&payer, &other, SOL / 100),
                mint_to(&mint, &mine, &payer, 250_000),
            ],
            &[],
            latest.blockhash,
            latest.last_valid_block_height,
        ))
        .expect("signed");
    chain.send(&tx).await.expect("sent");
    confirmed(&chain, tx.signature).await;
    let fill = chain
        .fill(tx.signature, Side::Sell)
        .await
        .expect("answer")
        .expect("in the ledger");
    assert_eq!(fill.amount_in, TokenAmount::new(SOL / 100));
    assert_eq!(fill.amount_out, TokenAmount::new(250_000));
    assert_eq!(fill.fee, Lamports::new(FEE));
}

async fn preflight_refusals_map_to_their_classes(env: Arc<Env>) {
    let funded = funded_wallet(&env.rpc, SOL).await;
    let chain = direct(&env, &funded.pubkey());
    let latest = chain.newest_blockhash().await.expect("blockhash");
    let stranger = Pubkey::new_unique();

    let unfunded = KeypairSigner::new(Keypair::new());
    let payer = unfunded.pubkey();
    let tx = unfunded
        .sign(&unsigned(
            &payer,
            &[transfer(&payer, &stranger, 1)],
            &[],
            latest.blockhash,
            1,
        ))
        .expect("signed");
    let error = chain.send(&tx).await.expect_err("no lamports for the fee");
    assert_eq!(
        (error.class, error.code),
        (ErrorClass::InsufficientFunds, Some(-32002)),
        "{error}"
    );

    let payer = funded.pubkey();
    let tx = funded
        .sign(&unsigned(
            &payer,
            &[transfer(&payer, &stranger, 1)],
            &[],
            Hash::new_unique(),
            1,
        ))
        .expect("signed");
    let error = chain.send(&tx).await.expect_err("unknown blockhash");
    assert_eq!(
        (error.class, error.code),
        (ErrorClass::BlockhashExpired, Some(-32002)),
        "{error}"
    );

    let tx = funded
        .sign(&unsigned(
            &payer,
            &[transfer(&payer, &stranger, 10 * SOL)],
            &[],
            latest.blockhash,
            1,
        ))
        .expect("signed");
    let error = chain.send(&tx).await.expect_err("more than the balance");
    // System program error 1: ResultWithNegativeLamports.
    assert_eq!(
        (error.class, error.code),
        (ErrorClass::LandedFailed, Some(1)),
        "{error}"
    );
}

async fn a_transaction_that_lands_and_fails_is_reported_with_its_error_not_as_missing(
    env: Arc<Env>,
) {
    let wallet = funded_wallet(&env.rpc, SOL).await;
    let skipping = SolanaConfig {
        skip_preflight: true,
        ..config(vec![env.rpc.clone()])
    };
    let chain = chain_with(&skipping, &wallet.pubkey(), env.quote_mint);
    let tx = signed_transfer(&chain, &wallet, &Pubkey::new_unique(), 10 * SOL).await;
    chain.send(&tx).await.expect("forwarded without preflight");
    let status = confirmed(&chain, tx.signature).await;
    assert_eq!(status.error, Some(ErrorClass::LandedFailed));
    let fill = chain
        .fill(tx.signature, Side::Sell)
        .await
        .expect("answer")
        .expect("landed");
    assert_eq!(
        (fill.amount_in, fill.amount_out),
        (TokenAmount::ZERO, TokenAmount::ZERO)
    );
    assert_eq!(fill.fee, Lamports::new(FEE));
    let after = chain.balances().await.expect("balances");
    assert_eq!(
        after.fee_lamports,
        Lamports::new(SOL - FEE),
        "only the fee moved"
    );
}

async fn an_attempt_is_proven_dead_only_once_its_blockhash_expired_and_nothing_landed(
    env: Arc<Env>,
) {
    let proxy = Proxy::start(env.rpc.clone()).await;
    proxy.set(Some("sendTransaction"), Fault::DropSend);
    let wallet = funded_wallet(&env.rpc, SOL).await;
    let chain = direct(&env, &wallet.pubkey());
    let via_proxy = chain_with(&config(vec![proxy.url()]), &wallet.pubkey(), env.quote_mint);

    let latest = chain.newest_blockhash().await.expect("blockhash");
    let payer = wallet.pubkey();
    let tx = wallet
        .sign(&unsigned(
            &payer,
            &[transfer(&payer, &Pubkey::new_unique(), 1_000)],
            &[],
            latest.blockhash,
            latest.last_valid_block_height,
        ))
        .expect("signed");
    via_proxy
        .send(&tx)
        .await
        .expect("acknowledged (then dropped)");
    assert_eq!(proxy.count("sendTransaction"), 1);
    let valid = chain
        .blockhash_valid(tx.blockhash, 0)
        .await
        .expect("blockhash validity");
    assert!(valid.value, "alive at first");
    let key = AttemptKey {
        signature: tx.signature,
        blockhash: tx.blockhash,
        valid_at_slot: valid.context_slot,
    };

    let started = Instant::now();
    let mut looks = 0_u32;
    loop {
        let height = chain.block_height().await.expect("height");
        let fate = prove(&chain, &key, Commitment::Confirmed).await;
        looks += 1;
        if fate == Fate::Dead {
            assert!(
                chain.block_height().await.expect("height") > tx.last_valid_block_height,
                "dead only past the last valid height"
            );
            break;
        }
        // Not dead yet: the attempt could still land, so nothing new may be built.
        assert_eq!(fate, Fate::Unknown, "a dropped send never lands");
        assert!(
            height <= tx.last_valid_block_height + 2,
            "still unproven well past the last valid height"
        );
        assert!(
            started.elapsed() < Duration::from_secs(100),
            "expiry took too long"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(looks > 1, "the attempt was alive for a while first");
    let history = chain
        .statuses(&[tx.signature], StatusLookup::WithHistory)
        .await
        .expect("statuses");
    assert_eq!(history.value, vec![None], "nowhere in history");
    eprintln!(
        "  (blockhash expired after {:.1} s)",
        started.elapsed().as_secs_f64()
    );
    // And indeed the same bytes can never land now.
    let error = chain.send(&tx).await.expect_err("expired");
    assert_eq!(error.class, ErrorClass::BlockhashExpired);
}

async fn a_send_held_back_lands_late_and_is_reported_as_landed_not_lost(env: Arc<Env>) {
    let hold = Duration::from_millis(2_000);
    let proxy = Proxy::start(env.rpc.clone()).await;
    proxy.set(Some("sendTransaction"), Fault::ForwardLate(hold));
    let wallet = funded_wallet(&env.rpc, SOL).await;
    let chain = direct(&env, &wallet.pubkey());
    let via_proxy = chain_with(&config(vec![proxy.url()]), &wallet.pubkey(), env.quote_mint);
    let recipient = Pubkey::new_unique();
    let tx = signed_transfer(&chain, &wallet, &recipient, 3_000_000).await;

    let sent = Instant::now();
    via_proxy.send(&tx).await.expect("acknowledged at once");
    let early = chain
        .statuses(&[tx.signature], StatusLookup::Recent)
        .await
        .expect("statuses");
    assert_eq!(early.value, vec![None], "not landed yet");
    let status = confirmed(&chain, tx.signature).await;
    assert!(sent.elapsed() >= hold, "landed only after being held back");
    assert_eq!(status.error, None, "landed late, and landed: not lost");
    let received = plain_client(&env.rpc)
        .get_balance(&recipient)
        .await
        .expect("balance");
    assert_eq!(received, 3_000_000);
}

async fn reads_fail_over_to_the_second_endpoint_when_the_first_times_out(env: Arc<Env>) {
    let proxy = Proxy::start(env.rpc.clone()).await;
    proxy.set(None, Fault::Delay(Duration::from_secs(3)));
    let config = SolanaConfig {
        request_timeout: Duration::from_millis(500),
        ..config(vec![proxy.url(), env.rpc.clone()])
    };
    let chain = chain_with(&config, &Pubkey::new_unique(), env.quote_mint);
    let started = Instant::now();
    let height = chain.block_height().await.expect("via the second endpoint");
    assert!(height > 0);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "hedged to the second before the first's request timeout: {:?}",
        started.elapsed()
    );
    // The prober's getSlot to the first times out at its request timeout: from then on
    // it is passed over (until its cool-down ends and a probe succeeds).
    let mut reads = 1;
    while !chain.endpoint_status()[0].passed_over {
        assert!(reads < 10, "the first endpoint's probe never failed");
        chain.block_height().await.expect("hedged");
        reads += 1;
    }
    let status = chain.endpoint_status();
    assert!(status[0].cooling_for.is_some(), "{status:?}");
    assert!(!status[1].passed_over, "{status:?}");
    let reached = proxy.count("getBlockHeight");
    chain.block_height().await.expect("again");
    assert_eq!(
        proxy.count("getBlockHeight"),
        reached,
        "passed over while failing"
    );
}

async fn proxy_faults_map_to_their_classes(env: Arc<Env>) {
    let cases = [
        (
            Fault::Status(429, Some(7)),
            ErrorClass::RateLimited,
            Some(429),
            Some(7),
        ),
        (
            Fault::Status(503, None),
            ErrorClass::NodeUnhealthy,
            Some(503),
            None,
        ),
        (
            Fault::NodeUnhealthy(50),
            ErrorClass::NodeUnhealthy,
            Some(-32005),
            None,
        ),
        (Fault::CutShort, ErrorClass::Network, None, None),
        (Fault::HalfJson, ErrorClass::Network, None, None),
        (
            Fault::Stall(Duration::from_secs(2)),
            ErrorClass::RpcTimeout,
            None,
            None,
        ),
        (
            Fault::Delay(Duration::from_millis(1_500)),
            ErrorClass::RpcTimeout,
            None,
            None,
        ),
    ];
    let wallet = funded_wallet(&env.rpc, SOL).await;
    for (fault, class, code, retry_after) in cases {
        let proxy = Proxy::start(env.rpc.clone()).await;
        proxy.set(None, fault);
        let config = SolanaConfig {
            request_timeout: Duration::from_millis(500),
            ..config(vec![proxy.url()])
        };
        let chain = chain_with(&config, &wallet.pubkey(), env.quote_mint);
        let error = chain.block_height().await.expect_err("fault");
        assert_eq!(
            (error.class, error.code),
            (class, code),
            "{fault:?}: {error}"
        );
        assert_eq!(
            error.retry_after,
            retry_after.map(Duration::from_secs),
            "{fault:?}"
        );
        let error = chain.balances().await.expect_err("fault");
        assert_eq!(error.class, class, "{fault:?} on balances");
        assert_eq!(
            proxy.count("getBlockHeight"),
            1,
            "{fault:?}: no hidden retry"
        );
    }
    // A send refused for rate is not retried behind the caller's back either.
    let proxy = Proxy::start(env.rpc.clone()).await;
    proxy.set(Some("sendTransaction"), Fault::Status(429, Some(1)));
    let chain = chain_with(&config(vec![proxy.url()]), &wallet.pubkey(), env.quote_mint);
    let tx = signed_transfer(&chain, &wallet, &Pubkey::new_unique(), 1).await;
    let error = chain.send(&tx).await.expect_err("rate limited");
    assert_eq!(error.class, ErrorClass::RateLimited);
    assert_eq!(proxy.count("sendTransaction"), 1);
}

async fn probe_fees_and_blockhash_validity_against_the_validator(env: Arc<Env>) {
    let wallet = Pubkey::new_unique();
    let chain = direct(&env, &wallet);
    chain.probe().await.expect("getSlot");
    let fee = chain
        .priority_fee(&[wallet, NATIVE_MINT], 75)
        .await
        .expect("fees");
    assert_eq!(
        fee.micro_lamports_per_cu, 0,
        "nobody pays priority fees here"
    );
    let latest = chain.newest_blockhash().await.expect("blockhash");
    assert!(latest.last_valid_block_height > chain.block_height().await.expect("height"));
    let valid = chain
        .blockhash_valid(Blockhash(latest.blockhash.to_bytes()), 0)
        .await
        .expect("valid");
    assert!(valid.value && valid.context_slot > 0);
    let unknown = chain
        .blockhash_valid(Blockhash(Hash::new_unique().to_bytes()), 0)
        .await
        .expect("unknown");
    assert!(!unknown.value);
    // A node asked for a slot it has not reached says so.
    let ahead = chain
        .blockhash_valid(
            Blockhash(latest.blockhash.to_bytes()),
            valid.context_slot + 1_000_000,
        )
        .await
        .expect_err("not reached");
    assert_eq!(ahead.code, Some(-32_016));
}

/// kyzlo's own v0 transaction, end to end on the chain: compute-unit limit and price
/// first, a lookup table holding the written account, a blockhash whose last valid height
/// is the chosen life ahead and which the node stops calling valid right after it, and a
/// landed fee equal to the base fee plus exactly what the message bid.
async fn an_own_v0_attempt_carries_its_compute_budget_and_a_lookup_table_lives_its_chosen_life_and_pays_its_bid(
    env: Arc<Env>,
) {
    const LIFE: u32 = 20;
    let wallet = funded_wallet(&env.rpc, 2 * SOL).await;
    let payer = wallet.pubkey();
    let chain = Arc::new(direct(&env, &payer));
    let pool = Pubkey::new_unique();
    let table = lookup::create_table(&chain, &wallet, &[pool], &[pool])
        .await
        .expect("lookup table created");
    // A blockhash 130 blocks old exists only once the chain is that long.
    while chain.block_height().await.expect("height") <= 160 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let settings = AssembleSettings {
        fee_floor_micro_lamports: 5_000,
        ..AssembleSettings::default()
    };
    let assembler = Assembler::new(chain.clone(), payer, Vec::new(), settings);
    let instructions = [transfer(&payer, &pool, 1)];
    let tables = [(table, vec![pool])];
    let plan = |attempt, cap| SwapPlan {
        instructions: &instructions,
        lookup_tables: &tables,
        fee_cap: Lamports::new(cap),
        attempt,
        life_blocks: LIFE,
        nonce: None,
    };
    // Each later attempt bids more; the rung's cap bounds the bid.
    let first = assembler.assemble(&plan(1, 50_000)).await.expect("first");
    let capped = assembler.assemble(&plan(3, 1)).await.expect("capped");
    assert!(capped.priority_fee <= Lamports::new(1), "{capped:?}");
    let height = chain.block_height().await.expect("height");
    let second = assembler.assemble(&plan(2, 50_000)).await.expect("second");
    assert_eq!(
        first.compute_unit_price, 5_000,
        "the floor: nobody pays fees here"
    );
    assert_eq!(
        second.compute_unit_price, 10_000,
        "attempt 2 bids twice the first"
    );
    assert!(
        (300..=900).contains(&second.compute_unit_limit),
        "a transfer's and the two budget instructions' units with a 20% margin: {}",
        second.compute_unit_limit
    );
    assert_eq!(
        second.priority_fee,
        total_fee(second.compute_unit_limit, second.compute_unit_price)
    );
    // The message: v0, compute budget first, the written account from the table.
    let tx: solana_transaction::versioned::VersionedTransaction =
        wincode::deserialize(&second.transaction.bytes).expect("decodes");
    let solana_message::VersionedMessage::V0(message) = &tx.message else {
        panic!("not a v0 message");
    };
    let budget = Pubkey::from_str_const("ComputeBudget111111111111111111111111111111");
    let programs: Vec<Pubkey> = message
        .instructions
        .iter()
        .map(|ix| message.account_keys[usize::from(ix.program_id_index)])
        .collect();
    assert_eq!(&programs[..2], &[budget, budget]);
    assert_eq!(message.instructions[0].data[0], 2, "SetComputeUnitLimit");
    assert_eq!(message.instructions[1].data[0], 3, "SetComputeUnitPrice");
    assert_eq!(message.address_table_lookups.len(), 1);
    assert_eq!(message.address_table_lookups[0].account_key, table);
    assert!(
        !message.account_keys.contains(&pool),
        "looked up, not static"
    );
    // The life asked for, exactly from the blockhash's block.
    let last_valid = second.transaction.last_valid_block_height;
    let life = last_valid.saturating_sub(height);
    assert!(
        (u64::from(LIFE) - 3..=u64::from(LIFE) + 3).contains(&life),
        "{life} blocks of life, {LIFE} asked for"
    );
    let signed = wallet.sign(&second.transaction).expect("signed");
    chain.send(&signed).await.expect("sent");
    let status = confirmed(&chain, signed.signature).await;
    assert_eq!(status.error, None);
    let fill = chain
        .fill(signed.signature, Side::Sell)
        .await
        .expect("fill")
        .expect("landed");
    assert_eq!(
        fill.fee,
        Lamports::new(FEE + second.priority_fee.get()),
        "paid: the base fee plus the bid"
    );
    // Valid up to its last valid height, not after.
    let blockhash = Blockhash(signed.blockhash.0);
    loop {
        let now = chain.block_height().await.expect("height");
        let valid = chain
            .blockhash_valid(blockhash, 0)
            .await
            .expect("valid")
            .value;
        if now + 1 < last_valid {
            assert!(valid, "valid at height {now}, last valid {last_valid}");
        } else if now > last_valid {
            assert!(
                !valid,
                "still valid at height {now}, last valid {last_valid}"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A wallet of 2 SOL with a nonce account of its own; the chain, the assembler (its floor
/// of 5,000 micro-lamports per unit) and the nonce as it stands.
async fn nonce_setup(env: &Env) -> (KeypairSigner, Arc<SolanaChain>, Assembler, DurableNonce) {
    let wallet = funded_wallet(&env.rpc, 2 * SOL).await;
    let chain = Arc::new(direct(env, &wallet.pubkey()));
    let rent = chain
        .rent_exempt_minimum(kyzlo_adapters_solana::NONCE_ACCOUNT_SIZE)
        .await
        .expect("rent");
    let (account, _) = nonce::create_account(&chain, &wallet, rent)
        .await
        .expect("nonce account created");
    let account = NonceAccount(account.to_bytes());
    let value = chain
        .nonce(account, Commitment::Confirmed)
        .await
        .expect("read")
        .value
        .expect("initialized");
    let settings = AssembleSettings {
        fee_floor_micro_lamports: 5_000,
        ..AssembleSettings::default()
    };
    let assembler = Assembler::new(chain.clone(), wallet.pubkey(), Vec::new(), settings);
    (wallet, chain, assembler, DurableNonce { account, value })
}

/// A transfer of `lamports` to `to`, assembled on `nonce` and signed.
async fn transfer_on(
    assembler: &Assembler,
    wallet: &KeypairSigner,
    nonce: DurableNonce,
    to: &Pubkey,
    lamports: u64,
) -> kyzlo_application::ports::SignedTransaction {
    let instructions = [transfer(&wallet.pubkey(), to, lamports)];
    let assembled = assembler
        .assemble(&SwapPlan {
            instructions: &instructions,
            lookup_tables: &[],
            fee_cap: Lamports::new(10_000),
            attempt: 1,
            life_blocks: 20,
            nonce: Some(nonce),
        })
        .await
        .expect("assembled on the nonce (simulated with its advance)");
    assert_eq!(
        assembled.transaction.last_valid_block_height,
        kyzlo_application::ports::NO_LAST_VALID_HEIGHT
    );
    let signed = wallet.sign(&assembled.transaction).expect("signed");
    assert_eq!(signed.blockhash, nonce.value, "the nonce is the blockhash");
    signed
}

/// Sends `tx` every 300 ms (the same bytes, as the executor rebroadcasts them) until it
/// is confirmed.
async fn landed(
    chain: &SolanaChain,
    tx: &kyzlo_application::ports::SignedTransaction,
) -> kyzlo_application::ports::TxStatus {
    let started = Instant::now();
    loop {
        chain.send(tx).await.expect("sent");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let seen = chain
            .statuses(&[tx.signature], StatusLookup::Recent)
            .await
            .expect("statuses");
        if let Some(Some(status)) = seen.value.first()
            && status.commitment >= Commitment::Confirmed
        {
            return *status;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "not landed");
    }
}

async fn balance(env: &Env, account: &Pubkey) -> u64 {
    plain_client(&env.rpc)
        .get_balance(account)
        .await
        .expect("balance")
}

/// The nonce read on the validator (`None` for a missing account, refused for an account
/// that is no nonce or answers to another wallet); two transfers of different amounts on
/// the same value, both sent: exactly one lands, the other never does, and the value
/// moves on.
async fn two_transactions_on_one_nonce_value_land_at_most_once_and_the_value_moves_on(
    env: Arc<Env>,
) {
    let (wallet, chain, assembler, nonce) = nonce_setup(&env).await;
    let missing = chain
        .nonce(
            NonceAccount(Pubkey::new_unique().to_bytes()),
            Commitment::Confirmed,
        )
        .await
        .expect("a missing account is an answer");
    assert_eq!(missing.value, None);
    assert!(missing.context_slot > 0);
    let not_a_nonce = chain
        .nonce(
            NonceAccount(wallet.pubkey().to_bytes()),
            Commitment::Confirmed,
        )
        .await
        .expect_err("the wallet is no nonce account");
    assert_eq!(
        not_a_nonce.class,
        ErrorClass::InvalidAccount,
        "{not_a_nonce}"
    );
    let stranger = direct(&env, &Pubkey::new_unique());
    let theirs = stranger
        .nonce(nonce.account, Commitment::Processed)
        .await
        .expect_err("another wallet's view: not its authority");
    assert_eq!(theirs.class, ErrorClass::InvalidAccount, "{theirs}");

    let (one, two) = (Pubkey::new_unique(), Pubkey::new_unique());
    let first = transfer_on(&assembler, &wallet, nonce, &one, 1_000_000).await;
    let second = transfer_on(&assembler, &wallet, nonce, &two, 2_000_000).await;
    assert_ne!(first.signature, second.signature);
    let skipping = SolanaConfig {
        skip_preflight: true,
        ..config(vec![env.rpc.clone()])
    };
    let raw = chain_with(&skipping, &wallet.pubkey(), env.quote_mint);
    let (a, b) = tokio::join!(raw.send(&first), raw.send(&second));
    a.expect("forwarded");
    b.expect("forwarded");
    let started = Instant::now();
    let landed = loop {
        let seen = chain
            .statuses(&[first.signature, second.signature], StatusLookup::Recent)
            .await
            .expect("statuses")
            .value;
        if let Some(at) = seen
            .iter()
            .position(|s| s.is_some_and(|s| s.commitment >= Commitment::Confirmed))
        {
            break at;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "neither landed"
        );
        // The same bytes again, as the executor rebroadcasts them.
        let _ = raw.send(&first).await;
        let _ = raw.send(&second).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // Resent for a while: the other can never land now.
    for _ in 0..6 {
        let _ = raw.send(&first).await;
        let _ = raw.send(&second).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let seen = chain
        .statuses(
            &[first.signature, second.signature],
            StatusLookup::WithHistory,
        )
        .await
        .expect("statuses")
        .value;
    assert_eq!(seen[landed].and_then(|s| s.error), None, "landed cleanly");
    assert!(
        seen[1 - landed].is_none(),
        "the other never lands: {seen:?}"
    );
    let received = (balance(&env, &one).await, balance(&env, &two).await);
    let expected = if landed == 0 {
        (1_000_000, 0)
    } else {
        (0, 2_000_000)
    };
    assert_eq!(received, expected);
    let now = chain
        .nonce(nonce.account, Commitment::Confirmed)
        .await
        .expect("read")
        .value
        .expect("still a nonce");
    assert_ne!(now, nonce.value, "the landing advanced the nonce");
    // And the refused one stays refused with preflight too.
    let refused = chain.send(if landed == 0 { &second } else { &first }).await;
    assert_eq!(
        refused.expect_err("its value is gone").class,
        ErrorClass::BlockhashExpired
    );
}

/// A transfer on the nonce held back; a cancel (the advance alone) lands and pays its
/// bid; the transfer sent afterwards never lands.
async fn a_cancel_on_the_nonce_makes_the_transaction_held_back_unlandable(env: Arc<Env>) {
    let (wallet, chain, assembler, nonce) = nonce_setup(&env).await;
    let recipient = Pubkey::new_unique();
    let held_back = transfer_on(&assembler, &wallet, nonce, &recipient, 3_000_000).await;
    let cancel = assembler
        .cancel(nonce, Lamports::new(50_000))
        .expect("cancel compiled");
    assert!(cancel.priority_fee <= Lamports::new(50_000));
    assert!(cancel.priority_fee >= Lamports::new(49_000), "{cancel:?}");
    let cancel_tx = wallet.sign(&cancel.transaction).expect("signed");
    assert_eq!(cancel_tx.blockhash, nonce.value);
    let status = landed(&chain, &cancel_tx).await;
    assert_eq!(status.error, None, "the cancel's limit covers its units");
    let fill = chain
        .fill(cancel_tx.signature, Side::Sell)
        .await
        .expect("fill")
        .expect("landed");
    assert_eq!(
        fill.fee,
        Lamports::new(FEE + cancel.priority_fee.get()),
        "paid: the base fee plus the bid"
    );
    let now = chain
        .nonce(nonce.account, Commitment::Confirmed)
        .await
        .expect("read")
        .value
        .expect("still a nonce");
    assert_ne!(now, nonce.value);

    let error = chain
        .send(&held_back)
        .await
        .expect_err("its nonce value is gone");
    assert_eq!(error.class, ErrorClass::BlockhashExpired, "{error}");
    let skipping = SolanaConfig {
        skip_preflight: true,
        ..config(vec![env.rpc.clone()])
    };
    let raw = chain_with(&skipping, &wallet.pubkey(), env.quote_mint);
    for _ in 0..5 {
        let _ = raw.send(&held_back).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let seen = chain
        .statuses(&[held_back.signature], StatusLookup::WithHistory)
        .await
        .expect("statuses");
    assert_eq!(seen.value, vec![None], "never lands");
    assert_eq!(balance(&env, &recipient).await, 0);
}

/// Waits until the validator's RPC and faucet answer and it confirms blocks, then
/// creates the shared quote mint.
async fn prepare(url: &Url, within: Duration) -> Result<Pubkey, String> {
    let client = plain_client(url);
    let deadline = Instant::now() + within;
    loop {
        let confirming = client
            .get_block_height()
            .await
            .is_ok_and(|height| height >= 2);
        if confirming
            && client
                .request_airdrop(&Pubkey::new_unique(), 1_000_000)
                .await
                .is_ok()
        {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("validator not ready within {within:?}"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let payer = funded_wallet(url, SOL).await;
    let probe = chain_with(&config(vec![url.clone()]), &payer.pubkey(), NATIVE_MINT);
    Ok(create_mint(url, &probe, &payer).await)
}

fn panic_message(error: tokio::task::JoinError) -> String {
    match error.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "panicked".to_owned()),
        Err(error) => error.to_string(),
    }
}

fn summary(passed: usize, failed: usize, filtered: usize, started: Instant) {
    let verdict = if failed == 0 { "ok" } else { "FAILED" };
    println!(
        "\ntest result: {verdict}. {passed} passed; {failed} failed; 0 ignored; 0 measured; \
         {filtered} filtered out; finished in {:.2}s\n",
        started.elapsed().as_secs_f64()
    );
}

fn main() -> ExitCode {
    let started = Instant::now();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        for (name, _) in TESTS {
            println!("{name}: test");
        }
        return ExitCode::SUCCESS;
    }
    let filters: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .map(String::as_str)
        .collect();
    let selected: Vec<&(&str, Test)> = TESTS
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f)))
        .collect();
    let filtered = TESTS.len() - selected.len();
    if selected.is_empty() {
        println!("\nrunning 0 tests");
        summary(0, 0, filtered, started);
        return ExitCode::SUCCESS;
    }
    match cluster::ensure_isolated(&args) {
        Ok(cluster::Isolation::Here) => {}
        Ok(cluster::Isolation::RanInChild(code)) => return code,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::FAILURE;
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: no tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let validator = match cluster::Validator::start(VALIDATOR_ARGS) {
        Ok(validator) => validator,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::FAILURE;
        }
    };
    let prepared = runtime.block_on(prepare(&validator.rpc_url, Duration::from_secs(90)));
    let quote_mint = match prepared {
        Ok(mint) => mint,
        Err(message) => {
            eprintln!(
                "error: {message}; ledger {}; log tail:\n{}",
                validator.ledger().display(),
                validator.log_tail()
            );
            validator.stop();
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "validator ready after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!("\nrunning {} tests", selected.len());
    let env = Arc::new(Env {
        rpc: validator.rpc_url.clone(),
        quote_mint,
    });
    let (passed, failed) = runtime.block_on(async {
        let mut running: FuturesUnordered<_> = selected
            .iter()
            .map(|(name, test)| {
                let test = tokio::spawn(tokio::time::timeout(
                    Duration::from_secs(180),
                    test(env.clone()),
                ));
                async move {
                    let t = Instant::now();
                    (*name, test.await, t.elapsed())
                }
            })
            .collect();
        let (mut passed, mut failed) = (0, 0);
        while let Some((name, outcome, took)) = running.next().await {
            match outcome {
                Ok(Ok(())) => {
                    passed += 1;
                    println!("test {name} ... ok ({:.1} s)", took.as_secs_f64());
                }
                Ok(Err(_)) => {
                    failed += 1;
                    println!("test {name} ... FAILED (timed out)");
                }
                Err(error) => {
                    failed += 1;
                    println!("test {name} ... FAILED\n    {}", panic_message(error));
                }
            }
        }
        (passed, failed)
    });
    drop(runtime);
    validator.stop();
    summary(passed, failed, filtered, started);
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
