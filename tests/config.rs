//! The binary refuses bad configurations with a message naming the key (and the value and what is allowed), without panicking, both in `kyzlo config check` and at start-up; a good `config check` prints the resolved configuration with every secret masked and the `KYZLO_*` environment applied.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kyzlo_tests::common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::{Finished, NO_API, kyzlo, run, write_file};

const LIMIT: Duration = Duration::from_secs(30);

/// Which commands a bad configuration is run through.
#[derive(Clone, Copy)]
enum Commands {
    /// `config check` and `paper --duration 1m`: the value is wrong whatever the profile.
    CheckAndPaper,
    /// `config check` and `run`: the value is wrong only for the file's devnet or mainnet
    /// profile. `kyzlo paper` always runs the paper profile (main.rs loads the
    /// configuration with a paper override), which needs no wallet and trades no money, so
    /// `run`, the command that uses the file's profile, is the start-up that must refuse.
    /// Validation comes before any network use, so `run` touches no network here.
    CheckAndRun,
}

struct Case {
    what: &'static str,
    toml: String,
    /// Every one of these must be in stderr.
    expect: &'static [&'static str],
    commands: Commands,
}

fn case(
    what: &'static str,
    toml: &str,
    expect: &'static [&'static str],
    commands: Commands,
) -> Case {
    Case {
        what,
        toml: toml.to_owned(),
        expect,
        commands,
    }
}

/// The problems with one refused run, if any.
fn check_refused(what: &str, finished: &Finished, expect: &[&str], code: i32) -> Vec<String> {
    let mut problems = Vec::new();
    if finished.stderr.contains("panicked at") || finished.code() == Some(101) {
        problems.push(format!("{what}: panicked:\n{}", finished.stderr));
    }
    if finished.code() != Some(code) {
        problems.push(format!(
            "{what}: exit code {:?}, expected {code}; stdout {:?}; stderr {:?}",
            finished.code(),
            last_lines(&finished.stdout),
            last_lines(&finished.stderr)
        ));
    }
    if finished.stderr.contains("s3cr3t") {
        problems.push(format!(
            "{what}: a secret was echoed: {:?}",
            last_lines(&finished.stderr)
        ));
    }
    for needle in expect {
        if !finished.stderr.contains(needle) {
            problems.push(format!(
                "{what}: stderr does not name {needle:?}: {:?}",
                last_lines(&finished.stderr)
            ));
        }
    }
    problems
}

fn last_lines(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(3)..].join("\n")
}

