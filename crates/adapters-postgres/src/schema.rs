//! The schema as an ordered list of embedded migration steps, tracked in the one-row table
//! `kyzlo_schema`; steps are only ever appended, never edited.
//!
//! Every journal table is keyed by `(wallet, market)` first, so one database holds a
//! fleet's journals side by side, and every row carries the `epoch` of the lease under
//! which it was written. A trigger on each of them refuses (SQLSTATE `KZ001`) a row whose
//! epoch is not the wallet's current, unexpired lease, locking that lease row `FOR SHARE`
//! until the write commits: a takeover (which updates the lease row) waits for writes in
//! flight and every later write of the old epoch is refused. The database decides, by its
//! own clock (`clock_timestamp()`), so a paused or partitioned former owner cannot slip a
//! write in after its lease is gone.

use deadpool_postgres::Object;

use crate::error::PgError;

/// The migration steps, in order; `MIGRATIONS[n - 1]` brings a database to version `n`.
const MIGRATIONS: &[&str] = &[
    // 1: the journal, the leases and the fence.
    r"
    CREATE TABLE leases (
        wallet       TEXT        PRIMARY KEY,
        owner        TEXT        NOT NULL,
        epoch        BIGINT      NOT NULL CHECK (epoch > 0),
        expires_at   TIMESTAMPTZ NOT NULL,
        acquired_at  TIMESTAMPTZ NOT NULL,
        renewed_at   TIMESTAMPTZ NOT NULL
    );

    CREATE FUNCTION kyzlo_fence(p_wallet TEXT, p_epoch BIGINT, p_owner TEXT) RETURNS void
    LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM 1 FROM leases
         WHERE wallet = p_wallet AND epoch = p_epoch AND expires_at > clock_timestamp()
           AND (p_owner IS NULL OR owner = p_owner)
           FOR SHARE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'wallet %: epoch % does not hold the lease', p_wallet, p_epoch
                USING ERRCODE = 'KZ001';
        END IF;
    END $$;

    CREATE FUNCTION kyzlo_fence_row() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM kyzlo_fence(NEW.wallet, NEW.epoch, NULL);
        RETURN NEW;
    END $$;

    CREATE TABLE positions (
        wallet       TEXT             NOT NULL,
        market       TEXT             NOT NULL,
        id           BIGINT           NOT NULL,
        entry_price  DOUBLE PRECISION NOT NULL,
        size         BIGINT           NOT NULL,
        remaining    BIGINT           NOT NULL,
        epoch        BIGINT           NOT NULL,
        recorded_at  TIMESTAMPTZ      NOT NULL DEFAULT clock_timestamp(),
        PRIMARY KEY (wallet, market, id)
    );

    CREATE TABLE intents (
        wallet             TEXT        NOT NULL,
        market             TEXT        NOT NULL,
        id                 BIGINT      NOT NULL,
        position_id        BIGINT      NOT NULL,
        action             TEXT        NOT NULL,
        exit_kind          TEXT,
        side               TEXT        NOT NULL,
        amount_in          BIGINT      NOT NULL,
        created_at_us      BIGINT      NOT NULL,
        outcome            TEXT,
        landed_signature   TEXT,
        fill_amount_in     BIGINT,
        fill_amount_out    BIGINT,
        fill_fee_lamports  BIGINT,
        epoch              BIGINT      NOT NULL,
        recorded_at        TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
        resolved_at        TIMESTAMPTZ,
        PRIMARY KEY (wallet, market, id)
    );

    CREATE TABLE attempts (
        wallet                   TEXT        NOT NULL,
        market                   TEXT        NOT NULL,
        intent_id                BIGINT      NOT NULL,
        attempt                  BIGINT      NOT NULL,
        signature                TEXT        NOT NULL,
        blockhash                TEXT        NOT NULL,
        valid_at_slot            BIGINT      NOT NULL,
        last_valid_block_height  BIGINT      NOT NULL,
        slippage_bps             BIGINT      NOT NULL,
        priority_fee_lamports    BIGINT      NOT NULL,
        amount_in                BIGINT      NOT NULL,
        min_out                  BIGINT      NOT NULL,
        sent_at_us               BIGINT      NOT NULL,
        outcome                  TEXT,
        outcome_class            TEXT,
        epoch                    BIGINT      NOT NULL,
        recorded_at              TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
        resolved_at              TIMESTAMPTZ,
        PRIMARY KEY (wallet, market, intent_id, attempt),
        FOREIGN KEY (wallet, market, intent_id) REFERENCES intents (wallet, market, id)
    );
    CREATE INDEX attempts_by_signature ON attempts (signature);

    CREATE TABLE transitions (
        id                             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        wallet                         TEXT   NOT NULL,
        market                         TEXT   NOT NULL,
        intent_id                      BIGINT NOT NULL,
        at_us                          BIGINT NOT NULL,
        from_state                     TEXT   NOT NULL,
        event                          TEXT   NOT NULL,
        to_state                       TEXT   NOT NULL,
        from_attempt                   BIGINT,
        from_signature                 TEXT,
        from_exit_kind                 TEXT,
        from_class                     TEXT,
        from_failure                   TEXT,
        event_attempt                  BIGINT,
        event_signature                TEXT,
        event_last_valid_block_height  BIGINT,
        event_exit_kind                TEXT,
        event_class                    TEXT,
        event_failure                  TEXT,
        to_attempt                     BIGINT,
        to_signature                   TEXT,
        to_exit_kind                   TEXT,
        to_class                       TEXT,
        to_failure                     TEXT,
        epoch                          BIGINT NOT NULL,
        recorded_at                    TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
        FOREIGN KEY (wallet, market, intent_id) REFERENCES intents (wallet, market, id)
    );
    CREATE INDEX transitions_by_intent ON transitions (wallet, market, intent_id, id);

    CREATE TABLE trading_state (
        id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        wallet       TEXT        NOT NULL,
        market       TEXT        NOT NULL,
        state        TEXT        NOT NULL,
        cause        TEXT,
        detail       TEXT,
        since_us     BIGINT,
        epoch        BIGINT      NOT NULL,
        recorded_at  TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
    );
    CREATE INDEX trading_state_latest ON trading_state (wallet, market, id DESC);

    CREATE TABLE control (
        wallet       TEXT        NOT NULL,
        market       TEXT        NOT NULL,
        key          TEXT        NOT NULL,
        value        BIGINT      NOT NULL,
        epoch        BIGINT      NOT NULL,
        recorded_at  TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
        PRIMARY KEY (wallet, market, key)
    );

    CREATE TRIGGER positions_fenced BEFORE INSERT OR UPDATE ON positions
        FOR EACH ROW EXECUTE FUNCTION kyzlo_fence_row();
    CREATE TRIGGER intents_fenced BEFORE INSERT OR UPDATE ON intents
        FOR EACH ROW EXECUTE FUNCTION kyzlo_fence_row();
    CREATE TRIGGER attempts_fenced BEFORE INSERT OR UPDATE ON attempts
        FOR EACH ROW EXECUTE FUNCTION kyzlo_fence_row();
    CREATE TRIGGER transitions_fenced BEFORE INSERT OR UPDATE ON transitions
        FOR EACH ROW EXECUTE FUNCTION kyzlo_fence_row();
    CREATE TRIGGER trading_state_fenced BEFORE INSERT OR UPDATE ON trading_state
        FOR EACH ROW EXECUTE FUNCTION kyzlo_fence_row();
    CREATE TRIGGER control_fenced BEFORE INSERT OR UPDATE ON control
        FOR EACH ROW EXECUTE FUNCTION kyzlo_fence_row();
    ",
    // 2: the fleet: its halt record (announced on `kyzlo_fleet`), its instances, and the
    // operators' commands to the instance holding a wallet (announced on
    // `kyzlo_commands`). Neither is owned by one wallet, so neither is fenced.
    r"
    CREATE TABLE fleet_halt (
        id          SMALLINT    PRIMARY KEY CHECK (id = 1),
        generation  BIGINT      NOT NULL CHECK (generation >= 0),
        halted      BOOLEAN     NOT NULL,
        detail      TEXT        NOT NULL,
        by_whom     TEXT        NOT NULL,
        proof       TEXT,
        changed_at  TIMESTAMPTZ NOT NULL
    );
    INSERT INTO fleet_halt VALUES (1, 0, false, '', '', NULL, clock_timestamp());

    CREATE FUNCTION kyzlo_fleet_announce() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('kyzlo_fleet', NEW.generation::text);
        RETURN NEW;
    END $$;
    CREATE TRIGGER fleet_halt_announced AFTER UPDATE ON fleet_halt
        FOR EACH ROW EXECUTE FUNCTION kyzlo_fleet_announce();

    CREATE TABLE instances (
        owner       TEXT        PRIMARY KEY,
        started_at  TIMESTAMPTZ NOT NULL,
        seen_at     TIMESTAMPTZ NOT NULL,
        markets     TEXT        NOT NULL
    );

    CREATE TABLE fleet_commands (
        id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        wallet        TEXT        NOT NULL,
        market        TEXT        NOT NULL,
        position_id   BIGINT      NOT NULL,
        kind          TEXT        NOT NULL CHECK (kind IN ('force_exit')),
        requested_by  TEXT        NOT NULL,
        requested_at  TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
        taken_by      TEXT,
        taken_at      TIMESTAMPTZ,
        result        TEXT,
        done_at       TIMESTAMPTZ
    );
    CREATE FUNCTION kyzlo_command_announce() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('kyzlo_commands', NEW.id::text);
        RETURN NEW;
    END $$;
    CREATE TRIGGER fleet_commands_announced AFTER INSERT ON fleet_commands
        FOR EACH ROW EXECUTE FUNCTION kyzlo_command_announce();
    ",
    // 3: durable nonces. An attempt built on a durable nonce never expires; what proves
    // it dead is its nonce account holding another value, so the account is kept beside
    // the attempt (base58; NULL for an attempt on a recent blockhash). The value it
    // carries is the `blockhash` column already: a nonce transaction's message carries
    // the nonce's value as its blockhash. `cancel` marks the intent's cancel, a
    // transaction that only advances the nonce so that nothing else on its value can
    // land. Rows written before this step were all on recent blockhashes, which is what
    // NULL and the default false say. Adding a column with a constant default rewrites no
    // row, so the fencing trigger on `attempts` fires for none of them and checks every
    // later write as before (it reads only `wallet` and `epoch`).
    r"
    ALTER TABLE attempts ADD COLUMN nonce_account TEXT;
    ALTER TABLE attempts ADD COLUMN cancel BOOLEAN NOT NULL DEFAULT false;
    ",
];

