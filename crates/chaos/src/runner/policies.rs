//! The three policies on one price path and fault schedule: kyzlo (the real bot), naive
//! retry, and the oracle's lower bound.

use super::*;

/// kyzlo: the real bot, started on a journal holding the position (so reconciliation
/// adopts it), ticking until the position is closed or the horizon; when its exit breaker
/// halts trading, the paged operator force-exits `operator_reaction` later. On a cluster
/// of several providers its client knows every one of them (the venue's default
/// [`EndpointClient`](kyzlo_adapters_sim::venue::EndpointClient): the live request
/// timeout and cool-down). Its timeline from `stop_at` (the runner's) is read from its
/// journal for the breakdown.
pub(super) async fn run_kyzlo(
    scenario: &Scenario,
    path: &Arc<PricePath>,
    schedule: &Arc<FaultSchedule>,
    entry: Price,
    size: Size,
    runner_stop_at: Duration,
) -> KyzloRun {
    let clock = Clock::new();
    let market = Arc::new(SimMarket::starting_now(Arc::clone(path), clock));
    let trace = Arc::new(Trace::new());
    let mut venue = SimVenue::new(
        Arc::clone(&market),
        Arc::clone(schedule),
        wallet(size),
        clock,
        Pair::SOL_USDC,
    )
    .with_trace(Arc::clone(&trace));
    if scenario.durable_nonce {
        venue = venue.with_nonce_account(NONCE_ACCOUNT);
    }
    let venue = Arc::new(venue);
    let mut exit = ExecutionSettings::exit_defaults();
    if scenario.durable_nonce {
        exit.nonce = Some(NonceSettings::on(NONCE_ACCOUNT));
    }
    let journal = Arc::new(MemoryJournal::new());
    let position = PositionId(1);
    let opened = journal
        .settle_intent(
            IntentId(2),
            &IntentOutcome::Failed,
            Some(&PositionRecord {
                position,
                entry_price: entry,
                size,
                remaining: size.amount(),
            }),
        )
        .await;
    let bot = Bot::start(
        BotPorts {
            feed: market.clone(),
            router: venue.clone(),
            chain: venue.clone(),
            signer: venue.clone(),
            probe: venue.clone(),
            send_probe: venue.clone(),
            journal: journal.clone(),
            alerts: Arc::new(NullAlerts),
            metrics: Vec::new(),
            clock,
        },
        BotSettings {
            pair: Pair::SOL_USDC,
            strategy: MeanReversionConfig::default(),
            exit_plan: stop_only(scenario.stop_loss_bps),
            exit,
            entry: ExecutionSettings::entry_defaults(
                kyzlo_domain::EscalationLadder::default_ladder(),
            ),
            // The seed's breaker on every dependency; prices, quotes and reads cut at
            // 2 s, sends at 200 ms (the rebroadcast gives a cut send another chance).
            guard: GuardLimits::new(
                LatencyBreakerConfig::default(),
                Duration::from_secs(2),
                Duration::from_millis(200),
            ),
            exit_breaker_threshold: ExitBreaker::DEFAULT_THRESHOLD,
            entry_quote_amount: TokenAmount::new(100 * USDC),
            entry_fraction: None,
            // No entries (the journaled position is adopted regardless): the run
            // measures the exit alone.
            max_positions: 0,
            // The stop is what is measured: no exit on reversion to the mean.
            strategy_exits: false,
            // The real default: a stop that fired while halted is retried once the chain
            // answers again; the paged operator still force-exits after the reaction time.
            protective_exits: ProtectiveExits::OnRecovery,
            router_budget: None,
            rpc_budget: None,
            tick_interval: scenario.tick,
            approval_key: None,
            gateway_mode: GatewayMode::Enforce,
            jitter_seed: schedule_seed(schedule),
        },
    )
    .await;
    let (Ok(()), Ok(bot)) = (opened, bot) else {
        return KyzloRun {
            policy: PolicyRun::default(),
            marks: Vec::new(),
            timeline: Timeline::default(),
            landed: scenario.horizon,
            fees_pts: 0.0,
        };
    };
    let control = bot.control();
    let operator = bot.operator();
    let totals = bot.totals();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let run = bot.run(shutdown, Duration::from_secs(600));
    tokio::pin!(run);
    let mut halted = false;
    // The harness side: watches the journal and the trading state once a tick, and plays
    // the paged operator. It runs beside the bot (operator actions are served by the
    // bot's loop, so the two must be polled together).
    let driver = async {
        let mut forced = false;
        let mut ticker = tokio::time::interval(scenario.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let now = elapsed(clock.now());
            let open = journal.load().await.map_or(0, |s| s.open_positions.len());
            if now > scenario.horizon || open == 0 {
                return;
            }
            if let TradingState::Halted { since, .. } = control.state() {
                halted = true;
                if !forced && clock.now().saturating_since(since) >= scenario.operator_reaction {
                    // The operator, paged, force-exits (retried while an exit still runs).
                    forced = operator.force_exit(position).await.is_ok();
                }
            }
        }
    };
    let bot_stopped = tokio::select! {
        _ = &mut run => true,
        () = driver => false,
    };
    if !bot_stopped {
        let _ = stop.send(true);
        run.await;
    }
    let intents: Vec<(TxSignature, u64)> = journal
        .attempts()
        .iter()
        .map(|(a, _)| (a.signature, a.intent.0))
        .collect();
    // The stop fired when the first exit intent was created.
    let stop_at = journal
        .intents()
        .iter()
        .filter(|(i, _)| matches!(i.action, IntentAction::Exit(_)))
        .map(|(i, _)| elapsed(i.created_at))
        .min()
        .unwrap_or_default();
    let sales = account(&venue, &trace, &intents, stop_at, size.amount().get());
    let m = totals.summary();
    let closed = sales.sold >= size.amount().get();
    let realized_loss_pct = if closed {
        loss_pct(entry, sales.sold, sales.received)
    } else {
        // Still open at the horizon: marked at the last price.
        (1.0 - path.price_at(scenario.horizon).get() / entry.get()) * 100.0
    };
    let closing = sales.closing.filter(|_| closed);
    let records: Vec<_> = journal.intents().into_iter().map(|(i, _)| i).collect();
    let timeline = breakdown::timeline(
        runner_stop_at,
        &records,
        &journal.attempts(),
        &|intent| journal.transitions(intent),
        closing,
        scenario.horizon,
    );
    let fees_pts = venue
        .landings()
        .iter()
        .map(|l| {
            fee_points(
                l.fee.get(),
                size.amount().get(),
                path.price_at(l.at).get(),
                entry.get(),
            )
        })
        .sum();
    KyzloRun {
        timeline,
        landed: closing.map_or(scenario.horizon, |(_, at)| at),
        fees_pts,
        marks: sales.marks,
        policy: PolicyRun {
            realized_loss_pct,
            exit_time: if closed {
                sales.exit_time
            } else {
                scenario.horizon
            },
            attempts: intents.len() as u32,
            fees_lamports: sales.fees,
            double_executions: sales.doubles,
            unresolved_at_deadline: m.exits_deadline_exceeded as u32,
            halted,
            closed,
        },
    }
}

