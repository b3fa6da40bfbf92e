//! kyzlo's Jupiter adapter: quotes, swap transactions, swap instructions and prices from
//! Jupiter's HTTP API, over one `reqwest::Client` with connect and request timeouts and a
//! bounded body, every answer turned into a value or a typed [`JupiterError`] that maps to
//! the domain's error class.
//!
//! It implements the application's [`SwapRouter`](kyzlo_application::ports::SwapRouter)
//! (quote + swap) and [`PriceFeed`](kyzlo_application::ports::PriceFeed) ports. What it
//! never does: retry or sleep (the application's retry helper decides, from the class and
//! the retry-after this adapter reports), follow a redirect, sign, or log the API key.
#![forbid(unsafe_code)]

pub mod client;
pub mod config;
pub mod error;
pub mod http;
pub mod ports;
pub mod simulation;
pub mod transaction;
mod wire;

pub use client::{
    API_KEY_HEADER, JupiterClient, JupiterQuote, QuoteParams, SwapBuild, SwapInstructions,
    SwapParams, SwapTransaction, UsdPrices,
};
pub use config::{
    API_KEY_ENV, DEFAULT_BASE_URL, JupiterConfig, PriorityLevel, SOL_MINT, USDC_MINT,
};
pub use error::{BodyExcerpt, JupiterError, NoRouteCode, SimulatedFailure, TxCheckError};
