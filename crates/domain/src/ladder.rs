//! The escalation ladder: the slippage, priority fee and order style of each exit
//! attempt, widening from a limit-like first attempt to a market exit.

use core::fmt;

use crate::error::DomainError;
use crate::types::{Lamports, Slippage};

/// How an exit attempt is priced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStyle {
    /// A tight slippage tolerance: the best price, or no fill.
    LimitLike,
    /// A wide tolerance: get out, at up to the rung's slippage.
    Market,
}

impl OrderStyle {
    /// A stable name for logs, metrics and the journal: `"limit"` or `"market"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            OrderStyle::LimitLike => "limit",
            OrderStyle::Market => "market",
        }
    }
}

impl fmt::Display for OrderStyle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The terms of one exit attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rung {
    /// The slippage tolerance quoted with.
    pub slippage: Slippage,
    /// The priority fee paid.
    pub priority_fee: Lamports,
    /// The order style.
    pub style: OrderStyle,
}

/// Bps as a compile-time slippage; a bad constant fails the build, never a run.
const fn slippage(bps: u16) -> Slippage {
    match Slippage::from_bps(bps) {
        Ok(s) => s,
        Err(_) => panic!("slippage constant out of range"),
    }
}

/// The default first rung: 1% slippage, a normal priority fee, limit-like.
const DEFAULT_FIRST: Rung = Rung {
    slippage: slippage(100),
    priority_fee: Lamports::new(50_000),
    style: OrderStyle::LimitLike,
};

/// The default later rung: 5% slippage, a higher priority fee, market.
const DEFAULT_MARKET: Rung = Rung {
    slippage: slippage(500),
    priority_fee: Lamports::new(500_000),
    style: OrderStyle::Market,
};

/// The rungs of exit attempts 1, 2, …; attempts past the last rung stay on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EscalationLadder {
    rungs: Vec<Rung>,
    max_slippage: Slippage,
}

impl EscalationLadder {
    /// The default cap on any rung's slippage: 5%.
    pub const DEFAULT_MAX_SLIPPAGE: Slippage = slippage(500);

    /// Builds a ladder.
    ///
    /// # Errors
    /// [`DomainError::InvalidConfig`] on `exit_ladder.rungs` when there are no rungs, when
    /// slippage or priority fee decreases from one rung to the next, or when a rung's
    /// slippage exceeds `max_slippage`.
    pub fn new(rungs: Vec<Rung>, max_slippage: Slippage) -> Result<Self, DomainError> {
        let invalid = |expected| {
            Err(DomainError::InvalidConfig {
                field: "exit_ladder.rungs",
                expected,
            })
        };
        if rungs.is_empty() {
            return invalid("at least one rung");
        }
        if rungs.iter().any(|r| r.slippage > max_slippage) {
            return invalid("every rung's slippage at most exit_ladder.max_slippage");
        }
        for pair in rungs.windows(2) {
            if let [lower, upper] = pair {
                if upper.slippage < lower.slippage {
                    return invalid("slippage non-decreasing from rung to rung");
                }
                if upper.priority_fee < lower.priority_fee {
                    return invalid("priority fee non-decreasing from rung to rung");
                }
            }
        }
        Ok(Self {
            rungs,
            max_slippage,
        })
    }

    /// The default ladder: attempt 1 limit-like at 1% slippage and 50,000 lamports of
    /// priority fee; later attempts market at 5% and 500,000 lamports.
    #[must_use]
    pub fn default_ladder() -> Self {
        Self {
            rungs: vec![DEFAULT_FIRST, DEFAULT_MARKET],
            max_slippage: Self::DEFAULT_MAX_SLIPPAGE,
        }
    }

    /// The rung of `attempt` (from 1; 0 is treated as 1); attempts past the last rung
    /// get the last rung.
    #[must_use]
    pub fn rung(&self, attempt: u32) -> Rung {
        let index = usize::try_from(attempt.saturating_sub(1)).unwrap_or(usize::MAX);
        match self.rungs.get(index).or_else(|| self.rungs.last()) {
            Some(rung) => *rung,
            // Unreachable: `new` refuses an empty ladder.
            None => DEFAULT_FIRST,
        }
    }

    /// The rung of `attempt` (from 1) of an exit placed as `style`: a market-style exit
    /// (a stop-loss) starts at the ladder's first market rung, never at a tight
    /// limit-like one; a limit-like exit starts at the first rung. A ladder with no
    /// market rung starts a market exit at its last rung.
    #[must_use]
    pub fn rung_for(&self, style: OrderStyle, attempt: u32) -> Rung {
        let start = match style {
            OrderStyle::LimitLike => 0,
            OrderStyle::Market => self
                .rungs
                .iter()
                .position(|r| r.style == OrderStyle::Market)
                .unwrap_or(self.rungs.len().saturating_sub(1)),
        };
        let start = u32::try_from(start).unwrap_or(u32::MAX);
        self.rung(attempt.max(1).saturating_add(start))
    }