pub(super) fn schedule_seed(schedule: &FaultSchedule) -> u64 {
    schedule.seed() ^ 0x6B79_7A6C_6F00_0001
}

/// The seeds' "before": quote at 1%, send once (the send call bounded by an ordinary
/// client's 30 s timeout), wait up to 60 s for confirmation; on any failure or timeout
/// wait the 10 s poll interval and send a NEW transaction, with no deadline and no
/// escalation, while earlier ones may still land. On a cluster of several providers it
/// is what a bot with a single configured RPC URL does: its client knows only the first
/// endpoint (the primary), waits the same 30 s for any answer, and has nowhere to fail
/// over to.
pub(super) async fn run_naive(
    scenario: &Scenario,
    path: &Arc<PricePath>,
    schedule: &Arc<FaultSchedule>,
    entry: Price,
    size: Size,
    stop_at: Duration,
) -> (PolicyRun, Vec<SendMark>) {
    const CONFIRM_TIMEOUT: Duration = Duration::from_secs(60);
    const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
    const POLL: Duration = Duration::from_secs(10);
    let clock = Clock::new();
    let market = Arc::new(SimMarket::starting_now(Arc::clone(path), clock));
    let trace = Arc::new(Trace::new());
    let venue = Arc::new(
        SimVenue::new(
            market,
            Arc::clone(schedule),
            wallet(size),
            clock,
            Pair::SOL_USDC,
        )
        .with_trace(Arc::clone(&trace))
        .with_client(EndpointClient {
            endpoints: 1,
            request_timeout: CLIENT_TIMEOUT,
            ..EndpointClient::default()
        }),
    );
    tokio::time::sleep(stop_at).await;
    let Ok(slippage) = Slippage::from_bps(100) else {
        return (PolicyRun::default(), Vec::new());
    };
    let mut sent: Vec<(TxSignature, u64)> = Vec::new();
    let mut last_valid = 0;
    let mut closed = false;
    while elapsed(clock.now()) < scenario.horizon {
        let attempt = async {
            let quote = venue
                .quote(&QuoteRequest {
                    side: Side::Sell,
                    amount_in: size.amount(),
                    slippage,
                })
                .await?;
            let unsigned = venue
                .build_swap(&SwapRequest {
                    quote,
                    priority_fee: Lamports::new(0),
                    expiry_slots: None,
                    attempt: 1,
                    nonce: None,
                })
                .await?;
            let signed = venue.sign(&unsigned)?;
            Ok::<_, PortError>(signed)
        };
        let signed = match tokio::time::timeout(CONFIRM_TIMEOUT, attempt).await {
            Ok(Ok(signed)) => signed,
            _ => {
                tokio::time::sleep(POLL).await;
                continue;
            }
        };
        sent.push((signed.signature, 1));
        last_valid = last_valid.max(signed.last_valid_block_height);
        let sent_at = clock.now();
        // The send and the confirmation wait share the 60 s timeout.
        let confirmed = tokio::time::timeout(CONFIRM_TIMEOUT, async {
            let _ = tokio::time::timeout(CLIENT_TIMEOUT, venue.send(&signed)).await;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if let Ok(statuses) = venue
                    .statuses(&[signed.signature], StatusLookup::Recent)
                    .await
                    && let Some(Some(status)) = statuses.value.first()
                    && status.commitment >= Commitment::Confirmed
                {
                    return status.error.is_none();
                }
            }
        })
        .await;
        if confirmed == Ok(true) {
            closed = true;
            break;
        }
        let waited = clock.now().saturating_since(sent_at);
        tracing::trace!(?waited, "naive: not confirmed; passive wait");
        tokio::time::sleep(POLL).await;
    }
    // Let every transaction it ever sent land or expire, to see double executions.
    let expiry = Duration::from_millis(400) * u32::try_from(last_valid + 2).unwrap_or(u32::MAX);
    let now = elapsed(clock.now());
    if expiry > now {
        tokio::time::sleep(expiry - now).await;
    }
    let _ = venue.balances().await;
    let position = size.amount().get();
    let Sales {
        sold,
        received,
        fees,
        exit_time,
        doubles,
        marks,
        ..
    } = account(&venue, &trace, &sent, stop_at, position);
    let realized_loss_pct = if sold >= position {
        // Only the position's own sale counts toward its loss; a double sale is counted
        // separately (it sold the trader's other holdings).
        loss_pct(entry, sold, received)
    } else {
        (1.0 - path.price_at(scenario.horizon).get() / entry.get()) * 100.0
    };
    (
        PolicyRun {
            realized_loss_pct,
            exit_time: if closed || sold >= position {
                exit_time
            } else {
                scenario.horizon
            },
            attempts: sent.len() as u32,
            fees_lamports: fees,
            double_executions: doubles,
            unresolved_at_deadline: u32::from(
                exit_time > Duration::from_secs(30) || sold < position,
            ),
            halted: false,
            closed: sold >= position,
        },
        marks,
    )
}