fn bad_config_cases() -> Vec<Case> {
    use Commands::{CheckAndPaper, CheckAndRun};
    // NO_API goes with the cases that do not test [api], so that a configuration wrongly
    // accepted by `paper` cannot bind the default port.
    let no_api = |body: &str| format!("{body}\n{NO_API}");
    // The `run` cases also point every remote at a closed loopback port: were validation
    // ever to let them through, `run` could not reach a real network.
    let loopback_only = |body: &str| {
        format!(
            "{body}\n{NO_API}[rpc]\nendpoints = [\"http://127.0.0.1:9\"]\n\
             [jupiter]\nbase_url = \"http://127.0.0.1:9\"\n"
        )
    };
    vec![
        case(
            "unknown top-level key",
            &no_api("bogus = 1"),
            &["bogus", "profile"],
            CheckAndPaper,
        ),
        case(
            "unknown nested key",
            &no_api("[exit_plan]\nstop_los_bps = 1"),
            &["exit_plan.stop_los_bps", "stop_loss_bps"],
            CheckAndPaper,
        ),
        case(
            "wrong type",
            &no_api("[trading]\nmax_positions = \"many\""),
            &["trading.max_positions", "\"many\""],
            CheckAndPaper,
        ),
        case(
            "negative size",
            &no_api("[trading]\nentry_size = -5"),
            &["trading.entry_size", "-5", "positive"],
            CheckAndPaper,
        ),
        case(
            "stop-loss at 100%",
            &no_api("[exit_plan]\nstop_loss_bps = 10000"),
            &["exit_plan.stop_loss_bps", "10000", "1 to 9999"],
            CheckAndPaper,
        ),
        case(
            "stop-loss above 100%",
            &no_api("[exit_plan]\nstop_loss_bps = 12000"),
            &["exit_plan.stop_loss_bps", "12000", "1 to 9999"],
            CheckAndPaper,
        ),
        case(
            "listen address that is not an address",
            "[api]\nlisten = \"not-an-address\"",
            &["api.listen", "not-an-address", "127.0.0.1:9464"],
            CheckAndPaper,
        ),
        case(
            "non-loopback listen address without a bearer token",
            "[api]\nlisten = \"0.0.0.0:9464\"",
            &["api.listen", "0.0.0.0:9464", "api.bearer_token"],
            CheckAndPaper,
        ),
        case(
            "a ladder rung's style outside the closed set",
            &no_api(
                "[[exit.ladder]]\nslippage_bps = 50\npriority_fee_lamports = 1\nstyle = \"wild\"",
            ),
            &["exit.ladder", "wild", "limit", "market"],
            CheckAndPaper,
        ),
        case(
            "an RPC commitment outside the closed set",
            &no_api("[rpc]\ncommitment = \"eventually\""),
            &["rpc.commitment", "eventually", "confirmed"],
            CheckAndPaper,
        ),
        case(
            "a fault profile outside the closed set",
            &no_api("[paper]\nfaults = \"nope\""),
            &["paper.faults", "nope", "rpc-blackout"],
            CheckAndPaper,
        ),
        case(
            "a mint that is not an address",
            &no_api("[pair]\nquote_mint = \"not-a-mint\""),
            &["pair.quote_mint", "not-a-mint", "base58"],
            CheckAndPaper,
        ),
        case(
            "a webhook that is not a URL (never echoed)",
            &no_api("[alerts]\nslack_webhook = \"hooks.slack.com/services/T0/B0/s3cr3t\""),
            &["alerts.slack_webhook", "http(s) URL"],
            CheckAndPaper,
        ),
        case(
            "an RPC endpoint that is not a URL (never echoed)",
            &loopback_only("profile = \"devnet\"\n[wallet]\nkeypair_path = \"nope.json\"")
                .replace("http://127.0.0.1:9", "127.0.0.1:9/s3cr3t"),
            &["rpc.endpoints[0]", "http(s) URL"],
            CheckAndRun,
        ),
        case(
            "devnet with a missing wallet file",
            &loopback_only("profile = \"devnet\"\n[wallet]\nkeypair_path = \"nope.json\""),
            &["wallet.keypair_path", "nope.json", "existing keypair file"],
            CheckAndRun,
        ),
        case(
            "mainnet without confirm_mainnet",
            &loopback_only("profile = \"mainnet\""),
            &["confirm_mainnet", "true"],
            CheckAndRun,
        ),
    ]
}

