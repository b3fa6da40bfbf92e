//! [`DataDir`]: one owner per data directory, and a journal that is never silently
//! replaced.
//!
//! A process claims its data directory before anything else with an exclusive OS lock on
//! the directory itself (held for the life of the [`DataDir`], released by the OS if the
//! process dies), and writes its pid in `kyzlo.lock` (never through a symlink) so that a
//! second process can say who holds it.
//!
//! The journal is then opened only when it is sound: a data directory that has been used
//! but lost its journal, a journal that is empty, damaged (`PRAGMA quick_check`) or not
//! writable is refused with SQLite's own reason and what to do. A new journal is created
//! only in a fresh (missing or empty) directory, or after [`DataDir::start_over`] moved the
//! old files aside on the operator's explicit request (`--fresh`).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use crate::error::JournalError;
use crate::journal::SqliteJournal;

/// The lock file inside a data directory.
pub const LOCK_FILE: &str = "kyzlo.lock";
/// The journal inside a data directory.
pub const JOURNAL_FILE: &str = "journal.db";

/// What to tell an operator whose journal cannot be used.
const WHAT_TO_DO: &str = "restore it from a backup, or pass --fresh to move it aside and start a new journal (a new journal knows no open position: check the wallet first)";

/// Why a data directory or its journal was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataDirError {
    /// The directory, or its lock file, could not be created or read.
    #[error("data dir {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The file-system error.
        #[source]
        source: std::io::Error,
    },
    /// The pid file is a symlink or something else that is not a plain file.
    #[error("{} is not a plain file (a symlink?): remove it; kyzlo writes its pid there", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// The path exists and is not a directory.
    #[error("data dir {}: not a directory", path.display())]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// Another process holds the directory.
    #[error(
        "data dir {} is in use by another kyzlo ({}): one process per data dir; stop it first or use another data_dir",
        path.display(),
        holder.map_or_else(|| "pid unknown".to_owned(), |pid| format!("pid {pid}"))
    )]
    InUse {
        /// The directory.
        path: PathBuf,
        /// The holder's pid, as it wrote it in the lock file.
        holder: Option<u32>,
    },
    /// The directory has been used but holds no journal.
    #[error(
        "data dir {} has been used (it holds {}) but {JOURNAL_FILE} is missing: {WHAT_TO_DO}",
        path.display(),
        found.join(", ")
    )]
    MissingJournal {
        /// The directory.
        path: PathBuf,
        /// The entries found there.
        found: Vec<String>,
    },
    /// The journal file is empty.
    #[error("journal {} is empty (0 bytes): {WHAT_TO_DO}", path.display())]
    EmptyJournal {
        /// The file.
        path: PathBuf,
    },
    /// The journal failed SQLite's integrity check.
    #[error("journal {} is damaged (SQLite's quick_check: {report}): {WHAT_TO_DO}", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// SQLite's first complaints.
        report: String,
    },
    /// The journal opened read-only.
    #[error(
        "journal {} is not writable (SQLite opened it read-only): give this user write access to it and to its directory",
        path.display()
    )]
    ReadOnly {
        /// The file.
        path: PathBuf,
    },
    /// The journal could not be opened or migrated.
    #[error("{}: {}", with_causes(.source), remedy(.source))]
    Journal {
        /// The journal's error, with SQLite's reason.
        #[source]
        source: JournalError,
    },
}

/// A data directory this process owns until the value is dropped.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    fresh: bool,
    _lock: File,
}

