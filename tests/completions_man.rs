//! `muster completions SHELL` and `muster man`: the bash script loads in
//! a real bash and completes subcommands and options; every man page that
//! `muster man --out DIR` writes renders with `man -l` without a warning.

mod common;
use common::*;
use std::process::Command;

fn completions(shell: &str) -> String {
    let out = Command::new(BIN).args(["completions", shell]).output().unwrap();
    assert!(out.status.success(), "completions {shell}: {}", stderr(&out));
    stdout(&out)
}

/// COMPREPLY after completing the last of `words` with the script loaded.
fn bash_complete(script: &std::path::Path, words: &[&str]) -> Vec<String> {
    let line = words.join(" ");
    let prog = format!(
        "source {script:?} || exit 9\n\
         complete -p muster >/dev/null || exit 8\n\
         COMP_WORDS=({line}); COMP_CWORD={cword}; COMP_LINE={line:?}; COMP_POINT=${{#COMP_LINE}}\n\
         _muster muster {cur:?} {prev:?}\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script = script.display().to_string(),
        cword = words.len() - 1,
        cur = words[words.len() - 1],
        prev = words[words.len() - 2],
    );
    let out = Command::new("bash").arg("-c").arg(&prog).output().unwrap();
    assert!(out.status.success(), "bash completion failed ({}): {}", code(&out), stderr(&out));
    assert_eq!(stderr(&out), "", "bash said something while completing");
    stdout(&out).lines().map(String::from).collect()
}

#[test]
fn bash_completion_loads_and_completes() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("muster.bash");
    std::fs::write(&script, completions("bash")).unwrap();
    let subs = bash_complete(&script, &["muster", ""]);
    for s in ["run", "ping", "agents", "completions", "man"] {
        assert!(subs.iter().any(|w| w == s), "`muster <TAB>` lacks {s}: {subs:?}");
    }
    let opts = bash_complete(&script, &["muster", "run", "--fan"]);
    assert_eq!(opts, ["--fanout"]);
    let shells = bash_complete(&script, &["muster", "completions", ""]);
    assert!(["bash", "zsh", "fish"].iter().all(|s| shells.iter().any(|w| w == s)), "{shells:?}");
}

#[test]
fn zsh_and_fish_scripts_name_every_subcommand() {
    let zsh = completions("zsh");
    assert!(zsh.starts_with("#compdef muster"), "{}", &zsh[..zsh.len().min(200)]);
    let fish = completions("fish");
    for s in ["run", "agents", "rotate-cert"] {
        assert!(zsh.contains(&format!("'{s}:")), "zsh script lacks {s}");
        assert!(fish.contains(&format!("-a \"{s}\"")), "fish script lacks {s}");
    }
    let bad = Command::new(BIN).args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(code(&bad), 1);
    assert!(stderr(&bad).contains("possible values: bash, zsh, fish"), "{}", stderr(&bad));
}

#[test]
fn every_man_page_renders() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN).args(["man", "--out"]).arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "muster man: {}", stderr(&out));
    let mut pages: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
    pages.sort();
    assert!(stdout(&out).contains(&format!("wrote {} man pages", pages.len())), "{}", stdout(&out));
    for want in ["muster.1", "muster-run.1", "muster-agent-serve.1", "muster-agents-add.1", "muster-man.1"] {
        assert!(pages.iter().any(|p| p.ends_with(want)), "no {want} among {pages:?}");
    }
    for page in &pages {
        let r = Command::new("man").arg("-l").arg(page).env("MANWIDTH", "100").env("MANPAGER", "cat").output().unwrap();
        let name = page.file_stem().unwrap().to_string_lossy().into_owned();
        assert!(r.status.success(), "man -l {name}: {}", stderr(&r));
        assert_eq!(stderr(&r), "", "man -l {name} warned");
        let text = stdout(&r);
        assert!(text.contains("NAME") && text.contains(&name), "{name} renders without its name:\n{text}");
        assert!(text.contains("Examples:"), "{name} renders without its examples:\n{text}");
    }
    // Without --out: muster.1 on stdout.
    let one = Command::new(BIN).arg("man").output().unwrap();
    assert!(one.status.success());
    assert!(stdout(&one).starts_with(".ie"), "{}", &stdout(&one)[..100.min(stdout(&one).len())]);
}

#[test]
fn printing_commands_piped_into_head_end_quietly() {
    for cmd in ["completions bash", "nodeset -e 'n[1-99999]'", "man"] {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{BIN} {cmd} | head -1 >/dev/null"))
            .env("RUST_BACKTRACE", "1")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{cmd}: {err}");
        assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{cmd}: {err}");
    }
}
