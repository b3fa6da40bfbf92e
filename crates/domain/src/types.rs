//! Value types with validated construction: an invalid price, amount or ratio cannot exist.

use core::fmt;
use core::time::Duration;

use crate::error::DomainError;

/// A strictly positive, finite price (quote units per base unit, e.g. USDC per SOL).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Price(f64);

impl Price {
    /// Builds a price.
    ///
    /// # Errors
    /// [`DomainError::InvalidPrice`] when `value` is NaN, infinite, zero or negative.
    pub fn new(value: f64) -> Result<Self, DomainError> {
        if value.is_finite() && value > 0.0 {
            Ok(Self(value))
        } else {
            Err(DomainError::InvalidPrice { value })
        }
    }

    /// The raw value.
    #[must_use]
    pub const fn get(self) -> f64 {
        self.0
    }

    /// Relative change from `reference` to `self` in basis points (negative when lower).
    #[must_use]
    pub fn change_bps_from(self, reference: Price) -> f64 {
        (self.0 / reference.0 - 1.0) * 10_000.0
    }

    /// This price moved by `bps` basis points (negative moves down); `None` if the result
    /// would not be a valid price (a move of -100% or more).
    #[must_use]
    pub fn moved_by_bps(self, bps: f64) -> Option<Price> {
        Price::new(self.0 * (1.0 + bps / 10_000.0)).ok()
    }
}

impl fmt::Display for Price {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An amount of a token in its base units (lamports for SOL, 10^-6 for USDC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TokenAmount(u64);

impl TokenAmount {
    /// Zero base units.
    pub const ZERO: TokenAmount = TokenAmount(0);

    /// Wraps a count of base units.
    #[must_use]
    pub const fn new(base_units: u64) -> Self {
        Self(base_units)
    }

    /// The count of base units.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }

    /// Whether the amount is zero.
    #[must_use]
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// Reads a decimal amount of the token as a person writes it (`1.5`, `0.000000001`)
    /// into base units, given the token's `decimals`, with checked arithmetic.
    ///
    /// # Errors
    /// [`DomainError::InvalidAmount`] naming why: not a plain decimal number, more
    /// decimal places than the token has, zero, or more base units than 64 bits hold.
    pub fn parse_decimal(text: &str, decimals: u8) -> Result<Self, DomainError> {
        let invalid = |why: &'static str| DomainError::InvalidAmount { why };
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if (whole.is_empty() && fraction.is_empty()) || !digits(whole) || !digits(fraction) {
            return Err(invalid("not a plain decimal number such as 1.5"));
        }
        if fraction.len() > usize::from(decimals) {
            return Err(invalid("more decimal places than the token has"));
        }
        let too_large = || invalid("more base units than 64 bits hold");
        let scale = 10u64
            .checked_pow(u32::from(decimals))
            .ok_or_else(too_large)?;
        let mut units: u64 = 0;
        for b in whole.bytes() {
            units = units
                .checked_mul(10)
                .and_then(|u| u.checked_add(u64::from(b - b'0')))
                .ok_or_else(too_large)?;
        }
        units = units.checked_mul(scale).ok_or_else(too_large)?;
        let mut part: u64 = 0;
        for b in fraction.bytes() {
            part = part * 10 + u64::from(b - b'0');
        }
        let padding = u32::from(decimals) - u32::try_from(fraction.len()).unwrap_or(0);
        part *= 10u64.pow(padding);
        units = units.checked_add(part).ok_or_else(too_large)?;
        if units == 0 {
            return Err(invalid("zero"));
        }
        Ok(Self(units))
    }

    /// `self - other`, or `None` when `other` is larger.
    #[must_use]
    pub const fn checked_sub(self, other: TokenAmount) -> Option<TokenAmount> {
        match self.0.checked_sub(other.0) {
            Some(v) => Some(TokenAmount(v)),
            None => None,
        }
    }

    /// `self + other`, or `None` on overflow.
    #[must_use]
    pub const fn checked_add(self, other: TokenAmount) -> Option<TokenAmount> {
        match self.0.checked_add(other.0) {
            Some(v) => Some(TokenAmount(v)),
            None => None,
        }
    }

    /// The part of this amount given by `fraction`, rounded down, never more than `self`.
    #[must_use]
    pub fn portion(self, fraction: Fraction) -> TokenAmount {
        let scaled = u128::from(self.0) * u128::from(fraction.bps().get()) / 10_000;
        // `scaled <= self.0` because the fraction is at most 10_000 bps.
        TokenAmount(u64::try_from(scaled).unwrap_or(self.0))
    }
}

impl fmt::Display for TokenAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A nonzero token amount: the size of an open position or an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Size(TokenAmount);

impl Size {
    /// Builds a size.
    ///
    /// # Errors
    /// [`DomainError::ZeroSize`] when `amount` is zero.
    pub const fn new(amount: TokenAmount) -> Result<Self, DomainError> {
        if amount.is_zero() {
            Err(DomainError::ZeroSize)
        } else {
            Ok(Self(amount))
        }
    }

    /// The amount.
    #[must_use]
    pub const fn amount(self) -> TokenAmount {
        self.0
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Lamports: SOL's base unit, used for fees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lamports(u64);

impl Lamports {
    /// Wraps a count of lamports.
    #[must_use]
    pub const fn new(lamports: u64) -> Self {
        Self(lamports)
    }

    /// The count of lamports.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }

    /// Saturating sum.
    #[must_use]
    pub const fn saturating_add(self, other: Lamports) -> Lamports {
        Lamports(self.0.saturating_add(other.0))
    }
}

impl fmt::Display for Lamports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} lamports", self.0)
    }
}

/// Basis points (1/100 of a percent), from 0 to 10,000 (100%).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Bps(u16);

impl Bps {
    /// 100%.
    pub const MAX: Bps = Bps(10_000);

