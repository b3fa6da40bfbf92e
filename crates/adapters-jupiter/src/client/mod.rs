//! [`JupiterClient`]: one `reqwest::Client`, built once, and the four endpoints on it.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use kyzlo_application::ports::UnsignedTransaction;
use kyzlo_domain::{Lamports, Price, Slippage, TokenAmount};
use reqwest::Url;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use solana_transaction::{AccountMeta, Address, Instruction};

use crate::config::JupiterConfig;
use crate::error::{BodyExcerpt, JupiterError, TxCheckError};
use crate::http::{self, JsonBody};
use crate::transaction;
use crate::wire;

mod build;
mod decode;

pub use build::SwapBuild;
use decode::*;

/// The header the API key travels in.
pub const API_KEY_HEADER: &str = "x-api-key";

/// `swapMode` of every quote: the input amount is exact.
const SWAP_MODE_EXACT_IN: &str = "ExactIn";

/// What to quote: `amount` of `input_mint` into `output_mint`, exact input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuoteParams<'a> {
    /// Base58 mint spent.
    pub input_mint: &'a str,
    /// Base58 mint received.
    pub output_mint: &'a str,
    /// Exact input in base units of `input_mint`.
    pub amount: TokenAmount,
    /// Slippage tolerance (`slippageBps`).
    pub slippage: Slippage,
}

/// A checked `/swap/v1/quote` answer.
#[derive(Debug, Clone, PartialEq)]
pub struct JupiterQuote {
    /// Base58 mint spent.
    pub input_mint: String,
    /// Exact input in base units.
    pub in_amount: TokenAmount,
    /// Base58 mint received.
    pub output_mint: String,
    /// Expected output in base units.
    pub out_amount: TokenAmount,
    /// Least output the swap accepts (expected output less slippage).
    pub other_amount_threshold: TokenAmount,
    /// Slippage tolerance the quote was priced with, in bps.
    pub slippage_bps: u32,
    /// Jupiter's `priceImpactPct`, as sent.
    pub price_impact_pct: f64,
    /// The AMM label of each hop, in order.
    pub route_labels: Vec<String>,
    /// The slot the quote was priced at, when sent.
    pub context_slot: Option<u64>,
    /// The answer's bytes exactly as received, to post back to `/swap` unchanged.
    pub raw: Arc<[u8]>,
}

impl JupiterQuote {
    /// The hops' labels joined by `" > "`, e.g. `"Scorch > Deriverse"`.
    #[must_use]
    pub fn route_label(&self) -> String {
        self.route_labels.join(" > ")
    }
}

/// What to build a swap from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwapParams<'a> {
    /// The quote answer's bytes exactly as received ([`JupiterQuote::raw`]).
    pub quote_response: &'a [u8],
    /// This attempt's priority fee: the cap of a level-priced fee, or the exact fee (see
    /// [`JupiterConfig::priority_level`]).
    pub priority_fee: Lamports,
    /// `blockhashSlotsToExpiry`: how many slots the transaction may live.
    pub expiry_slots: Option<u32>,
}

/// A checked `/swap/v1/swap` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapTransaction {
    /// The unsigned transaction, its fee payer our wallet, and its last valid block height.
    pub transaction: UnsignedTransaction,
    /// The priority fee Jupiter put in, when it said.
    pub prioritization_fee_lamports: Option<u64>,
    /// The compute-unit limit Jupiter set, when it said.
    pub compute_unit_limit: Option<u32>,
}

/// A checked `/swap/v1/swap-instructions` answer, for composing a transaction ourselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwapInstructions {
    /// Compute-budget instructions (limit and price).
    pub compute_budget: Vec<Instruction>,
    /// Account set-up (token accounts, SOL wrapping).
    pub setup: Vec<Instruction>,
    /// The token-ledger instruction, when requested.
    pub token_ledger: Option<Instruction>,
    /// The swap itself.
    pub swap: Instruction,
    /// Clean-up (SOL unwrapping).
    pub cleanup: Option<Instruction>,
    /// Anything else Jupiter wants included (e.g. a tip).
    pub other: Vec<Instruction>,
    /// Address lookup tables the instructions need.
    pub address_lookup_tables: Vec<Address>,
    /// The priority fee Jupiter priced, when it said.
    pub prioritization_fee_lamports: Option<u64>,
    /// The compute-unit limit Jupiter priced, when it said.
    pub compute_unit_limit: Option<u32>,
}