/// The schema version this build writes: the number of migration steps.
#[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)] // a handful of steps
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// A transaction-scoped advisory lock key, so that instances starting together migrate
/// one after the other ("kyzlo" in ASCII).
const MIGRATION_LOCK: i64 = 0x6b_797a_6c6f;

/// Brings the database to [`SCHEMA_VERSION`] in one transaction under an advisory lock:
/// instances starting at once migrate in turn, and a failed step leaves the database at
/// its old version.
///
/// # Errors
/// [`PgError::SchemaTooNew`] when a newer build migrated the database (it is left
/// untouched); [`PgError::Migration`] when a step fails.
pub(crate) async fn migrate(client: &mut Object) -> Result<(), PgError> {
    let known = SCHEMA_VERSION;
    let failed = |version: i32| move |source| PgError::Migration { version, source };
    let tx = client.transaction().await.map_err(failed(known))?;
    // Not the sessions' statement and lock limits: a step may rewrite a large table, and
    // an instance starting beside another waits for the other's migration to end.
    tx.batch_execute("SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 0")
        .await
        .map_err(failed(known))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(failed(known))?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS kyzlo_schema (version INTEGER NOT NULL)")
        .await
        .map_err(failed(known))?;
    let found: i32 = tx
        .query_opt("SELECT version FROM kyzlo_schema", &[])
        .await
        .map_err(failed(known))?
        .map_or(0, |row| row.get(0));
    if found > known {
        return Err(PgError::SchemaTooNew { found, known });
    }
    if found == known {
        return tx.commit().await.map_err(failed(known));
    }
    for (version, step) in (1..).zip(MIGRATIONS).skip_while(|(v, _)| *v <= found) {
        tx.batch_execute(step).await.map_err(failed(version))?;
    }
    tx.execute("DELETE FROM kyzlo_schema", &[])
        .await
        .map_err(failed(known))?;
    tx.execute("INSERT INTO kyzlo_schema (version) VALUES ($1)", &[&known])
        .await
        .map_err(failed(known))?;
    tx.commit().await.map_err(failed(known))
}