    /// Builds a basis-point value.
    ///
    /// # Errors
    /// [`DomainError::BpsOutOfRange`] above 10,000.
    pub const fn new(bps: u16) -> Result<Self, DomainError> {
        if bps > 10_000 {
            Err(DomainError::BpsOutOfRange { bps: bps as u32 })
        } else {
            Ok(Self(bps))
        }
    }

    /// The number of basis points.
    #[must_use]
    pub const fn get(self) -> u16 {
        self.0
    }

    /// As a fraction of one (500 bps is 0.05).
    #[must_use]
    pub fn as_fraction(self) -> f64 {
        f64::from(self.0) / 10_000.0
    }
}

impl fmt::Display for Bps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bps", self.0)
    }
}

/// The worst price move a swap may accept, in basis points; never zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slippage(Bps);

impl Slippage {
    /// The tightest tolerance, 1 bps: what a transaction that swaps nothing records.
    pub const TIGHTEST: Slippage = Slippage(Bps(1));

    /// Builds a slippage tolerance.
    ///
    /// # Errors
    /// [`DomainError::InvalidSlippage`] for zero or more than 10,000 bps.
    pub const fn from_bps(bps: u16) -> Result<Self, DomainError> {
        if bps == 0 || bps > 10_000 {
            Err(DomainError::InvalidSlippage { bps: bps as u32 })
        } else {
            Ok(Self(Bps(bps)))
        }
    }

    /// The tolerance in basis points.
    #[must_use]
    pub const fn bps(self) -> Bps {
        self.0
    }
}

impl fmt::Display for Slippage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} slippage", self.0)
    }
}

/// A share of a position, greater than zero and at most all of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fraction(Bps);

impl Fraction {
    /// The whole position.
    pub const ALL: Fraction = Fraction(Bps::MAX);

    /// Builds a fraction from basis points of the position.
    ///
    /// # Errors
    /// [`DomainError::InvalidFraction`] for zero or more than 10,000 bps.
    pub const fn from_bps(bps: u16) -> Result<Self, DomainError> {
        if bps == 0 || bps > 10_000 {
            Err(DomainError::InvalidFraction { bps: bps as u32 })
        } else {
            Ok(Self(Bps(bps)))
        }
    }

    /// The fraction in basis points of the position.
    #[must_use]
    pub const fn bps(self) -> Bps {
        self.0
    }