fn run_kyzlo(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Finished {
    let mut command = kyzlo(dir);
    command.args(args);
    for (k, v) in envs {
        command.env(k, v);
    }
    run(&mut command, LIMIT)
}

#[test]
fn bad_configs_are_refused_naming_the_key_by_config_check_and_at_start_up() {
    let mut problems = Vec::new();
    for case in bad_config_cases() {
        let dir = tempfile::tempdir().unwrap();
        let file = write_file(dir.path(), "kyzlo.toml", &case.toml);
        let file = file.to_str().unwrap();
        let second: &[&str] = match case.commands {
            Commands::CheckAndPaper => &["paper", "--config", file, "--duration", "1m"],
            Commands::CheckAndRun => &["run", "--config", file],
        };
        for args in [&["config", "check", "--config", file][..], second] {
            let finished = run_kyzlo(dir.path(), args, &[]);
            let what = format!("{} (`kyzlo {}`)", case.what, args[0]);
            problems.extend(check_refused(&what, &finished, case.expect, 1));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn unknown_profile_is_refused_from_the_file_the_environment_and_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let in_file = write_file(
        dir.path(),
        "testnet.toml",
        &format!("profile = \"testnet\"\n{NO_API}"),
    );
    let clean = write_file(dir.path(), "clean.toml", NO_API);
    let (in_file, clean) = (in_file.to_str().unwrap(), clean.to_str().unwrap());
    let env = [("KYZLO_PROFILE", "testnet")];
    // The file's key is `profile`; the environment's is `PROFILE` under `KYZLO_`.
    let in_the_file: &[&str] = &["profile", "testnet", "paper", "devnet", "mainnet"];
    let in_the_env: &[&str] = &["PROFILE", "KYZLO_", "testnet", "paper", "devnet", "mainnet"];
    let mut problems = Vec::new();
    type Run<'a> = (
        &'a str,
        Vec<&'a str>,
        &'a [(&'a str, &'a str)],
        &'a [&'a str],
    );
    let runs: [Run; 4] = [
        (
            "profile = \"testnet\" in the file",
            vec!["config", "check", "--config", in_file],
            &[],
            in_the_file,
        ),
        (
            "profile = \"testnet\" in the file",
            vec!["paper", "--config", in_file, "--duration", "1m"],
            &[],
            in_the_file,
        ),
        (
            "KYZLO_PROFILE=testnet",
            vec!["config", "check", "--config", clean],
            &env,
            in_the_env,
        ),
        (
            "KYZLO_PROFILE=testnet",
            vec!["paper", "--config", clean, "--duration", "1m"],
            &env,
            in_the_env,
        ),
    ];
    for (what, args, envs, named) in runs {
        let finished = run_kyzlo(dir.path(), &args, envs);
        let what = format!("{what} (`kyzlo {}`)", args[0]);
        problems.extend(check_refused(&what, &finished, named, 1));
    }
    // On the command line clap refuses the value with its usage error (exit code 2),
    // listing the possible values.
    for args in [
        vec!["config", "check", "--config", clean, "--profile", "testnet"],
        vec!["run", "--config", clean, "--profile", "testnet"],
    ] {
        let finished = run_kyzlo(dir.path(), &args, &[]);
        let what = format!("--profile testnet (`kyzlo {}`)", args[0]);
        problems.extend(check_refused(
            &what,
            &finished,
            &["--profile", "testnet", "paper, devnet, mainnet"],
            2,
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A Solana CLI keypair file: a JSON array of 64 byte values.
/// A real keypair in the Solana CLI's format (`config check` loads it as `run` does).
fn keypair_json() -> String {
    let bytes: Vec<String> = kyzlo_adapters_solana::Keypair::new()
        .to_bytes()
        .iter()
        .map(u8::to_string)
        .collect();
    format!("[{}]", bytes.join(","))
}

/// 64 numbers that are not a keypair: the public half does not match the secret.
fn broken_keypair_json() -> String {
    let bytes: Vec<String> = (0..64u32)
        .map(|i| ((i * 37 + 11) % 256).to_string())
        .collect();
    format!("[{}]", bytes.join(","))
}

fn devnet_config_with_keypair(dir: &Path, mode: u32) -> String {
    let keypair = write_file(dir, "id.json", &keypair_json());
    std::fs::set_permissions(&keypair, std::fs::Permissions::from_mode(mode)).unwrap();
    let config = write_file(
        dir,
        "kyzlo.toml",
        &format!(
            "profile = \"devnet\"\n[wallet]\nkeypair_path = \"{}\"\n{NO_API}",
            keypair.display()
        ),
    );
    config.to_str().unwrap().to_owned()
}

#[test]
fn an_owner_only_keypair_file_passes_config_check_for_devnet() {
    let dir = tempfile::tempdir().unwrap();
    let config = devnet_config_with_keypair(dir.path(), 0o600);
    let finished = run_kyzlo(dir.path(), &["config", "check", "--config", &config], &[]);
    finished.assert_success("config check with a 0600 keypair");
    assert!(
        finished
            .stdout
            .starts_with("# configuration is valid (profile devnet)"),
        "{}",
        finished.stdout
    );
}

#[test]
fn a_keypair_file_that_is_not_a_keypair_is_refused_by_config_check_as_by_run() {
    let dir = tempfile::tempdir().unwrap();
    let keypair = write_file(dir.path(), "id.json", &broken_keypair_json());
    std::fs::set_permissions(&keypair, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = write_file(
        dir.path(),
        "kyzlo.toml",
        &format!(
            "profile = \"devnet\"\n[wallet]\nkeypair_path = \"{}\"\n{NO_API}[rpc]\nendpoints = [\"http://127.0.0.1:9\"]\n",
            keypair.display()
        ),
    );
    let config = config.to_str().unwrap();
    for command in [
        &["config", "check", "--config", config][..],
        &["run", "--config", config],
    ] {
        let finished = run_kyzlo(dir.path(), command, &[]);
        let problems = check_refused(
            &format!("a broken keypair (`kyzlo {}`)", command[0]),
            &finished,
            &["wallet.keypair_path", "public key does not match"],
            1,
        );
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}

#[test]
fn a_group_readable_keypair_file_is_refused_for_devnet() {
    let dir = tempfile::tempdir().unwrap();
    let config = devnet_config_with_keypair(dir.path(), 0o644);
    let finished = run_kyzlo(dir.path(), &["config", "check", "--config", &config], &[]);
    let problems = check_refused(
        "keypair file with mode 0644 (`kyzlo config check`)",
        &finished,
        &["wallet.keypair_path"],
        1,
    );
    assert!(
        problems.is_empty(),
        "a keypair readable by group and others must be refused (a wallet's secret key), as \
         `solana-keygen` writes 0600:\n{}",
        problems.join("\n")
    );
}

const BEARER: &str = "bearer-SECRET-7f3a9c1e5d20";
const APPROVAL: &str = "approval-SECRET-2b8e4d6f";
const JUPITER: &str = "jupiter-SECRET-91c3aa";
const SLACK: &str = "https://hooks.slack.com/services/T0SECRET/B0SECRET/xoxSECRET";

fn resolved(finished: &Finished) -> toml::Table {
    finished.assert_success("config check");
    let (first, rest) = finished.stdout.split_once('\n').unwrap_or_default();
    assert!(
        first.starts_with("# configuration is valid (profile paper)"),
        "{first}"
    );
    rest.parse::<toml::Table>()
        .unwrap_or_else(|e| panic!("the resolved config is not TOML ({e}):\n{rest}"))
}

fn get<'a>(table: &'a toml::Table, path: &str) -> &'a toml::Value {
    let mut parts = path.split('.');
    let first = parts.next().unwrap();
    let mut value = table.get(first).unwrap_or_else(|| panic!("no {path}"));
    for part in parts {
        value = value.get(part).unwrap_or_else(|| panic!("no {path}"));
    }
    value
}

#[test]
fn config_check_prints_the_resolved_config_with_every_secret_masked() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_file(
        dir.path(),
        "kyzlo.toml",
        &format!(
            "[api]\nlisten = \"127.0.0.1:0\"\nbearer_token = \"{BEARER}\"\napproval_key = \"{APPROVAL}\"\n\
             [jupiter]\napi_key = \"{JUPITER}\"\n[alerts]\nslack_webhook = \"{SLACK}\"\n\
             [trading]\nmax_positions = 3\n"
        ),
    );
    let finished = run_kyzlo(
        dir.path(),
        &["config", "check", "--config", config.to_str().unwrap()],
        &[],
    );
    let table = resolved(&finished);
    for secret in [BEARER, APPROVAL, JUPITER, SLACK, "SECRET"] {
        assert!(
            !finished.stdout.contains(secret) && !finished.stderr.contains(secret),
            "a secret leaked: {secret}\nstdout:\n{}\nstderr:\n{}",
            finished.stdout,
            finished.stderr
        );
    }
    for key in [
        "api.bearer_token",
        "api.approval_key",
        "jupiter.api_key",
        "alerts.slack_webhook",
    ] {
        assert_eq!(get(&table, key).as_str(), Some("***"), "{key}");
    }
    // The rest is the resolved configuration: the file's values over the defaults.
    assert_eq!(get(&table, "trading.max_positions").as_integer(), Some(3));
    assert_eq!(get(&table, "api.listen").as_str(), Some("127.0.0.1:0"));
    assert_eq!(get(&table, "profile").as_str(), Some("paper"));
    assert_eq!(
        get(&table, "exit_plan.stop_loss_bps").as_integer(),
        Some(500)
    );
}

#[test]
fn environment_overrides_the_file_in_the_resolved_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_file(
        dir.path(),
        "kyzlo.toml",
        &format!("[exit_plan]\nstop_loss_bps = 300\n{NO_API}"),
    );
    let args = ["config", "check", "--config", config.to_str().unwrap()];
    let from_file = resolved(&run_kyzlo(dir.path(), &args, &[]));
    assert_eq!(
        get(&from_file, "exit_plan.stop_loss_bps").as_integer(),
        Some(300)
    );
    let with_env = resolved(&run_kyzlo(
        dir.path(),
        &args,
        &[("KYZLO_EXIT_PLAN__STOP_LOSS_BPS", "400")],
    ));
    assert_eq!(
        get(&with_env, "exit_plan.stop_loss_bps").as_integer(),
        Some(400)
    );
    // An environment value that is out of range is refused like a file's.
    let finished = run_kyzlo(
        dir.path(),
        &args,
        &[("KYZLO_EXIT_PLAN__STOP_LOSS_BPS", "10000")],
    );
    let problems = check_refused(
        "KYZLO_EXIT_PLAN__STOP_LOSS_BPS=10000",
        &finished,
        &["exit_plan.stop_loss_bps", "10000"],
        1,
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn doctor_reports_a_failure_per_unreachable_endpoint_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let keypair = write_file(dir.path(), "id.json", &keypair_json());
    std::fs::set_permissions(&keypair, std::fs::Permissions::from_mode(0o600)).unwrap();
    // Nothing listens on the discard port: every check fails fast, and nothing is sent.
    let config = write_file(
        dir.path(),
        "kyzlo.toml",
        &format!(
            "profile = \"devnet\"\n[wallet]\nkeypair_path = \"{}\"\n[rpc]\nendpoints = [\"http://127.0.0.1:9\", \"http://127.0.0.1:9/second?api-key=s3cr3t\"]\nrequest_timeout_ms = 500\n[jupiter]\nbase_url = \"http://127.0.0.1:9\"\n{NO_API}",
            keypair.display()
        ),
    );
    let config = config.to_str().unwrap();
    let finished = run_kyzlo(dir.path(), &["doctor", "--config", config], &[]);
    assert_eq!(
        finished.code(),
        Some(1),
        "{}{}",
        finished.stdout,
        finished.stderr
    );
    let report = &finished.stdout;
    for part in [
        "kyzlo doctor (devnet profile): reads only, nothing is sent",
        "FAIL  rpc http://127.0.0.1:9: not healthy or not reachable",
        "FAIL  wallet ",
        "FAIL  jupiter http://127.0.0.1:9: price read failed",
        "4 checks, 4 failed",
    ] {
        assert!(report.contains(part), "{part} not in:\n{report}");
    }
    assert!(
        !report.contains("s3cr3t") && !finished.stderr.contains("s3cr3t"),
        "{report}"
    );
    assert!(!finished.stderr.contains("panicked"), "{}", finished.stderr);

    // The paper profile has nothing to check.
    let paper = write_file(dir.path(), "paper.toml", NO_API);
    let finished = run_kyzlo(
        dir.path(),
        &["doctor", "--config", paper.to_str().unwrap()],
        &[],
    );
    assert_eq!(finished.code(), Some(1));
    assert!(
        finished.stderr.contains("--profile devnet|mainnet"),
        "{}",
        finished.stderr
    );
}
