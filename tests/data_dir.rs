//! One owner per data dir and no silent fresh start, end to end on the binary: a second
//! `kyzlo paper` on a data dir in use exits 1 naming the first one's pid; a journal that
//! is missing from a used data dir, empty, damaged or not writable is refused at start
//! with the reason and left as it was, until the operator asks for `--fresh`; SIGHUP
//! stops the bot as gracefully as SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use kyzlo_tests::common::{ChildGuard, Finished, NO_API, kyzlo, run, wait_until, write_file};

const LIMIT: Duration = Duration::from_secs(60);

fn config(dir: &Path) -> PathBuf {
    write_file(dir, "kyzlo.toml", NO_API)
}

fn paper(dir: &Path, args: &[&str]) -> Finished {
    let config = config(dir);
    let mut command = kyzlo(dir);
    command.arg("paper").arg("--config").arg(&config).args(args);
    run(&mut command, LIMIT)
}

/// A paper bot paced at real time, running until it is stopped; returned once it holds
/// its data dir (its pid is in the lock file).
fn running_bot(dir: &Path) -> ChildGuard {
    let config = config(dir);
    let mut command = kyzlo(dir);
    command
        .args(["paper", "--speed", "1", "--duration", "1h", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let bot = ChildGuard::spawn(&mut command);
    let lock = dir.join("kyzlo-data/kyzlo.lock");
    let pid = bot.id().to_string();
    wait_until(LIMIT, "the bot's pid in its lock file", || {
        std::fs::read_to_string(&lock)
            .ok()
            .filter(|text| text.trim() == pid)
    });
    bot
}

#[test]
fn a_second_process_on_a_data_dir_in_use_exits_1_naming_the_first_ones_pid() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = running_bot(dir.path());
    let second = paper(dir.path(), &["--duration", "10m"]);
    second.assert_no_panic("second process");
    assert_eq!(second.code(), Some(1), "{}", second.stderr);
    assert!(
        second
            .stderr
            .contains(&format!("in use by another kyzlo (pid {})", first.id())),
        "{}",
        second.stderr
    );
    // The offline operator commands do not write behind the running bot's back either.
    let mut halt = kyzlo(dir.path());
    halt.args(["halt", "--reason", "x", "--config"])
        .arg(config(dir.path()));
    let halt = run(&mut halt, LIMIT);
    assert_eq!(halt.code(), Some(1), "{}", halt.stderr);
    assert!(
        halt.stderr.contains(&format!("pid {}", first.id())),
        "{}",
        halt.stderr
    );
    first.interrupt();
    let status = first
        .wait_for(LIMIT)
        .expect("the first bot stops on SIGINT");
    assert!(status.success(), "{status:?}");
    // Once it is gone, the data dir is free again.
    paper(dir.path(), &["--duration", "10m"]).assert_success("after the first stopped");
}

#[test]
fn sighup_stops_the_bot_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let mut bot = running_bot(dir.path());
    let status = Command::new("kill")
        .args(["-HUP", &bot.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = bot.wait_for(LIMIT).expect("the bot stops on SIGHUP");
    let (out, err) = bot.take_pipes();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut err.unwrap(), &mut stderr).unwrap();
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut out.unwrap(), &mut stdout).unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("SIGHUP: stopping gracefully"), "{stderr}");
    assert!(
        stdout.contains("PnL: "),
        "the summary is printed:\n{stdout}"
    );
}

/// How a test damages the journal of a data dir that has run once.
enum Damage {
    Delete,
    Truncate,
    Scribble,
    Garbage,
}

#[test]
fn a_missing_empty_or_damaged_journal_is_refused_with_the_reason_until_fresh() {
    let cases = [
        (Damage::Delete, "journal.db is missing"),
        (Damage::Truncate, "is empty (0 bytes)"),
        (Damage::Scribble, "is damaged"),
        (Damage::Garbage, "file is not a database"),
    ];
    for (damage, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        paper(dir.path(), &["--duration", "30m"]).assert_success("first run");
        let journal = dir.path().join("kyzlo-data/journal.db");
        let before = match damage {
            Damage::Delete => {
                std::fs::remove_file(&journal).unwrap();
                None
            }
            Damage::Truncate => {
                std::fs::write(&journal, b"").unwrap();
                Some(Vec::new())
            }
            Damage::Scribble => {
                // The header stays; the pages behind it become noise.
                let mut bytes = std::fs::read(&journal).unwrap();
                assert!(bytes.len() > 8192, "{} bytes", bytes.len());
                for (i, b) in bytes[4096..8192].iter_mut().enumerate() {
                    *b = u8::try_from(i % 251).unwrap();
                }
                std::fs::write(&journal, &bytes).unwrap();
                Some(bytes)
            }
            Damage::Garbage => {
                let bytes = vec![0x5a; 16_384];
                std::fs::write(&journal, &bytes).unwrap();
                Some(bytes)
            }
        };
        let refused = paper(dir.path(), &["--duration", "10m"]);
        refused.assert_no_panic(expected);
        assert_eq!(refused.code(), Some(1), "{expected}: {}", refused.stderr);
        assert!(
            refused.stderr.contains(expected),
            "{expected}: {}",
            refused.stderr
        );
        assert!(refused.stderr.contains("--fresh"), "{}", refused.stderr);
        assert!(
            !refused.stdout.contains("PnL"),
            "no run: {}",
            refused.stdout
        );
        match before {
            None => assert!(!journal.exists(), "no journal created in its place"),
            Some(bytes) => assert_eq!(std::fs::read(&journal).unwrap(), bytes, "left as it was"),
        }
        let fresh = paper(dir.path(), &["--duration", "10m", "--fresh"]);
        fresh.assert_success("--fresh");
    }
}

/// Runs `kyzlo paper` with the journal file not writable: a read-only bind mount over it
/// in a private mount namespace when this user can make one (root, where file modes do
/// not stop writes), its mode 0444 otherwise.
#[test]
fn a_journal_that_is_not_writable_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    paper(dir.path(), &["--duration", "30m"]).assert_success("first run");
    let journal = dir.path().join("kyzlo-data/journal.db");
    let can_mount = Command::new("unshare")
        .args(["-m", "true"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let refused = if can_mount {
        let config = config(dir.path());
        let script = format!(
            "mount --bind -o ro {j} {j} && exec {bin} paper --duration 10m --config {c}",
            j = journal.display(),
            bin = kyzlo_tests::kyzlo_bin().display(),
            c = config.display(),
        );
        // The environment `kyzlo()` gives, on `unshare` instead of the binary.
        let template = kyzlo(dir.path());
        let mut command = Command::new("unshare");
        command
            .args(["-m", "sh", "-c", &script])
            .current_dir(dir.path());
        for (key, value) in template.get_envs() {
            match value {
                Some(v) => command.env(key, v),
                None => command.env_remove(key),
            };
        }
        run(&mut command, LIMIT)
    } else {
        let mut mode = std::fs::metadata(&journal).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut mode, 0o444);
        std::fs::set_permissions(&journal, mode).unwrap();
        paper(dir.path(), &["--duration", "10m"])
    };
    refused.assert_no_panic("read-only journal");
    assert_eq!(refused.code(), Some(1), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("not writable") || refused.stderr.contains("readonly"),
        "{}",
        refused.stderr
    );
    assert!(
        !refused.stdout.contains("PnL"),
        "no run: {}",
        refused.stdout
    );
}