    /// Whether this is the whole position.
    #[must_use]
    pub const fn is_all(self) -> bool {
        self.0.0 == 10_000
    }
}

/// Identifies one position for its whole life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PositionId(pub u64);

impl fmt::Display for PositionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pos-{}", self.0)
    }
}

/// Identifies one trade intent (an entry or one exit of a position); at most one
/// transaction per intent may ever land.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IntentId(pub u64);

impl fmt::Display for IntentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "intent-{}", self.0)
    }
}

/// A transaction signature: the chain's identifier of one signed transaction.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TxSignature(pub [u8; 64]);

impl fmt::Debug for TxSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TxSignature({self})")
    }
}

impl fmt::Display for TxSignature {
    /// The first eight bytes in hex: enough to tell signatures apart in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// A point on the caller's monotonic clock, in microseconds since an origin the caller
/// chooses. The domain never reads a clock: every rule takes `now` as an argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The origin.
    pub const ZERO: Timestamp = Timestamp(0);

    /// A timestamp `micros` microseconds after the origin.
    #[must_use]
    pub const fn from_micros(micros: u64) -> Self {
        Self(micros)
    }

    /// A timestamp `millis` milliseconds after the origin.
    #[must_use]
    pub const fn from_millis(millis: u64) -> Self {
        Self(millis.saturating_mul(1_000))
    }

    /// Microseconds since the origin.
    #[must_use]
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    #[must_use]
    pub const fn saturating_since(self, earlier: Timestamp) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }

    /// `self + d`, saturating at the end of time.
    #[must_use]
    pub fn saturating_add(self, d: Duration) -> Timestamp {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_add(micros))
    }

    /// `self - d`, saturating at the origin.
    #[must_use]
    pub fn saturating_sub(self, d: Duration) -> Timestamp {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_sub(micros))
    }
}

/// Whether a position is open.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PositionState {
    /// No position.
    Flat,
    /// Holding `size` of the base token bought at `entry_price`.
    Long {
        /// Amount held.
        size: Size,
        /// Average entry price.
        entry_price: Price,
    },
}

/// Why an exit is wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExitKind {
    /// The hard stop-loss leg fired.
    StopLoss,
    /// The trailing stop leg fired.
    TrailingStop,
    /// The breakeven stop leg fired.
    Breakeven,
    /// A partial take-profit rung fired.
    PartialTakeProfit,
    /// The final take-profit (the whole position) fired.
    TakeProfit,
    /// The strategy's own exit signal (the price reverted to the mean).
    Strategy,
    /// An emergency exit asked for by the system.
    Emergency,
    /// An operator's force-exit.
    Operator,
}

impl ExitKind {
    /// Every kind, for metrics labels and tables.
    pub const ALL: [ExitKind; 8] = [
        ExitKind::StopLoss,
        ExitKind::TrailingStop,
        ExitKind::Breakeven,
        ExitKind::PartialTakeProfit,
        ExitKind::TakeProfit,
        ExitKind::Strategy,
        ExitKind::Emergency,
        ExitKind::Operator,
    ];

    /// A stable snake_case name for logs, metrics and the journal.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            ExitKind::StopLoss => "stop_loss",
            ExitKind::TrailingStop => "trailing_stop",
            ExitKind::Breakeven => "breakeven",
            ExitKind::PartialTakeProfit => "partial_take_profit",
            ExitKind::TakeProfit => "take_profit",
            ExitKind::Strategy => "strategy",
            ExitKind::Emergency => "emergency",
            ExitKind::Operator => "operator",
        }
    }

    /// Whether the kind protects capital (a stop), as opposed to taking profit.
    #[must_use]
    pub const fn is_protective(self) -> bool {
        matches!(
            self,
            ExitKind::StopLoss
                | ExitKind::TrailingStop
                | ExitKind::Breakeven
                | ExitKind::Emergency
                | ExitKind::Operator
        )
    }
}

impl fmt::Display for ExitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request to leave (part of) a position.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExitIntent {
    pub kind: ExitKind,
    /// How much of the position.
    pub fraction: Fraction,
    /// The price that triggered it.
    pub trigger_price: Price,
}

