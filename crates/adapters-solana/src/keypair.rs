//! Loading the wallet's keypair from a Solana CLI JSON file (an array of 64 numbers).
//!
//! The file is refused when group or others may read it. Errors name the path and what
//! was wrong (a length, an element index, a line and column): never the bytes, and never
//! the JSON parser's own message, which can quote the offending value.

use std::io::Read;
use std::path::{Path, PathBuf};

use solana_keypair::Keypair;

/// Largest keypair file read: 64 numbers of at most three digits fit in far less.
const MAX_FILE_BYTES: u64 = 4096;

/// Why a keypair file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeypairError {
    /// No file at the path.
    #[error("keypair file {path} does not exist")]
    Missing {
        /// The path.
        path: PathBuf,
    },
    /// The file could not be opened or read.
    #[error("keypair file {path} could not be read ({kind})")]
    Unreadable {
        /// The path.
        path: PathBuf,
        /// The I/O error's kind.
        kind: std::io::ErrorKind,
    },
    /// Group or others may access the file.
    #[error("keypair file {path} is accessible by group or others (mode {mode:o}): chmod 600 it")]
    TooOpen {
        /// The path.
        path: PathBuf,
        /// The file's permission bits.
        mode: u32,
    },
    /// The file is far larger than a keypair file.
    #[error("keypair file {path} is larger than {limit} bytes")]
    TooLarge {
        /// The path.
        path: PathBuf,
        /// The limit.
        limit: u64,
    },
    /// The file is not JSON.
    #[error("keypair file {path} is not valid JSON (line {line}, column {column})")]
    BadJson {
        /// The path.
        path: PathBuf,
        /// Line of the error.
        line: usize,
        /// Column of the error.
        column: usize,
    },
    /// The JSON is not an array of numbers from 0 to 255.
    #[error(
        "keypair file {path} is not an array of numbers from 0 to 255 (line {line}, column {column})"
    )]
    NotBytes {
        /// The path.
        path: PathBuf,
        /// Line of the error.
        line: usize,
        /// Column of the error.
        column: usize,
    },
    /// The array does not hold 64 numbers.
    #[error("keypair file {path} holds {len} numbers, expected 64")]
    WrongLength {
        /// The path.
        path: PathBuf,
        /// How many it holds.
        len: usize,
    },
    /// The public half does not match the secret half.
    #[error("keypair file {path} holds an inconsistent keypair (public key does not match)")]
    InvalidKey {
        /// The path.
        path: PathBuf,
    },
}

/// Loads a keypair from a Solana CLI JSON file.
///
/// # Errors
/// A [`KeypairError`] naming the path: missing, unreadable, readable by group or others
/// (on Unix), too large, not JSON, not bytes, not 64 of them, or inconsistent.
pub fn load_keypair(path: impl AsRef<Path>) -> Result<Keypair, KeypairError> {
    let path = path.as_ref();
    let owned = || path.to_path_buf();
    let file = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => KeypairError::Missing { path: owned() },
        kind => KeypairError::Unreadable {
            path: owned(),
            kind,
        },
    })?;
    // Checked on the opened file, so the file read is the file checked.
    let metadata = file.metadata().map_err(|e| KeypairError::Unreadable {
        path: owned(),
        kind: e.kind(),
    })?;
    check_mode(&metadata, path)?;
    if metadata.len() > MAX_FILE_BYTES {
        return Err(KeypairError::TooLarge {
            path: owned(),
            limit: MAX_FILE_BYTES,
        });
    }
    let mut text = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(|e| KeypairError::Unreadable {
            path: owned(),
            kind: e.kind(),
        })?;
    let parsed = serde_json::from_slice::<Vec<u8>>(&text);
    wipe(&mut text);
    let mut bytes = parsed.map_err(|e| {
        let (line, column) = (e.line(), e.column());
        if e.is_data() {
            KeypairError::NotBytes {
                path: owned(),
                line,
                column,
            }
        } else {
            KeypairError::BadJson {
                path: owned(),
                line,
                column,
            }
        }
    })?;
    if bytes.len() != 64 {
        let len = bytes.len();
        wipe(&mut bytes);
        return Err(KeypairError::WrongLength { path: owned(), len });
    }
    let keypair = Keypair::try_from(bytes.as_slice());
    wipe(&mut bytes);
    keypair.map_err(|_| KeypairError::InvalidKey { path: owned() })
}