/// A `/price/v3` answer: USD prices by mint, as sent (not yet validated).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UsdPrices {
    entries: HashMap<String, Option<f64>>,
}

impl UsdPrices {
    /// The validated USD price of `mint`.
    ///
    /// # Errors
    /// [`JupiterError::PriceMissing`] when the answer has no price for `mint`;
    /// [`JupiterError::InvalidPrice`] when it is zero, negative or not finite.
    pub fn usd_price(&self, mint: &str) -> Result<Price, JupiterError> {
        let value = self.entries.get(mint).copied().flatten().ok_or_else(|| {
            JupiterError::PriceMissing {
                mint: mint.to_owned(),
            }
        })?;
        Price::new(value).map_err(|_| JupiterError::InvalidPrice {
            mint: mint.to_owned(),
            value,
        })
    }

    /// How many mints the answer has entries for.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the answer has no entries.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The endpoint URLs, resolved once.
#[derive(Debug, Clone)]
struct Endpoints {
    quote: Url,
    swap: Url,
    swap_instructions: Url,
    build: Url,
    price: Url,
}

impl Endpoints {
    fn new(base_url: &str) -> Result<Self, JupiterError> {
        let base = base_url.trim_end_matches('/');
        let parse = |path: &str| {
            let url = Url::parse(&format!("{base}{path}")).map_err(|e| JupiterError::Config {
                field: "base_url",
                reason: e.to_string(),
            })?;
            if !matches!(url.scheme(), "http" | "https")
                || url.query().is_some()
                || url.fragment().is_some()
            {
                return Err(JupiterError::Config {
                    field: "base_url",
                    reason: "must be an http(s) URL without a query or fragment".to_owned(),
                });
            }
            Ok(url)
        };
        Ok(Self {
            quote: parse("/swap/v1/quote")?,
            swap: parse("/swap/v1/swap")?,
            swap_instructions: parse("/swap/v1/swap-instructions")?,
            build: parse("/swap/v2/build")?,
            price: parse("/price/v3")?,
        })
    }
}

/// Jupiter over one pooled HTTP client with connect and request timeouts, bounded bodies
/// and typed errors.
#[derive(Debug, Clone)]
pub struct JupiterClient {
    http: reqwest::Client,
    endpoints: Endpoints,
    config: JupiterConfig,
    wallet_base58: String,
}

impl JupiterClient {
    /// Validates `config` and builds the HTTP client.
    ///
    /// # Errors
    /// [`JupiterError::Config`] naming the field: a base URL that is not http(s), a mint
    /// that is not a base58 32-byte key, a zero timeout or body limit, a DEX label with a
    /// comma, an API key that cannot be a header value.
    pub fn new(config: JupiterConfig) -> Result<Self, JupiterError> {
        let endpoints = Endpoints::new(&config.base_url)?;
        check_mint("base_mint", &config.base_mint)?;
        check_mint("quote_mint", &config.quote_mint)?;
        if config.base_mint == config.quote_mint {
            return Err(config_error("quote_mint", "must differ from base_mint"));
        }
        if config.connect_timeout.is_zero() {
            return Err(config_error("connect_timeout", "must be above zero"));
        }
        if config.request_timeout.is_zero() {
            return Err(config_error("request_timeout", "must be above zero"));
        }
        if config.max_body_bytes == 0 {
            return Err(config_error("max_body_bytes", "must be above zero"));
        }
        if config
            .exclude_dexes
            .iter()
            .any(|dex| dex.is_empty() || dex.contains(','))
        {
            return Err(config_error(
                "exclude_dexes",
                "labels must be non-empty and hold no comma",
            ));
        }

        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(key) = &config.api_key {
            // The error must not echo the key.
            let mut value = HeaderValue::from_str(key)
                .ok()
                .filter(|_| !key.trim().is_empty())
                .ok_or_else(|| {
                    config_error(
                        "api_key",
                        "must be non-blank visible ASCII (value not shown)",
                    )
                })?;
            value.set_sensitive(true);
            headers.insert(HeaderName::from_static(API_KEY_HEADER), value);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            // A redirect would carry the API key to another host.
            .redirect(reqwest::redirect::Policy::none())
            .default_headers(headers)
            .user_agent(concat!("kyzlo/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| config_error("http_client", &e.to_string()))?;
        let wallet_base58 = bs58::encode(config.wallet.0).into_string();
        Ok(Self {
            http,
            endpoints,
            config,
            wallet_base58,
        })
    }

    /// The configuration it was built from.
    #[must_use]
    pub fn config(&self) -> &JupiterConfig {
        &self.config
    }

    /// `GET /swap/v1/quote`: an exact-input route, checked against what was asked.
    ///
    /// # Errors
    /// [`JupiterError::NoRoute`] when Jupiter has none for this size; the HTTP, transport
    /// and decode errors; [`JupiterError::QuoteMismatch`] when the answer is for another
    /// mint, amount, mode or slippage.
    pub async fn quote(&self, params: &QuoteParams<'_>) -> Result<JupiterQuote, JupiterError> {
        let mut url = self.endpoints.quote.clone();
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("inputMint", params.input_mint)
                .append_pair("outputMint", params.output_mint)
                .append_pair("amount", &params.amount.get().to_string())
                .append_pair("slippageBps", &params.slippage.bps().get().to_string())
                .append_pair("swapMode", SWAP_MODE_EXACT_IN)
                .append_pair(
                    "restrictIntermediateTokens",
                    bool_str(self.config.restrict_intermediate_tokens),
                )
                .append_pair("onlyDirectRoutes", bool_str(self.config.only_direct_routes));
            if let Some(max_accounts) = self.config.max_accounts {
                query.append_pair("maxAccounts", &max_accounts.to_string());
            }
            if !self.config.exclude_dexes.is_empty() {
                query.append_pair("excludeDexes", &self.config.exclude_dexes.join(","));
            }
        }
        let body = self.exchange(self.http.get(url), "jupiter.quote").await?;
        let wire: wire::QuoteWire = decode_json(&body)?;
        let quote = JupiterQuote {
            in_amount: parse_amount(&body, "inAmount", &wire.in_amount)?,
            out_amount: parse_amount(&body, "outAmount", &wire.out_amount)?,
            other_amount_threshold: parse_amount(
                &body,
                "otherAmountThreshold",
                &wire.other_amount_threshold,
            )?,
            price_impact_pct: parse_number(&body, "priceImpactPct", &wire.price_impact_pct)?,
            route_labels: wire
                .route_plan
                .into_iter()
                .map(|step| step.swap_info.label.unwrap_or_else(|| "?".to_owned()))
                .collect(),
            input_mint: wire.input_mint,
            output_mint: wire.output_mint,
            slippage_bps: wire.slippage_bps,
            context_slot: wire.context_slot,
            raw: Arc::from(body.bytes),
        };
        check_quote(&quote, params, &wire.swap_mode)?;
        Ok(quote)
    }

    /// `POST /swap/v1/swap`: the unsigned swap transaction for a quote, checked (one
    /// sanitary versioned transaction, empty signature slots, our wallet paying).
    ///
    /// # Errors
    /// [`JupiterError::InvalidQuote`] when `quote_response` is not JSON (nothing is sent);
    /// [`JupiterError::Simulation`] when Jupiter's simulation failed;
    /// [`JupiterError::Transaction`] when the transaction fails a check; the HTTP,
    /// transport and decode errors.
    pub async fn swap(&self, params: &SwapParams<'_>) -> Result<SwapTransaction, JupiterError> {
        let request = self.swap_request(&self.endpoints.swap, params)?;
        let body = self.exchange(request, "jupiter.swap").await?;
        let wire: wire::SwapWire = decode_json(&body)?;
        if let Some(simulation) = wire.simulation_error {
            return Err(simulation_error(simulation));
        }
        let text = wire
            .swap_transaction
            .ok_or_else(|| missing_field(&body, "swapTransaction"))?;
        let last_valid_block_height = wire
            .last_valid_block_height
            .ok_or_else(|| missing_field(&body, "lastValidBlockHeight"))?;
        let bytes = transaction::decode_and_check(&text, &self.config.wallet.0)?;
        Ok(SwapTransaction {
            transaction: UnsignedTransaction {
                bytes,
                last_valid_block_height,
                priority_fee: wire.prioritization_fee_lamports.map(Lamports::new),
            },
            prioritization_fee_lamports: wire.prioritization_fee_lamports,
            compute_unit_limit: wire.compute_unit_limit,
        })
    }

    /// `POST /swap/v1/swap-instructions`: the swap's instructions, to compose a transaction
    /// ourselves. Every account an instruction wants a signature from must be our wallet.
    ///
    /// # Errors
    /// As [`JupiterClient::swap`]; [`JupiterError::Decode`] for a key or data field that
    /// does not decode; [`TxCheckError::ForeignSigner`] for a signer other than our wallet.
    pub async fn swap_instructions(
        &self,
        params: &SwapParams<'_>,
    ) -> Result<SwapInstructions, JupiterError> {
        let request = self.swap_request(&self.endpoints.swap_instructions, params)?;
        let body = self.exchange(request, "jupiter.swap_instructions").await?;
        let wire: wire::SwapInstructionsWire = decode_json(&body)?;
        if let Some(simulation) = wire.simulation_error {
            return Err(simulation_error(simulation));
        }
        let convert = |ix: wire::InstructionWire| self.instruction(&body, ix);
        let convert_all = |list: Vec<wire::InstructionWire>| {
            list.into_iter().map(convert).collect::<Result<Vec<_>, _>>()
        };
        let swap = wire
            .swap_instruction
            .ok_or_else(|| missing_field(&body, "swapInstruction"))?;
        Ok(SwapInstructions {
            compute_budget: convert_all(wire.compute_budget_instructions)?,
            setup: convert_all(wire.setup_instructions)?,
            token_ledger: wire.token_ledger_instruction.map(convert).transpose()?,
            swap: convert(swap)?,
            cleanup: wire.cleanup_instruction.map(convert).transpose()?,
            other: convert_all(wire.other_instructions)?,
            address_lookup_tables: wire
                .address_lookup_table_addresses
                .iter()
                .map(|key| parse_address(&body, "addressLookupTableAddresses", key))
                .collect::<Result<_, _>>()?,
            prioritization_fee_lamports: wire.prioritization_fee_lamports,
            compute_unit_limit: wire.compute_unit_limit,
        })
    }

    /// `GET /price/v3?ids=`: USD prices of `ids` (base58 mints). No ids, no request.
    ///
    /// # Errors
    /// The HTTP, transport and decode errors; validation of each price is left to
    /// [`UsdPrices::usd_price`].
    pub async fn prices(&self, ids: &[&str]) -> Result<UsdPrices, JupiterError> {
        if ids.is_empty() {
            return Ok(UsdPrices::default());
        }
        let mut url = self.endpoints.price.clone();
        url.query_pairs_mut().append_pair("ids", &ids.join(","));
        let body = self.exchange(self.http.get(url), "jupiter.price").await?;
        let wire: wire::PricesWire = decode_json(&body)?;
        Ok(UsdPrices {
            entries: wire
                .into_iter()
                .map(|(mint, entry)| (mint, entry.and_then(|e| e.usd_price)))
                .collect(),
        })
    }

    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
        operation: &'static str,
    ) -> Result<JsonBody, JupiterError> {
        let outcome = http::exchange(
            request,
            operation,
            self.config.max_body_bytes,
            self.config.request_timeout,
        )
        .await;
        if let Err(error) = &outcome {
            tracing::warn!(operation, class = %error.class(), %error, "jupiter call failed");
        }
        outcome
    }

    fn swap_request(
        &self,
        url: &Url,
        params: &SwapParams<'_>,
    ) -> Result<reqwest::RequestBuilder, JupiterError> {
        let quote_response: &RawValue =
            serde_json::from_slice(params.quote_response).map_err(|e| {
                JupiterError::InvalidQuote {
                    reason: e.to_string(),
                }
            })?;
        let fee = params.priority_fee.get();
        let body = wire::SwapBodyWire {
            user_public_key: &self.wallet_base58,
            quote_response,
            wrap_and_unwrap_sol: self.config.wrap_and_unwrap_sol,
            dynamic_compute_unit_limit: self.config.dynamic_compute_unit_limit,
            prioritization_fee_lamports: match self.config.priority_level {
                Some(level) => wire::PrioritizationFeeWire::Capped {
                    capped: wire::CappedFeeWire {
                        priority_level: level.as_str(),
                        max_lamports: fee,
                    },
                },
                None => wire::PrioritizationFeeWire::Lamports(fee),
            },
            blockhash_slots_to_expiry: params.expiry_slots,
        };
        let bytes = serde_json::to_vec(&body).map_err(|e| JupiterError::InvalidQuote {
            reason: e.to_string(),
        })?;
        Ok(self
            .http
            .post(url.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(bytes))
    }

    fn instruction(
        &self,
        body: &JsonBody,
        ix: wire::InstructionWire,
    ) -> Result<Instruction, JupiterError> {
        let accounts = ix
            .accounts
            .iter()
            .map(|meta| {
                let pubkey = parse_address(body, "accounts.pubkey", &meta.pubkey)?;
                if meta.is_signer && pubkey.as_array() != &self.config.wallet.0 {
                    return Err(JupiterError::Transaction(TxCheckError::ForeignSigner {
                        account: meta.pubkey.clone(),
                    }));
                }
                Ok(AccountMeta {
                    pubkey,
                    is_signer: meta.is_signer,
                    is_writable: meta.is_writable,
                })
            })
            .collect::<Result<Vec<_>, JupiterError>>()?;
        let data = STANDARD
            .decode(&ix.data)
            .map_err(|e| decode_error(body, format!("instruction data: {e}")))?;
        Ok(Instruction {
            program_id: parse_address(body, "programId", &ix.program_id)?,
            accounts,
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kyzlo_application::ports::WalletAddress;
    use std::time::Duration;

    fn config() -> JupiterConfig {
        JupiterConfig::new(WalletAddress([7; 32]))
    }

    #[test]
    fn default_config_builds() {
        assert!(JupiterClient::new(config()).is_ok());
    }

    #[test]
    fn bad_configs_are_refused_naming_the_field() {
        type Edit = fn(&mut JupiterConfig);
        let cases: [(&str, Edit); 12] = [
            ("base_url", |c| c.base_url = "not a url".into()),
            ("base_url", |c| c.base_url = "http://127.0.0.1:9?x=1".into()),
            ("base_url", |c| c.base_url = "http://127.0.0.1:9#top".into()),
            ("base_url", |c| c.base_url = "ftp://api.jup.ag".into()),
            ("base_mint", |c| c.base_mint = "abc".into()),
            ("quote_mint", |c| c.quote_mint = "0OIl".into()),
            ("quote_mint", |c| c.quote_mint = c.base_mint.clone()),
            ("connect_timeout", |c| c.connect_timeout = Duration::ZERO),
            ("request_timeout", |c| c.request_timeout = Duration::ZERO),
            ("max_body_bytes", |c| c.max_body_bytes = 0),
            ("exclude_dexes", |c| c.exclude_dexes = vec!["A,B".into()]),
            ("api_key", |c| c.api_key = Some("line\nbreak".into())),
        ];
        for (field, edit) in cases {
            let mut config = config();
            edit(&mut config);
            match JupiterClient::new(config) {
                Err(JupiterError::Config { field: got, .. }) => assert_eq!(got, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_refused_api_key_is_not_echoed() {
        let mut config = config();
        config.api_key = Some("secret\u{7f}value".into());
        let err = JupiterClient::new(config).unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
        assert!(!format!("{err:?}").contains("secret"), "{err:?}");
    }

    #[test]
    fn endpoints_keep_a_base_path_prefix() {
        let endpoints = Endpoints::new("http://127.0.0.1:9/jup/").unwrap();
        assert_eq!(
            endpoints.quote.as_str(),
            "http://127.0.0.1:9/jup/swap/v1/quote"
        );
        assert_eq!(endpoints.price.as_str(), "http://127.0.0.1:9/jup/price/v3");
    }

    #[test]
    fn usd_price_refuses_missing_null_zero_negative_and_infinite() {
        let prices = UsdPrices {
            entries: HashMap::from([
                ("ok".to_owned(), Some(147.25)),
                ("null".to_owned(), None),
                ("zero".to_owned(), Some(0.0)),
                ("negative".to_owned(), Some(-1.0)),
                ("infinite".to_owned(), Some(f64::INFINITY)),
                ("nan".to_owned(), Some(f64::NAN)),
            ]),
        };
        assert_eq!(prices.usd_price("ok").unwrap().get(), 147.25);
        for mint in ["missing", "null"] {
            assert!(matches!(
                prices.usd_price(mint),
                Err(JupiterError::PriceMissing { .. })
            ));
        }
        for mint in ["zero", "negative", "infinite", "nan"] {
            assert!(matches!(
                prices.usd_price(mint),
                Err(JupiterError::InvalidPrice { .. })
            ));
        }
    }
}