#[cfg(test)]
mod tests {
    use kyzlo_application::journal::{AttemptOutcome, AttemptRecord, Journal as _, NonceUse};
    use kyzlo_application::ports::{Blockhash, DurableNonce, NonceAccount};
    use kyzlo_domain::{IntentId, Lamports, Slippage, Timestamp, TokenAmount, TxSignature};
    use kyzlo_test_postgres::{Durability, PgCluster};

    use super::*;
    use crate::codec;
    use crate::database::{Lease, PgDatabase};
    use crate::error::FENCED_SQLSTATE;

    fn attempt(number: u32) -> AttemptRecord {
        AttemptRecord {
            intent: IntentId(2),
            attempt: number,
            signature: TxSignature([u8::try_from(number).unwrap(); 64]),
            blockhash: Blockhash([0x30 + u8::try_from(number).unwrap(); 32]),
            valid_at_slot: 280 + u64::from(number),
            last_valid_block_height: 300 + u64::from(number),
            slippage: Slippage::from_bps(100).unwrap(),
            priority_fee: Lamports::new(5_000 * u64::from(number)),
            amount_in: TokenAmount::new(1_000),
            min_out: TokenAmount::new(950),
            sent_at: Timestamp::from_micros(7 + u64::from(number)),
            nonce: None,
        }
    }

