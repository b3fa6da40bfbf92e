//! kyzlo's Solana adapter: the [`Chain`](kyzlo_application::ports::Chain),
//! [`HealthProbe`](kyzlo_application::ports::HealthProbe) and
//! [`Signer`](kyzlo_application::ports::Signer) ports over `solana-client`'s nonblocking
//! `RpcClient`, with our own no-retry HTTP sender, several endpoints with cool-down and
//! failover, and every client error mapped to the domain's error classes.
//!
//! What this crate guarantees the exit executor:
//! - a call returns within the request timeout per endpoint tried: no hidden retries and
//!   no hidden waiting on `Retry-After` (a 429 comes back as `RateLimited` with it);
//! - sends carry `maxRetries: 0` and the exact signed bytes, so resending is the
//!   executor's choice and can never execute twice; with send lanes, those same bytes go
//!   to every lane at once ([`lanes`]);
//! - statuses tell "not found" (`None`) from "landed and failed" (`Some` with an error).
#![forbid(unsafe_code)]

pub mod assemble;
pub mod chain;
pub mod config;
pub mod endpoints;
pub mod error;
pub mod fees;
mod fill;
pub mod keypair;
pub mod lanes;
pub mod lookup;
pub mod nonce;
mod sender;
pub mod signer;

pub use assemble::{AssembleSettings, Assembled, Assembler, CHAIN_REQUESTS, SwapPlan};
pub use chain::{LatestBlockhash, STATUS_BATCH, SolanaChain};
pub use config::{NATIVE_MINT, SolanaConfig, TokenPair, endpoint_label};
pub use endpoints::EndpointStatus;
pub use error::{SolanaError, classify};
pub use fees::PriorityFee;
pub use keypair::{KeypairError, load_keypair};
pub use lanes::{
    LaneHeader, LaneProbe, LaneReach, LanesProbe, MAX_LANES, MAX_TIP_LAMPORTS, SendLane, Tip,
    probe_lanes, tip_instructions,
};
pub use nonce::{NONCE_ACCOUNT_SIZE, NonceInfo};
pub use sender::MAX_RESPONSE_BYTES;
pub use signer::KeypairSigner;

pub use reqwest::Url;
pub use solana_hash::Hash;
pub use solana_keypair::Keypair;
pub use solana_pubkey::Pubkey;
