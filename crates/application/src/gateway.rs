//! The exit gateway: the only path for exit orders. It records who asked for what and
//! why, keeps one owner per position (a second exit for the same position is refused and
//! counted as an ownership conflict), and counts orders by module and kind. In
//! observe-only mode conflicts are logged and counted but not blocked.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use kyzlo_domain::ladder::OrderStyle;
use kyzlo_domain::{ExitKind, Fraction, IntentId, PositionId, Price};

use crate::metrics::{ExitModule, MetricEvent, MetricsSink};

/// Whether ownership conflicts are blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GatewayMode {
    /// Refuse a second exit for a position that has one in flight (the default).
    #[default]
    Enforce,
    /// Log and count conflicts, let the order through.
    ObserveOnly,
}

/// An exit order as placed by a module.
#[derive(Debug, Clone, PartialEq)]
pub struct ExitOrder {
    /// Who places it.
    pub module: ExitModule,
    /// The position.
    pub position: PositionId,
    pub kind: ExitKind,
    /// How much of the remaining position.
    pub fraction: Fraction,
    /// The first rung's style.
    pub style: OrderStyle,
    /// The price that triggered it.
    pub trigger_price: Price,
    /// A human explanation for the audit trail.
    pub explanation: String,
}

/// Why the gateway refused an order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayRefusal {
    /// The position already has an exit in flight.
    #[error("{position} already has exit {owner_intent} by {} in flight", owner_module.as_str())]
    OwnershipConflict {
        /// The position.
        position: PositionId,
        /// Module that owns it.
        owner_module: ExitModule,
        /// The owning exit's intent.
        owner_intent: IntentId,
    },
}

#[derive(Debug, Clone, Copy)]
struct Owner {
    module: ExitModule,
    intent: IntentId,
}

#[derive(Debug, Default)]
struct Owners {
    by_position: HashMap<PositionId, Owner>,
}

/// The exit gateway. Cheap to share behind an `Arc`.
pub struct ExitGateway {
    mode: GatewayMode,
    owners: Arc<Mutex<Owners>>,
    metrics: Arc<dyn MetricsSink>,
}

/// Ownership of a position's exit. Dropping it releases the position.
#[derive(Debug)]
pub struct ExitTicket {
    /// The accepted order.
    pub order: ExitOrder,
    /// The intent id it runs under.
    pub intent: IntentId,
    owners: Arc<Mutex<Owners>>,
    owns: bool,
}

impl Drop for ExitTicket {
    fn drop(&mut self) {
        if self.owns {
            let mut owners = self.owners.lock().unwrap_or_else(PoisonError::into_inner);
            if owners
                .by_position
                .get(&self.order.position)
                .is_some_and(|o| o.intent == self.intent)
            {
                owners.by_position.remove(&self.order.position);
            }
        }
    }
}

impl ExitGateway {
    /// A gateway in `mode`.
    pub fn new(mode: GatewayMode, metrics: Arc<dyn MetricsSink>) -> Self {
        Self {
            mode,
            owners: Arc::default(),
            metrics,
        }
    }

    /// Submits an exit order to run under `intent`.
    ///
    /// # Errors
    /// [`GatewayRefusal::OwnershipConflict`] in enforce mode when the position already
    /// has an exit in flight.
    pub fn submit(&self, order: ExitOrder, intent: IntentId) -> Result<ExitTicket, GatewayRefusal> {
        let mut owners = self.owners.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(owner) = owners.by_position.get(&order.position).copied() {
            self.metrics.record(MetricEvent::GatewayConflict {
                module: order.module,
                kind: order.kind,
            });
            tracing::warn!(
                position = %order.position,
                module = order.module.as_str(),
                kind = order.kind.as_str(),
                owner = owner.module.as_str(),
                owner_intent = %owner.intent,
                mode = ?self.mode,
                "[EXIT_GATEWAY] ownership conflict"
            );
            if self.mode == GatewayMode::Enforce {
                return Err(GatewayRefusal::OwnershipConflict {
                    position: order.position,
                    owner_module: owner.module,
                    owner_intent: owner.intent,
                });
            }
            drop(owners);
            return Ok(self.accept(order, intent, false));
        }
        owners.by_position.insert(
            order.position,
            Owner {
                module: order.module,
                intent,
            },
        );
        drop(owners);
        Ok(self.accept(order, intent, true))
    }

