//! The `kyzlo` binary: parses the command line, loads the configuration, and hands over
//! to the command. It holds no trading logic.
#![forbid(unsafe_code)]

/// A line on standard error that never panics: a closed or full stderr (`2>/dev/full`, a
/// terminal gone after SIGHUP) loses the line, not the process.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod alerts;
mod chaos_cmd;
mod cli;
mod error;
mod fleet_cmd;
mod live;
mod paper;
mod verify_cmd;
mod wiring;

use std::process::ExitCode;

use clap::Parser;
use kyzlo_adapters_telemetry::Request;

use cli::{Cli, Command, ConfigCommand, LogFormat, PaperArgs};
use error::AppError;
use kyzlo_config::Profile;

/// Log times on tokio's clock: for the simulations, whose paused clock is the only one
/// that means anything (seconds since the process's first log line).
struct VirtualTime(std::sync::OnceLock<tokio::time::Instant>);

impl tracing_subscriber::fmt::time::FormatTime for VirtualTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        let now = tokio::time::Instant::now();
        let origin = *self.0.get_or_init(|| now);
        write!(
            w,
            "{:>10.3}s",
            now.saturating_duration_since(origin).as_secs_f64()
        )
    }
}

fn init_logs(format: LogFormat, default: &str, simulated: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KYZLO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // A log line that cannot be written is lost, never a panic (the layer's own error
    // report would write to the same broken stderr).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    match (format, simulated) {
        (LogFormat::Human, false) => builder.init(),
        (LogFormat::Human, true) => builder
            .with_timer(VirtualTime(std::sync::OnceLock::new()))
            .init(),
        (LogFormat::Json, _) => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The simulators run thousands of bots whose halts and failed exits are the point:
    // their logs are noise there unless asked for with KYZLO_LOG.
    let default_filter = match cli.command {
        Some(Command::Chaos(_) | Command::Verify(_)) => "off",
        _ => "warn,kyzlo=info,kyzlo_application=info",
    };
    let simulated = matches!(cli.command, Some(Command::Chaos(_) | Command::Verify(_)));
    init_logs(cli.log_format, default_filter, simulated);
    match run(cli) {
        Ok(output) => {
            let _ = std::io::Write::write_all(&mut std::io::stdout(), output.as_bytes());
            ExitCode::SUCCESS
        }
        Err(AppError::Failed(report)) => {
            let _ = std::io::Write::write_all(&mut std::io::stdout(), report.as_bytes());
            ExitCode::FAILURE
        }
        Err(AppError::NothingMeasured(hint)) => {
            say!("kyzlo: {hint}");
            ExitCode::from(2)
        }
        Err(e) => {
            say!("kyzlo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn operator(
    config_path: Option<&std::path::Path>,
    api: &cli::ApiArgs,
    request: kyzlo_adapters_telemetry::Request,
) -> Result<String, AppError> {
    let config = kyzlo_config::load_valid(config_path, None)?;
    let api = kyzlo_live::operator::ApiArgs {
        url: api.url.clone(),
        token: api.token.clone(),
    };
    kyzlo_live::operator::run(&config, &api, request).map_err(|e| match e {
        kyzlo_live::operator::CommandError::DataDir(e) => AppError::DataDir(e),
        kyzlo_live::operator::CommandError::Startup(e) => AppError::Startup(e),
        other => AppError::Remote(other.to_string()),
    })
}

fn run(cli: Cli) -> Result<String, AppError> {
    let path = cli.config.as_deref();
    let command = cli.command.unwrap_or(Command::Paper(PaperArgs::default()));
    match command {
        Command::Paper(args) => {
            let config = kyzlo_config::load_valid(path, Some(Profile::Paper))?;
            if fleet_cmd::is_fleet(&config) {
                return fleet_cmd::run(&config, Some(&args));
            }
            paper::run(&config, &args)
        }
        Command::Chaos(args) => chaos_cmd::run(&args),
        Command::Verify(args) => verify_cmd::run(&args),
        Command::Config(ConfigCommand::Check(args)) => {
            let config = kyzlo_config::load_valid(path, args.profile.map(Into::into))?;
            // What `run` builds before its first network call, built here too: the two
            // accept exactly the same things.
            for i in 0..config.markets.len() {
                live::check(&config.for_market(i).unwrap_or_else(|| config.clone()))?;
            }
            Ok(format!(
                "# configuration is valid (profile {})\n{}",
                config.profile.as_str(),
                config.file.masked_toml()?
            ))
        }
        Command::Status(api) => operator(path, &api, Request::Status),
        Command::Halt(args) => operator(path, &args.api, Request::Halt(args.reason)),
        Command::Resume(args) => operator(path, &args.api, Request::Resume(args.approval_key)),
        Command::Exit(args) => operator(path, &args.api, Request::ForceExit(args.position)),
        Command::Hold(args) => operator(path, &args.api, Request::Hold(args.position)),
        Command::Exits(args) => operator(path, &args.api, Request::Exits(args.limit)),
        Command::Run(args) => {
            let config = kyzlo_config::load_valid(path, args.profile.map(Into::into))?;
            if fleet_cmd::is_fleet(&config) {
                return fleet_cmd::run(&config, None);
            }
            live::run(&config, &args)
        }
        Command::Doctor(args) => live::doctor(&kyzlo_config::load_valid(
            path,
            args.profile.map(Into::into),
        )?),
        Command::Fleet(command) => {
            fleet_cmd::command(&kyzlo_config::load_valid(path, None)?, command)
        }
        Command::Wallet(cli::WalletCommand::Nonce(command)) => live::nonce(path, command),
        Command::Quote(args) => {
            let config = kyzlo_config::load_valid(path, None)?;
            live::quote(&config, &args)
        }
    }
}