/// The lower bound: the earliest moment a transaction sent at or after the stop could
/// land in this run's fault schedule (any send time at which some RPC provider is up,
/// within the exit ladder's blockhash life, at the priority fee of kyzlo's highest rung),
/// filled at the price at landing with base slippage only. Also returns when that
/// transaction was sent (the horizon when none lands).
pub(super) fn run_oracle(
    scenario: &Scenario,
    path: &PricePath,
    schedule: &FaultSchedule,
    entry: Price,
    stop_at: Duration,
) -> (PolicyRun, Duration) {
    use kyzlo_adapters_sim::faults::SendFate;
    const BUCKET: Duration = Duration::from_millis(100);
    let settings = ExecutionSettings::exit_defaults();
    let fee = settings
        .ladder
        .rungs()
        .iter()
        .map(|r| r.priority_fee)
        .max()
        .unwrap_or_default();
    let life = settings.slot_time * settings.expiry_slots;
    let cluster = &schedule.profile().cluster;
    let mut best: Option<(Duration, Duration)> = None;
    let mut t = stop_at;
    while t <= scenario.horizon && best.is_none_or(|(_, b)| t < b) {
        let after = match schedule.send_fate(t, fee) {
            // Some provider must be up to take it.
            _ if cluster.all_endpoints_down(t) => None,
            SendFate::Lands { after } | SendFate::HangsThenLands { after } => Some(after),
            _ => None,
        };
        if let Some(after) = after.filter(|a| *a < life) {
            let land = t + after;
            if best.is_none_or(|(_, b)| land < b) {
                best = Some((t, land));
            }
        }
        t += BUCKET;
    }
    match best {
        Some((sent, land)) => {
            let price =
                path.price_at(land).get() * (1.0 - schedule.profile().base_slippage_bps / 10_000.0);
            (
                PolicyRun {
                    realized_loss_pct: (1.0 - price / entry.get()) * 100.0,
                    exit_time: land.saturating_sub(stop_at),
                    attempts: 1,
                    fees_lamports: 5_000 + fee.get(),
                    closed: true,
                    ..PolicyRun::default()
                },
                sent,
            )
        }
        None => (
            PolicyRun {
                realized_loss_pct: (1.0 - path.price_at(scenario.horizon).get() / entry.get())
                    * 100.0,
                exit_time: scenario.horizon,
                ..PolicyRun::default()
            },
            scenario.horizon,
        ),
    }
}