/// Overwrites secret material before the buffer is freed (best effort).
fn wipe(bytes: &mut [u8]) {
    bytes.fill(0);
    std::hint::black_box(&bytes);
}

#[cfg(unix)]
fn check_mode(metadata: &std::fs::Metadata, path: &Path) -> Result<(), KeypairError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeypairError::TooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_mode(_metadata: &std::fs::Metadata, _path: &Path) -> Result<(), KeypairError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use solana_signer::Signer;
    use std::io::Write;

    fn write_file(dir: &tempfile::TempDir, name: &str, text: &str, mode: u32) -> PathBuf {
        let path = dir.path().join(name);
        let mut file = std::fs::File::create(&path).expect("create");
        file.write_all(text.as_bytes()).expect("write");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        }
        #[cfg(not(unix))]
        let _ = mode;
        path
    }

    fn json_of(bytes: &[u8]) -> String {
        let numbers: Vec<String> = bytes.iter().map(u8::to_string).collect();
        format!("[{}]", numbers.join(","))
    }

    /// No error message may hold the secret: neither its numbers nor their JSON.
    fn assert_no_secret(message: &str, secret: &[u8]) {
        let numbers: Vec<String> = secret[..8].iter().map(u8::to_string).collect();
        assert!(!message.contains(&numbers.join(",")), "{message}");
        assert!(!message.contains(&numbers.join(", ")), "{message}");
        assert!(!message.contains('['), "{message}");
    }

    #[test]
    fn a_valid_file_loads_the_same_keypair() {
        let dir = tempfile::tempdir().expect("dir");
        let original = Keypair::new();
        let path = write_file(&dir, "id.json", &json_of(&original.to_bytes()), 0o600);
        let loaded = load_keypair(&path).expect("loads");
        assert_eq!(loaded.pubkey(), original.pubkey());
    }

    #[test]
    fn each_bad_file_gives_its_typed_error_naming_the_path_only() {
        let dir = tempfile::tempdir().expect("dir");
        let secret = Keypair::new().to_bytes();
        let mut inconsistent = secret;
        inconsistent[40] ^= 0xff;
        let mut out_of_range = json_of(&secret);
        out_of_range.insert_str(1, "300,");
        type Expect = fn(&KeypairError) -> bool;
        let cases: Vec<(PathBuf, Expect)> = vec![
            (
                write_file(&dir, "short.json", &json_of(&secret[..63]), 0o600),
                |e| matches!(e, KeypairError::WrongLength { len: 63, .. }),
            ),
            (
                write_file(&dir, "bad.json", &json_of(&secret)[..40], 0o600),
                |e| matches!(e, KeypairError::BadJson { .. }),
            ),
            (write_file(&dir, "range.json", &out_of_range, 0o600), |e| {
                matches!(e, KeypairError::NotBytes { .. })
            }),
            (
                write_file(&dir, "object.json", "{\"secret\": 1}", 0o600),
                |e| matches!(e, KeypairError::NotBytes { .. }),
            ),
            (
                write_file(&dir, "group.json", &json_of(&secret), 0o640),
                |e| matches!(e, KeypairError::TooOpen { mode: 0o640, .. }),
            ),
            (
                write_file(&dir, "world.json", &json_of(&secret), 0o604),
                |e| matches!(e, KeypairError::TooOpen { .. }),
            ),
            (
                write_file(&dir, "inconsistent.json", &json_of(&inconsistent), 0o600),
                |e| matches!(e, KeypairError::InvalidKey { .. }),
            ),
            (
                write_file(&dir, "huge.json", &" ".repeat(10_000), 0o600),
                |e| matches!(e, KeypairError::TooLarge { .. }),
            ),
            (dir.path().join("missing.json"), |e| {
                matches!(e, KeypairError::Missing { .. })
            }),
        ];
        for (path, expected) in cases {
            let error = load_keypair(&path).expect_err("refused");
            assert!(expected(&error), "{}: got {error:?}", path.display());
            let message = error.to_string();
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert_no_secret(&message, &secret);
            assert_no_secret(&format!("{error:?}"), &secret);
        }
    }
}
