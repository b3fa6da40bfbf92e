//! The binary's errors: each says what failed and maps to a non-zero exit.

use kyzlo_application::bot::BotError;

use kyzlo_config::ConfigError;

/// Why the binary stopped.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The configuration was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A command-line value was refused.
    #[error("{0}")]
    Usage(String),
    /// The bot could not start (reconciliation failed, or a rule's settings are invalid).
    #[error(transparent)]
    Bot(#[from] BotError),
    /// The data directory is another process's, or its journal is not fit to trade on.
    #[error(transparent)]
    DataDir(#[from] kyzlo_adapters_journal::DataDirError),
    /// The journal could not be opened, its wallet is another instance's, or its lease was lost.
    #[error(transparent)]
    Journal(#[from] kyzlo_live::journal::JournalError),
    /// Something needed at start-up is missing or broken.
    #[error("start-up: {0}")]
    Startup(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// Talking to a running bot failed.
    #[error("{0}")]
    Remote(String),
    /// The command ran but had nothing to measure (exit code 2); the hint says why.
    #[error("{0}")]
    NothingMeasured(String),
    /// The command ran and found a failure; its report goes to standard output.
    #[error("{0}")]
    Failed(String),
}