    /// The ladder's widest rung alone: what an exit that must not be tight (a stop
    /// retried while trading is halted) runs on.
    #[must_use]
    pub fn widest(&self) -> Self {
        Self {
            rungs: self.rungs.last().copied().into_iter().collect(),
            max_slippage: self.max_slippage,
        }
    }

    /// Every rung, first attempt first.
    #[must_use]
    pub fn rungs(&self) -> &[Rung] {
        &self.rungs
    }

    /// The cap no rung's slippage may exceed.
    #[must_use]
    pub fn max_slippage(&self) -> Slippage {
        self.max_slippage
    }
}

impl Default for EscalationLadder {
    fn default() -> Self {
        Self::default_ladder()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_market_exit_starts_at_the_first_market_rung() {
        let ladder = EscalationLadder::default_ladder();
        assert_eq!(ladder.rung_for(OrderStyle::LimitLike, 1), DEFAULT_FIRST);
        assert_eq!(ladder.rung_for(OrderStyle::LimitLike, 2), DEFAULT_MARKET);
        assert_eq!(ladder.rung_for(OrderStyle::Market, 1), DEFAULT_MARKET);
        assert_eq!(ladder.rung_for(OrderStyle::Market, 5), DEFAULT_MARKET);
        let limits_only = EscalationLadder::new(
            vec![
                DEFAULT_FIRST,
                Rung {
                    slippage: slippage(200),
                    ..DEFAULT_FIRST
                },
            ],
            slippage(500),
        )
        .unwrap();
        assert_eq!(
            limits_only.rung_for(OrderStyle::Market, 1).slippage,
            slippage(200)
        );
    }

    fn rung(bps: u16, fee: u64, style: OrderStyle) -> Rung {
        Rung {
            slippage: Slippage::from_bps(bps).unwrap(),
            priority_fee: Lamports::new(fee),
            style,
        }
    }

    fn cap(bps: u16) -> Slippage {
        Slippage::from_bps(bps).unwrap()
    }

    #[test]
    fn default_ladder_is_one_percent_limit_then_five_percent_market() {
        let ladder = EscalationLadder::default_ladder();
        assert_eq!(
            ladder.rungs(),
            [
                rung(100, 50_000, OrderStyle::LimitLike),
                rung(500, 500_000, OrderStyle::Market)
            ]
        );
        assert_eq!(ladder.max_slippage(), cap(500));
        assert_eq!(
            EscalationLadder::new(ladder.rungs().to_vec(), cap(500)),
            Ok(ladder)
        );
    }

    #[test]
    fn exit_falls_back_to_market_order_after_the_first_attempt() {
        let ladder = EscalationLadder::default();
        let cases = [
            (0, OrderStyle::LimitLike, 100),
            (1, OrderStyle::LimitLike, 100),
            (2, OrderStyle::Market, 500),
            (3, OrderStyle::Market, 500),
            (u32::MAX, OrderStyle::Market, 500),
        ];
        for (attempt, style, bps) in cases {
            let r = ladder.rung(attempt);
            assert_eq!(
                (r.style, r.slippage.bps().get()),
                (style, bps),
                "attempt {attempt}"
            );
        }
    }

    #[test]
    fn new_refuses_invalid_ladders_naming_the_rungs_key() {
        let limit = OrderStyle::LimitLike;
        let market = OrderStyle::Market;
        let cases: [(Vec<Rung>, u16, &str); 4] = [
            (vec![], 500, "at least one rung"),
            (
                vec![rung(300, 1, limit), rung(200, 2, market)],
                500,
                "slippage non-decreasing from rung to rung",
            ),
            (
                vec![rung(100, 9, limit), rung(200, 2, market)],
                500,
                "priority fee non-decreasing from rung to rung",
            ),
            (
                vec![rung(100, 1, limit), rung(800, 2, market)],
                500,
                "every rung's slippage at most exit_ladder.max_slippage",
            ),
        ];
        for (rungs, max, expected) in cases {
            assert_eq!(
                EscalationLadder::new(rungs, cap(max)),
                Err(DomainError::InvalidConfig {
                    field: "exit_ladder.rungs",
                    expected
                })
            );
        }
    }

    #[test]
    fn equal_neighbouring_rungs_and_a_three_rung_ladder_are_accepted() {
        let rungs = vec![
            rung(100, 10, OrderStyle::LimitLike),
            rung(100, 10, OrderStyle::LimitLike),
            rung(300, 20, OrderStyle::Market),
        ];
        let ladder = EscalationLadder::new(rungs.clone(), cap(300)).unwrap();
        assert_eq!(ladder.rung(2), rungs[1]);
        assert_eq!(ladder.rung(3), rungs[2]);
        assert_eq!(ladder.rung(4), rungs[2]);
    }

    #[test]
    fn order_style_names_are_stable() {
        assert_eq!(OrderStyle::LimitLike.as_str(), "limit");
        assert_eq!(OrderStyle::Market.to_string(), "market");
    }
}
