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
        escargot::CargoBuild::new()
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