    /// Writes `attempt` as a version-2 build did (no nonce columns yet), under epoch 1.
    async fn insert_as_version_2(
        client: &tokio_postgres::Client,
        a: &AttemptRecord,
        outcome: Option<&str>,
    ) {
        let int = |v: u64| i64::try_from(v).unwrap();
        client
            .execute(
                "INSERT INTO attempts (wallet, market, intent_id, attempt, signature, blockhash,
                                       valid_at_slot, last_valid_block_height, slippage_bps,
                                       priority_fee_lamports, amount_in, min_out, sent_at_us,
                                       outcome, epoch)
                 VALUES ('w', 'SOL/USDC', $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 1)",
                &[
                    &int(a.intent.0),
                    &i64::from(a.attempt),
                    &codec::signature_text(&a.signature),
                    &codec::blockhash_text(&a.blockhash),
                    &int(a.valid_at_slot),
                    &int(a.last_valid_block_height),
                    &i64::from(a.slippage.bps().get()),
                    &int(a.priority_fee.get()),
                    &int(a.amount_in.get()),
                    &int(a.min_out.get()),
                    &int(a.sent_at.as_micros()),
                    &outcome,
                ],
            )
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_version_2_database_with_attempts_migrates_and_reads_them_back_without_a_nonce() {
        let (cluster, url) = tokio::task::spawn_blocking(|| {
            let cluster = PgCluster::start(Durability::Fast).unwrap();
            let url = cluster.create_database("migrate").unwrap();
            (cluster, url)
        })
        .await
        .unwrap();
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        for step in &MIGRATIONS[..2] {
            client.batch_execute(step).await.unwrap();
        }
        client
            .batch_execute(
                "CREATE TABLE kyzlo_schema (version INTEGER NOT NULL);
                 INSERT INTO kyzlo_schema (version) VALUES (2);
                 INSERT INTO leases VALUES ('w', 'a', 1, clock_timestamp() + interval '10 min',
                                            clock_timestamp(), clock_timestamp());
                 INSERT INTO intents (wallet, market, id, position_id, action, exit_kind, side,
                                      amount_in, created_at_us, epoch)
                 VALUES ('w', 'SOL/USDC', 2, 1, 'exit', 'stop_loss', 'sell', 1000, 5, 1);",
            )
            .await
            .unwrap();
        insert_as_version_2(&client, &attempt(1), Some("expired")).await;
        insert_as_version_2(&client, &attempt(2), None).await;

        let db = PgDatabase::connect(&url, 2).await.unwrap();
        let version: i32 = client
            .query_one("SELECT version FROM kyzlo_schema", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(version, SCHEMA_VERSION);
        let lease = Lease {
            wallet: "w".to_owned(),
            owner: "a".to_owned(),
            epoch: 1,
        };
        let journal = db.journal(&lease, "SOL/USDC");
        let expected = vec![
            (attempt(1), Some(AttemptOutcome::Expired)),
            (attempt(2), None),
        ];
        let snapshot = journal.load().await.unwrap();
        assert_eq!(snapshot.unresolved.len(), 1);
        assert_eq!(snapshot.unresolved[0].attempts, expected);
        assert_eq!(
            journal.exit_history(10).await.unwrap()[0].attempts,
            expected
        );

        // The migrated table takes the next attempt's nonce, fenced as before.
        let nonce = DurableNonce {
            account: NonceAccount([0x4E; 32]),
            value: Blockhash([0xC0; 32]),
        };
        let cancel = AttemptRecord {
            blockhash: nonce.value,
            amount_in: TokenAmount::new(0),
            min_out: TokenAmount::new(0),
            nonce: Some(NonceUse {
                nonce,
                cancel: true,
            }),
            ..attempt(3)
        };
        journal.record_attempt(&cancel).await.unwrap();
        let snapshot = journal.load().await.unwrap();
        assert_eq!(
            snapshot.unresolved[0].attempts.last(),
            Some(&(cancel, None))
        );
        let stale = client
            .execute(
                "UPDATE attempts SET cancel = false, epoch = 0 WHERE attempt = 3",
                &[],
            )
            .await
            .unwrap_err();
        assert_eq!(stale.code().map(|c| c.code()), Some(FENCED_SQLSTATE));
        drop(client);
        drop(db);
        tokio::task::spawn_blocking(move || drop(cluster))
            .await
            .unwrap();
    }
}