impl DataDir {
    /// Claims `path`: creates it if missing, then takes the exclusive lock, or reports
    /// the process holding it.
    ///
    /// # Errors
    /// [`DataDirError::InUse`] when another process holds it; [`DataDirError::Io`] or
    /// [`DataDirError::NotADirectory`] when it cannot be made or locked.
    pub fn claim(path: &Path) -> Result<Self, DataDirError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| DataDirError::Io { path, source }
        };
        if path.exists() && !path.is_dir() {
            return Err(DataDirError::NotADirectory {
                path: path.to_path_buf(),
            });
        }
        std::fs::create_dir_all(path).map_err(io(path))?;
        // The lock is on the directory itself: deleting or replacing the pid file cannot
        // let a second process in.
        let dir = File::open(path).map_err(io(path))?;
        let lock_path = path.join(LOCK_FILE);
        if std::fs::symlink_metadata(&lock_path).is_ok_and(|m| !m.is_file()) {
            return Err(DataDirError::NotAFile { path: lock_path });
        }
        let mut pid_file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        match dir.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = pid_file.read_to_string(&mut text);
                return Err(DataDirError::InUse {
                    path: path.to_path_buf(),
                    holder: text.trim().parse().ok(),
                });
            }
            Err(TryLockError::Error(source)) => {
                return Err(DataDirError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        }
        // Only kyzlo's own files count: `lost+found` or a `.DS_Store` is no sign of use.
        let fresh = !entries(path)?
            .iter()
            .any(|name| name != LOCK_FILE && is_kyzlos(name))
            && {
                // A pid left by an earlier process means the directory was used.
                pid_file.metadata().map_err(io(&lock_path))?.len() == 0
            };
        pid_file.set_len(0).map_err(io(&lock_path))?;
        pid_file.rewind().map_err(io(&lock_path))?;
        writeln!(pid_file, "{}", std::process::id()).map_err(io(&lock_path))?;
        pid_file.sync_all().map_err(io(&lock_path))?;
        Ok(Self {
            path: path.to_path_buf(),
            fresh,
            _lock: dir,
        })
    }

    /// The directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the directory was missing or empty when claimed.
    #[must_use]
    pub fn was_fresh(&self) -> bool {
        self.fresh
    }

    /// Moves the journal (with its WAL and shared-memory files) and each of `others`
    /// aside to `NAME.old-N`, so that the next [`DataDir::open_journal`] starts a new
    /// journal. Returns what was moved, as (from, to).
    ///
    /// # Errors
    /// [`DataDirError::Io`] when a file cannot be renamed.
    pub fn start_over(&mut self, others: &[&str]) -> Result<Vec<(PathBuf, PathBuf)>, DataDirError> {
        // (file, its name aside with suffix n): the WAL and shared-memory files keep the
        // names SQLite pairs with the moved journal (`journal.db.old-1-wal`).
        let aside = |name: &str, n: u32| match name.strip_prefix(JOURNAL_FILE) {
            Some(suffix @ ("-wal" | "-shm")) => format!("{JOURNAL_FILE}.old-{n}{suffix}"),
            _ => format!("{name}.old-{n}"),
        };
        let journal = [
            JOURNAL_FILE.to_owned(),
            format!("{JOURNAL_FILE}-wal"),
            format!("{JOURNAL_FILE}-shm"),
        ];
        let names: Vec<&str> = journal
            .iter()
            .map(String::as_str)
            .chain(others.iter().copied())
            .collect();
        let n = (1..)
            .find(|n| {
                !names
                    .iter()
                    .any(|name| self.path.join(aside(name, *n)).exists())
            })
            .unwrap_or(1);
        let mut moved = Vec::new();
        for name in names {
            let from = self.path.join(name);
            if from.exists() {
                let to = self.path.join(aside(name, n));
                std::fs::rename(&from, &to).map_err(|source| DataDirError::Io {
                    path: from.clone(),
                    source,
                })?;
                moved.push((from, to));
            }
        }
        self.fresh = true;
        Ok(moved)
    }

    /// Opens the journal: an existing one only if it is sound and writable; a new one only
    /// in a fresh directory (or after [`DataDir::start_over`]).
    ///
    /// This does blocking file I/O and reads the whole file once: call it at start-up.
    ///
    /// # Errors
    /// [`DataDirError::MissingJournal`], [`DataDirError::EmptyJournal`],
    /// [`DataDirError::Damaged`], [`DataDirError::ReadOnly`], [`DataDirError::Journal`].
    pub fn open_journal(&self) -> Result<SqliteJournal, DataDirError> {
        let path = self.path.join(JOURNAL_FILE);
        match std::fs::metadata(&path) {
            Ok(meta) if meta.len() == 0 => return Err(DataDirError::EmptyJournal { path }),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !self.fresh {
                    let mut found = entries(&self.path)?;
                    found.sort();
                    return Err(DataDirError::MissingJournal {
                        path: self.path.clone(),
                        found,
                    });
                }
            }
            Err(source) => return Err(DataDirError::Io { path, source }),
        }
        let journal =
            SqliteJournal::open(&path).map_err(|source| DataDirError::Journal { source })?;
        match journal.check() {
            Ok(crate::journal::Health::Sound) => Ok(journal),
            Ok(crate::journal::Health::ReadOnly) => Err(DataDirError::ReadOnly { path }),
            Ok(crate::journal::Health::Damaged(report)) => {
                Err(DataDirError::Damaged { path, report })
            }
            Err(source) => Err(DataDirError::Journal { source }),
        }
    }
}

/// What to do about a journal that cannot be opened: a permission problem is fixed by
/// permissions, not by a backup.
fn remedy(error: &JournalError) -> &'static str {
    const PERMISSIONS: &str = "check that this user can write the data dir and every file in it";
    // SQLITE_READONLY (8) and SQLITE_CANTOPEN (14), with their extended codes.
    match error.sqlite_code().map(|c| c & 0xff) {
        Some(8 | 14) => PERMISSIONS,
        _ if matches!(error, JournalError::CreateDir { .. }) => PERMISSIONS,
        _ => WHAT_TO_DO,
    }
}

/// `error` and each of its causes not already in its text, joined by ": ".
fn with_causes(error: &JournalError) -> String {
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(c) = cause {
        let said = c.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = c.source();
    }
    text
}