/// What the strategy or an exit plan wants done.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TradeIntent {
    /// Open a long position at about `price`.
    Enter {
        /// The price that triggered the entry.
        price: Price,
    },
    /// Leave (part of) the position.
    Exit(ExitIntent),
    /// Do nothing.
    Hold,
}

#[cfg(test)]
mod tests {
    #[test]
    fn decimal_amounts_are_read_exactly_and_bad_ones_refused() {
        let ok = [
            ("1.5", 9, 1_500_000_000),
            ("0.000000001", 9, 1),
            ("18446744073.709551615", 9, u64::MAX),
            ("2", 6, 2_000_000),
            (".5", 6, 500_000),
            ("7.", 0, 7),
        ];
        for (text, decimals, units) in ok {
            assert_eq!(
                TokenAmount::parse_decimal(text, decimals),
                Ok(TokenAmount::new(units)),
                "{text}"
            );
        }
        let bad = [
            ("0.0000000001", 9, "more decimal places"),
            ("0", 9, "zero"),
            ("0.000", 9, "zero"),
            ("18446744073.709551616", 9, "64 bits"),
            ("1e300", 9, "plain decimal"),
            ("-1", 9, "plain decimal"),
            ("nan", 9, "plain decimal"),
            ("", 9, "plain decimal"),
            (".", 9, "plain decimal"),
            ("1,5", 9, "plain decimal"),
            ("99999999999999999999999", 0, "64 bits"),
            ("1", 20, "64 bits"),
        ];
        for (text, decimals, why) in bad {
            let e = TokenAmount::parse_decimal(text, decimals).unwrap_err();
            assert!(e.to_string().contains(why), "{text}: {e}");
        }
    }

    use super::*;

    #[test]
    fn price_rejects_nan_infinite_zero_and_negative() {
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0, -0.0, -1.0] {
            assert!(Price::new(v).is_err(), "{v} accepted");
        }
        assert_eq!(Price::new(42.5).map(Price::get), Ok(42.5));
    }

    #[test]
    fn size_rejects_zero() {
        assert_eq!(Size::new(TokenAmount::ZERO), Err(DomainError::ZeroSize));
        assert!(Size::new(TokenAmount::new(1)).is_ok());
    }

    #[test]
    fn bps_slippage_and_fraction_ranges() {
        assert!(Bps::new(10_001).is_err());
        assert!(Bps::new(0).is_ok());
        assert!(Slippage::from_bps(0).is_err());
        assert!(Slippage::from_bps(10_001).is_err());
        assert!(Slippage::from_bps(100).is_ok());
        assert!(Fraction::from_bps(0).is_err());
        assert!(Fraction::from_bps(10_000).is_ok_and(Fraction::is_all));
    }

    #[test]
    fn portion_rounds_down_and_never_exceeds_the_whole() {
        let a = TokenAmount::new(1_000_000_001);
        let half = Fraction::from_bps(5_000).unwrap();
        assert_eq!(a.portion(half), TokenAmount::new(500_000_000));
        assert_eq!(a.portion(Fraction::ALL), a);
        assert_eq!(
            TokenAmount::new(u64::MAX).portion(Fraction::ALL).get(),
            u64::MAX
        );
    }

    #[test]
    fn price_moves_in_bps() {
        let p = Price::new(100.0).unwrap();
        assert!((p.change_bps_from(Price::new(95.0).unwrap()) - 526.315).abs() < 0.01);
        assert_eq!(p.moved_by_bps(-500.0).map(Price::get), Some(95.0));
        assert_eq!(p.moved_by_bps(-10_000.0), None);
    }

    #[test]
    fn timestamps_saturate() {
        let t = Timestamp::from_millis(5);
        assert_eq!(
            t.saturating_since(Timestamp::from_millis(7)),
            Duration::ZERO
        );
        assert_eq!(
            t.saturating_add(Duration::from_millis(3)),
            Timestamp::from_millis(8)
        );
        assert_eq!(
            Timestamp::from_micros(u64::MAX)
                .saturating_add(Duration::MAX)
                .as_micros(),
            u64::MAX
        );
    }
}
