//! What kyzlo's end-to-end tests share: the `kyzlo` binary under test, built once per run
//! of the suite, and the helpers of the binary's tests ([`common`]).

pub mod browser;
pub mod common;

use std::path::Path;
use std::sync::OnceLock;

/// The `kyzlo` binary of this workspace, built (with the profile the tests were built
/// with) the first time it is asked for.
///
/// # Panics
/// When the binary cannot be built: nothing end to end can run then.
#[allow(clippy::expect_used)] // no binary, no end-to-end test
pub fn kyzlo_bin() -> &'static Path {
    static BIN: OnceLock<std::path::PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // Not the variables cargo sets for this test (CARGO_MANIFEST_DIR, CARGO_PKG_*...):
        // ring's build script reruns when they change, which rebuilt the TLS stack and
        // relinked the binary the test script had already built.
        let per_crate = std::env::vars_os()
            .filter_map(|(key, _)| key.into_string().ok())
            .filter(|key| {
                key.starts_with("CARGO_PKG_")
                    || key.starts_with("CARGO_MANIFEST_")
                    || key.starts_with("CARGO_BIN_")
                    || matches!(
                        key.as_str(),
                        "CARGO_CRATE_NAME" | "CARGO_PRIMARY_PACKAGE" | "CARGO_TARGET_TMPDIR"
                    )
            })
            .fold(
                escargot::CargoBuild::new(),
                escargot::CargoBuild::env_remove,
            );
        per_crate
            .manifest_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"))
            .package("kyzlo-app")
            .bin("kyzlo")
            .current_release()
            // No `--target`: with it cargo builds into target/<triple>/, a second full
            // build of every dependency beside the one the test script already made.
            .run()
            .expect("building the kyzlo binary")
            .path()
            .to_owned()
    })
}
