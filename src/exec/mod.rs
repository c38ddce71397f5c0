//! Running actions: the catalog of what may run (`catalog`, plus the ns8
//! action-root layout in `roots`), starting one step process with its
//! stdio, process group and optional command channel (`step`, and `vspawn` for the ns8 agent's
//! steps, started without a `fork`), the
//! request runner with timeouts, output caps and cancellation (`runner`),
//! and the auth hook protocol shared by agent and dispatcher (`hook`).
//! Every carrier, the ns8 front door included, starts steps through `step`.

pub mod catalog;
pub mod groups;
pub mod hook;
pub mod roots;
pub mod runner;
pub mod secrets;
pub mod step;
pub mod vspawn;

pub use catalog::{parse_allowlist, Action, AllowEntry, Catalog, CatalogError, CatalogWarning, BUILTINS};
pub use runner::{Job, Limits};

/// A `#!/bin/sh` script `s` in `dir` running `body`, executable (tests).
#[cfg(test)]
pub(crate) fn test_script(dir: &std::path::Path, body: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join("s");
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}
