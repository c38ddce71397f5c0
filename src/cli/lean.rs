//! The agent roles' start. `muster agent serve` and `muster ns8-agent` run
//! on every host of a fleet for months, so they start without building the
//! parser of the whole command tree (every subcommand with its options and
//! help), which touches pages of the binary that would then stay resident
//! for the agent's life. Only the role's own arguments are parsed, with the
//! same clap definitions the full parser uses. Anything else, such as a
//! global option before the role, `--help` or a mistake, falls through to
//! the full parser, so help and errors read as for every other command.

use super::{admin, finish, init_logging, ServeArgs};
use clap::{Args, FromArgMatches};
use std::ffi::OsString;
use std::process::ExitCode;

/// Start an agent role if the command line is one, and return its exit
/// status; `None` when the full parser must handle the command line.
pub fn start() -> Option<ExitCode> {
    let args: Vec<OsString> = std::env::args_os().collect();
    let rest = role_args(&args)?;
    match args[1].to_str()? {
        "agent" => {
            let a = parse::<ServeArgs>("serve", rest)?;
            init_logging(tracing::Level::INFO);
            Some(finish(admin::agent_serve(&a.config)))
        }
        _ => {
            let a = parse::<crate::ns8::Ns8Args>("ns8-agent", rest)?;
            init_logging(tracing::Level::INFO);
            Some(finish(crate::ns8::main(a)))
        }
    }
}

/// The role's own arguments (its name first) when `args` starts an agent
/// role: `muster agent serve ...` or `muster ns8-agent ...`.
fn role_args(args: &[OsString]) -> Option<&[OsString]> {
    match (args.get(1)?.to_str()?, args.get(2).and_then(|a| a.to_str())) {
        ("agent", Some("serve")) => Some(&args[2..]),
        ("ns8-agent", _) => Some(&args[1..]),
        _ => None,
    }
}

/// Parse one role's arguments; `None` on help or any error.
fn parse<A: Args + FromArgMatches>(name: &'static str, args: &[OsString]) -> Option<A> {
    let m = A::augment_args(clap::Command::new(name)).try_get_matches_from(args).ok()?;
    A::from_arg_matches(&m).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn only_agent_roles_take_the_lean_start() {
        let serve = os(&["muster", "agent", "serve", "--config", "/x.toml"]);
        assert_eq!(role_args(&serve).unwrap(), &serve[2..]);
        let ns8 = os(&["muster", "ns8-agent", "module/x"]);
        assert_eq!(role_args(&ns8).unwrap(), &ns8[1..]);
        for other in [
            &["muster"][..],
            &["muster", "agent"],
            &["muster", "agent", "stdio"],
            &["muster", "--state-dir", "s", "agent", "serve"],
            &["muster", "run", "all", "--", "true"],
        ] {
            assert!(role_args(&os(other)).is_none(), "{other:?}");
        }
    }

    #[test]
    fn help_and_mistakes_fall_through_to_the_full_parser() {
        let a = parse::<ServeArgs>("serve", &os(&["serve", "--config", "/x.toml"])).unwrap();
        assert_eq!(a.config, std::path::Path::new("/x.toml"));
        let a = parse::<ServeArgs>("serve", &os(&["serve"])).unwrap();
        assert_eq!(a.config, std::path::Path::new("/etc/muster/agent.toml"));
        for bad in [&["serve", "--help"][..], &["serve", "--confg", "x"], &["serve", "extra"], &["serve", "--config"]] {
            assert!(parse::<ServeArgs>("serve", &os(bad)).is_none(), "{bad:?}");
        }
        let a = parse::<crate::ns8::Ns8Args>("ns8-agent", &os(&["ns8-agent", "--agentid", "module/m1", "/a"])).unwrap();
        assert_eq!(a.agentid.as_deref(), Some("module/m1"));
        assert!(parse::<crate::ns8::Ns8Args>("ns8-agent", &os(&["ns8-agent", "-h"])).is_none());
    }
}