/// Whether `name` is a file kyzlo writes in its data dir (besides the lock): the journal
/// and its SQLite companions, the paper and devnet wallets, the paper report, and any of
/// them moved aside (`.old-N`).
fn is_kyzlos(name: &str) -> bool {
    name.starts_with(JOURNAL_FILE)
        || name.contains("-wallet.json")
        || name.starts_with("paper-report")
}

fn entries(dir: &Path) -> Result<Vec<String>, DataDirError> {
    let io = |source| DataDirError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        names.push(
            entry
                .map_err(io)?
                .file_name()
                .to_string_lossy()
                .into_owned(),
        );
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_names_the_holders_pid() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDir::claim(dir.path()).unwrap();
        assert!(first.was_fresh());
        let second = DataDir::claim(dir.path()).unwrap_err();
        let DataDirError::InUse { holder, .. } = &second else {
            panic!("{second}");
        };
        assert_eq!(*holder, Some(std::process::id()));
        assert!(
            second
                .to_string()
                .contains(&format!("pid {}", std::process::id()))
        );
        drop(first);
        let again = DataDir::claim(dir.path()).unwrap();
        assert!(
            !again.was_fresh(),
            "an earlier owner's lock file means used"
        );
    }

    #[test]
    fn only_kyzlos_own_files_make_a_directory_used() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("lost+found")).unwrap();
        std::fs::write(dir.path().join(".DS_Store"), b"x").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        let claimed = DataDir::claim(dir.path()).unwrap();
        assert!(claimed.was_fresh());
        drop(claimed.open_journal().unwrap());
        drop(claimed);
        for name in [
            "paper-wallet.json",
            "devnet-wallet.json.old-2",
            "journal.db-wal",
        ] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(name), b"x").unwrap();
            let claimed = DataDir::claim(dir.path()).unwrap();
            assert!(!claimed.was_fresh(), "{name}");
            let error = claimed.open_journal().unwrap_err();
            assert!(
                matches!(error, DataDirError::MissingJournal { .. }),
                "{name}: {error}"
            );
        }
    }

    #[test]
    fn a_used_directory_without_its_journal_is_refused_until_started_over() {
        let dir = tempfile::tempdir().unwrap();
        drop(DataDir::claim(dir.path()).unwrap().open_journal().unwrap());
        std::fs::remove_file(dir.path().join(JOURNAL_FILE)).unwrap();
        let mut claimed = DataDir::claim(dir.path()).unwrap();
        let error = claimed.open_journal().unwrap_err();
        assert!(
            matches!(error, DataDirError::MissingJournal { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("--fresh"), "{error}");
        let moved = claimed.start_over(&[]).unwrap();
        assert!(moved.iter().all(|(from, _)| !from.exists()));
        claimed.open_journal().unwrap();
    }

    #[test]
    fn a_planted_symlink_is_never_written_through_and_a_deleted_pid_file_lets_no_one_in() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        std::os::unix::fs::symlink(&victim, data.join(LOCK_FILE)).unwrap();
        let error = DataDir::claim(&data).unwrap_err();
        assert!(matches!(error, DataDirError::NotAFile { .. }), "{error}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");

        std::fs::remove_file(data.join(LOCK_FILE)).unwrap();
        let first = DataDir::claim(&data).unwrap();
        std::fs::remove_file(data.join(LOCK_FILE)).unwrap();
        let error = DataDir::claim(&data).unwrap_err();
        assert!(matches!(error, DataDirError::InUse { .. }), "{error}");
        drop(first);
    }

    #[test]
    fn started_over_the_wal_keeps_the_name_sqlite_pairs_with_its_journal() {
        let dir = tempfile::tempdir().unwrap();
        let mut claimed = DataDir::claim(dir.path()).unwrap();
        for name in ["journal.db", "journal.db-wal", "journal.db-shm", "w.json"] {
            std::fs::write(dir.path().join(name), name).unwrap();
        }
        claimed.start_over(&["w.json"]).unwrap();
        for name in [
            "journal.db.old-1",
            "journal.db.old-1-wal",
            "journal.db.old-1-shm",
            "w.json.old-1",
        ] {
            assert!(dir.path().join(name).exists(), "{name}");
        }
        std::fs::write(dir.path().join("journal.db"), "x").unwrap();
        claimed.start_over(&[]).unwrap();
        assert!(dir.path().join("journal.db.old-2").exists());
    }

    #[test]
    fn an_empty_or_damaged_journal_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        drop(DataDir::claim(dir.path()).unwrap().open_journal().unwrap());
        let path = dir.path().join(JOURNAL_FILE);
        std::fs::write(&path, b"").unwrap();
        let error = DataDir::claim(dir.path())
            .unwrap()
            .open_journal()
            .unwrap_err();
        assert!(
            matches!(error, DataDirError::EmptyJournal { .. }),
            "{error}"
        );

        std::fs::write(&path, vec![0x5a; 8192]).unwrap();
        let error = DataDir::claim(dir.path())
            .unwrap()
            .open_journal()
            .unwrap_err();
        assert!(error.to_string().contains("not a database"), "{error}");
    }
}