    fn accept(&self, order: ExitOrder, intent: IntentId, owns: bool) -> ExitTicket {
        self.metrics.record(MetricEvent::GatewayAccepted {
            module: order.module,
            kind: order.kind,
        });
        tracing::info!(
            position = %order.position,
            %intent,
            module = order.module.as_str(),
            kind = order.kind.as_str(),
            style = order.style.as_str(),
            fraction_bps = order.fraction.bps().get(),
            trigger = %order.trigger_price,
            explanation = %order.explanation,
            "[EXIT_GATEWAY] exit order accepted"
        );
        ExitTicket {
            order,
            intent,
            owners: Arc::clone(&self.owners),
            owns,
        }
    }

    /// Whether `position` has an exit in flight.
    #[must_use]
    pub fn is_owned(&self, position: PositionId) -> bool {
        self.owners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .by_position
            .contains_key(&position)
    }

    /// The mode.
    #[must_use]
    pub fn mode(&self) -> GatewayMode {
        self.mode
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::CountingMetrics;

    fn order(module: ExitModule, position: u64, kind: ExitKind) -> ExitOrder {
        ExitOrder {
            module,
            position: PositionId(position),
            kind,
            fraction: Fraction::ALL,
            style: OrderStyle::LimitLike,
            trigger_price: Price::new(95.0).unwrap(),
            explanation: "test".into(),
        }
    }

    #[test]
    fn second_exit_for_a_position_is_refused_and_counted_until_the_first_is_released() {
        let metrics = Arc::new(CountingMetrics::new());
        let gw = ExitGateway::new(GatewayMode::Enforce, metrics.clone());
        let first = gw
            .submit(
                order(ExitModule::ExitPlan, 1, ExitKind::StopLoss),
                IntentId(10),
            )
            .unwrap();
        let refused = gw.submit(
            order(ExitModule::Strategy, 1, ExitKind::Strategy),
            IntentId(11),
        );
        assert_eq!(
            refused.unwrap_err(),
            GatewayRefusal::OwnershipConflict {
                position: PositionId(1),
                owner_module: ExitModule::ExitPlan,
                owner_intent: IntentId(10),
            }
        );
        // Another position is independent.
        let other = gw.submit(
            order(ExitModule::ExitPlan, 2, ExitKind::TakeProfit),
            IntentId(12),
        );
        assert!(other.is_ok());
        drop(first);
        assert!(!gw.is_owned(PositionId(1)));
        assert!(
            gw.submit(
                order(ExitModule::Operator, 1, ExitKind::Operator),
                IntentId(13)
            )
            .is_ok()
        );
        let s = metrics.summary();
        assert_eq!(s.gateway_conflicts, 1);
        assert_eq!(s.gateway_orders.get(&("exit_plan", "stop_loss")), Some(&1));
        assert_eq!(
            s.gateway_orders.get(&("exit_plan", "take_profit")),
            Some(&1)
        );
        assert_eq!(s.gateway_orders.get(&("operator", "operator")), Some(&1));
        assert_eq!(s.gateway_orders.get(&("strategy", "strategy")), None);
    }

    #[test]
    fn observe_only_counts_the_conflict_but_lets_the_order_through() {
        let metrics = Arc::new(CountingMetrics::new());
        let gw = ExitGateway::new(GatewayMode::ObserveOnly, metrics.clone());
        let first = gw
            .submit(
                order(ExitModule::ExitPlan, 1, ExitKind::StopLoss),
                IntentId(1),
            )
            .unwrap();
        let second = gw
            .submit(
                order(ExitModule::Strategy, 1, ExitKind::Strategy),
                IntentId(2),
            )
            .unwrap();
        // The non-owning ticket does not release the owner's claim.
        drop(second);
        assert!(gw.is_owned(PositionId(1)));
        drop(first);
        assert!(!gw.is_owned(PositionId(1)));
        assert_eq!(metrics.summary().gateway_conflicts, 1);
    }
}
