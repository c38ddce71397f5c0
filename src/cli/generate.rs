//! `muster completions SHELL` and `muster man [--out DIR]`: shell
//! completion scripts (clap_complete) and roff man pages (clap_mangen),
//! both generated from the same clap definitions as `--help`.

use anyhow::{Context, Result};
use std::path::Path;

/// The shells `muster completions` writes a script for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// Print the completion script for `shell` on stdout.
pub fn completions(shell: Shell) -> Result<u8> {
    let mut cmd = super::command();
    let mut out = std::io::stdout().lock();
    match shell {
        Shell::Bash => clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, "muster", &mut out),
        Shell::Zsh => clap_complete::generate(clap_complete::Shell::Zsh, &mut cmd, "muster", &mut out),
        Shell::Fish => clap_complete::generate(clap_complete::Shell::Fish, &mut cmd, "muster", &mut out),
    }
    Ok(0)
}

/// Write `muster.1` and one page per subcommand at every depth
/// (`muster-run.1`, `muster-agent-serve.1`, ...) into `out`, created if
/// needed; without `out`, print `muster.1` on stdout.
pub fn man(out: Option<&Path>) -> Result<u8> {
    let mut cmd = super::command();
    cmd.build();
    match out {
        None => {
            clap_mangen::Man::new(cmd).render(&mut std::io::stdout().lock()).context("cannot write the man page")?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            let mut written = 0usize;
            write_pages(&cmd, "muster", dir, &mut written)?;
            println!("wrote {} into {}", crate::words::plural(written, "man page"), dir.display());
        }
    }
    Ok(0)
}

/// Write the page of `cmd` as `NAME.1` and recurse into its subcommands
/// (named `NAME-SUB`), leaving out clap's `help` subcommand.
fn write_pages(cmd: &clap::Command, name: &str, dir: &Path, written: &mut usize) -> Result<()> {
    let page = cmd.clone().name(name.to_string()).bin_name(name.replace('-', " "));
    let path = dir.join(format!("{name}.1"));
    let mut buf = Vec::new();
    clap_mangen::Man::new(page).render(&mut buf).context("cannot render a man page")?;
    std::fs::write(&path, buf).with_context(|| format!("cannot write {}", path.display()))?;
    *written += 1;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}
