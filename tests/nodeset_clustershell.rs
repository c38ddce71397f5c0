//! Differential test of muster's node sets against ClusterShell 1.10.1 (the
//! reference its syntax follows): ClusterShell's own kinds of test strings
//! and a few thousand specs from a seeded generator (ranges, steps, padding,
//! spaces in brackets, the four operators, multi-dimensional names) are
//! expanded by both; every spec both accept must give the same set.
//! Excluded, as docs/nodesets.md explains: a digit just before `[`, which
//! muster keeps literal (`n2[8-11]` is n28 n29 n210 n211) where ClusterShell
//! merges it into the range.
//!
//! ClusterShell comes from PyPI in the venv `.ci/run` makes
//! (`target/ci-venv`); `MUSTER_CLUSTERSHELL_NODESET` may name another
//! `nodeset` command. Without one the test fails and says how to install it.

mod common;

use common::BIN;
use muster::dispatch::nodeset;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

/// The `nodeset` command of a ClusterShell 1.10.1 install; its venv's
/// python runs the bulk comparison through the same NodeSet parser.
fn clustershell() -> PathBuf {
    let path = std::env::var_os("MUSTER_CLUSTERSHELL_NODESET")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ci-venv/bin/nodeset"));
    assert!(
        path.is_file(),
        "ClusterShell's nodeset command is not at {}: install it with \
         `python3 -m venv target/ci-venv && target/ci-venv/bin/pip install ClusterShell==1.10.1` \
         (bash .ci/run does this), or set MUSTER_CLUSTERSHELL_NODESET to a nodeset command",
        path.display()
    );
    path
}

/// ClusterShell's reading of each spec: Ok(set) or Err(its message).
fn clustershell_sets(specs: &[String]) -> Vec<Result<BTreeSet<String>, String>> {
    let nodeset_cmd = clustershell();
    let python = nodeset_cmd.with_file_name("python3");
    assert!(python.is_file(), "no python3 beside {} (a venv has one)", nodeset_cmd.display());
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("specs.json");
    std::fs::write(&input, serde_json::to_string(specs).unwrap()).unwrap();
    let script = r#"
import json, sys
import ClusterShell
from ClusterShell.NodeSet import NodeSet, RESOLVER_NOGROUP
assert ClusterShell.__version__ == "1.10.1", ClusterShell.__version__
out = []
for spec in json.load(open(sys.argv[1])):
    try:
        out.append({"ok": list(NodeSet(spec, resolver=RESOLVER_NOGROUP))})
    except Exception as e:
        out.append({"err": "%s: %s" % (type(e).__name__, e)})
json.dump(out, sys.stdout)
"#;
    let o = Command::new(&python).arg("-c").arg(script).arg(&input).output().unwrap();
    assert!(o.status.success(), "ClusterShell failed: {}", String::from_utf8_lossy(&o.stderr));
    let v: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.len(), specs.len());
    v.into_iter()
        .map(|r| match r.get("ok") {
            Some(names) => Ok(names.as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_string()).collect()),
            None => Err(r["err"].as_str().unwrap_or("?").to_string()),
        })
        .collect()
}

/// SplitMix64: a seeded generator, so a failure is reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// One bracket item: n, a-b, a-b/step; padded or not; now and then a
/// mistake (bounds padded differently, downwards, step 0) or spaces.
fn item(r: &mut Rng) -> String {
    let lo = r.below(40);
    let hi = lo + r.below(30);
    let width = match r.below(4) {
        0 => 2,
        1 => 3,
        _ => 0,
    };
    let b = |n: u64| format!("{n:0width$}");
    let mut s = match r.below(6) {
        0 | 1 => b(lo),
        2..=4 => format!("{}-{}", b(lo), b(hi)),
        _ => format!("{}-{}/{}", b(lo), b(hi), 1 + r.below(5)),
    };
    match r.below(60) {
        0 => s = format!("{lo}-{hi:03}"),
        1 => s = format!("{}-{}", hi + 1, lo),
        2 => s = format!("{lo}-{hi}/0"),
        3 => s = format!(" {s} "),
        4 => s = s.replace('-', " - "),
        _ => {}
    }
    s
}

fn brackets(r: &mut Rng) -> String {
    let items: Vec<String> = (0..1 + r.below(3)).map(|_| item(r)).collect();
    format!("[{}]", items.join(","))
}

/// A pattern: a name with up to three bracket groups between literals.
fn pattern(r: &mut Rng) -> String {
    let heads = ["n", "node", "web", "r", "rack-", "c", "ib-", "x4nova", "db"];
    let mids = ["n", "-n", "-ib", "p", "-", "x", "-ib0-", "s"];
    let tails = ["", "", "", "-ib0", "-eth1", "a", "-mgmt"];
    // Now and then a digit just before a bracket: the documented difference.
    let mut s = if r.below(40) == 0 { "prod-2".to_string() } else { r.pick(&heads).to_string() };
    for i in 0..1 + r.below(3) {
        if i > 0 {
            s.push_str(r.pick(&mids));
        }
        if r.below(8) == 0 {
            // A plain number: a node name with a numeric field.
            s.push_str(&r.below(120).to_string());
        } else {
            s.push_str(&brackets(r));
        }
    }
    s.push_str(r.pick(&tails));
    s
}

fn spec(r: &mut Rng) -> String {
    let mut s = pattern(r);
    for _ in 0..r.below(4) {
        let op = r.pick(&[",", ",", "!", "&", "^", " , ", "! ", ","]);
        s.push_str(op);
        s.push_str(&pattern(r));
    }
    s
}

/// Strings in the style of ClusterShell's own tests (tests/NodeSetTest.py,
/// RangeSetTest.py) and of real clusters.
const FIXED: &[&str] = &[
    "nova[1-5]",
    "nova[1,3,5-9]",
    "nova[001-050]",
    "nova[0-9],nova[10-20]",
    "cluster[1-30]-ib0",
    "cluster[1-30]-ib[0-1]",
    "x4nova[1-4]ib",
    "da[30-32]c[1-2]p[1-4]",
    "artcore[3-999]-ib0",
    "r[1-2]n[01-03]",
    "n[1-10/2]",
    "n[01-10/3]",
    "n[0-100/10]",
    "n[1-9/4],n[2-8/3]",
    "web[01-03]!web02",
    "n[1-5]&n[3-8]",
    "n[1-5]^n[3-8]",
    "n[1-5],n[3-8]!n4",
    "a!b!c",
    "n[1-3]!n[1-3]",
    "n[1, 5]",
    "n[ 1 - 3 ],n7",
    "n[1,03,05]",
    "n[1-2,01,001]",
    "n[00-10]",
    "n[009-010]",
    "n[9-010]",
    "n[1-044]",
    "n[08-100]",
    "node1-ib0,node2-ib0",
    "n01-02",
    "a-b-c[1-3]-d",
    "[1-3]-ib",
    "x[1-2]y[3-4]z[5-6]",
    "n[5-3]",
    "n[1-10/0]",
    "n[1/2]",
    "n[]",
    "x,,y",
    "!a",
    "a!",
    "a[1-3",
    "a]",
    "n[1-3]x[1]",
    "n[3-3/5]",
    "nova[1-5/2]-ib[0-1]!nova3-ib1",
    "c[1-4]n[01-16]&c[2-5]n[08-20]",
    "c[1-4]n[01-16]^c[2-5]n[08-20]",
];

#[test]
fn same_sets_as_clustershell() {
    let mut r = Rng(0x6d75_7374_6572_1410);
    let mut specs: Vec<String> = FIXED.iter().map(|s| s.to_string()).collect();
    specs.extend((0..3000).map(|_| spec(&mut r)));
    let theirs = clustershell_sets(&specs);
    let (mut both, mut excluded, mut only_muster, mut only_cs) = (0, 0, 0, 0);
    let mut mismatches = Vec::new();
    let (mut muster_only_examples, mut cs_only_examples) = (Vec::new(), Vec::new());
    for (spec, theirs) in specs.iter().zip(theirs) {
        // The documented difference: a digit just before '[' is literal.
        if spec.as_bytes().windows(2).any(|w| w[0].is_ascii_digit() && w[1] == b'[') {
            excluded += 1;
            continue;
        }
        let ours = nodeset::expand(spec);
        match (ours, theirs) {
            (Ok(ours), Ok(theirs)) => {
                both += 1;
                let ours: BTreeSet<String> = ours.into_iter().collect();
                if ours != theirs {
                    let diff: Vec<_> = ours.symmetric_difference(&theirs).take(5).collect();
                    mismatches.push(format!(
                        "{spec:?}: muster {} names, ClusterShell {}, e.g. {diff:?}",
                        ours.len(),
                        theirs.len()
                    ));
                }
            }
            (Ok(_), Err(e)) => {
                only_muster += 1;
                if muster_only_examples.len() < 10 {
                    muster_only_examples.push(format!("{spec:?} ({e})"));
                }
            }
            (Err(e), Ok(_)) => {
                only_cs += 1;
                if cs_only_examples.len() < 10 {
                    cs_only_examples.push(format!("{spec:?} ({e})"));
                }
            }
            (Err(_), Err(_)) => {}
        }
    }
    println!(
        "{} specs: {both} accepted by both, {excluded} excluded (digit before '['), {only_muster} only by muster, \
         {only_cs} only by ClusterShell",
        specs.len()
    );
    println!("accepted only by muster, e.g.: {muster_only_examples:#?}");
    println!("accepted only by ClusterShell, e.g.: {cs_only_examples:#?}");
    assert!(mismatches.is_empty(), "{} specs differ:\n{}", mismatches.len(), mismatches.join("\n"));
    // The comparison is not vacuous: most generated specs are valid for both.
    assert!(both > (specs.len() - excluded) / 2, "only {both} of {} specs were accepted by both", specs.len());
    assert!(excluded > 0 && excluded < specs.len() / 5, "{excluded} of {} specs excluded", specs.len());
}

/// ClusterShell's `nodeset` command and `muster nodeset` agree on counts
/// and on the expansion, command against command.
#[test]
fn the_commands_agree() {
    let cs = clustershell();
    let dir = tempfile::tempdir().unwrap();
    for spec in
        ["nova[1-5/2]-ib[0-1]!nova3-ib1", "r[1-2]n[01-03]", "n[1,03,05]&n[1-5]", "c[1-4]n[01-16]^c[2-5]n[08-20]"]
    {
        let theirs = Command::new(&cs).args(["-e", "-S", "\n", spec]).output().unwrap();
        assert!(theirs.status.success(), "{spec}: {}", String::from_utf8_lossy(&theirs.stderr));
        let ours = Command::new(BIN)
            .args(["--state-dir", dir.path().to_str().unwrap(), "nodeset", "-e", spec])
            .env("MUSTER_CONFIG", dir.path())
            .output()
            .unwrap();
        assert!(ours.status.success(), "{spec}: {}", String::from_utf8_lossy(&ours.stderr));
        let set = |o: &[u8]| String::from_utf8_lossy(o).split_whitespace().map(str::to_string).collect::<BTreeSet<_>>();
        assert_eq!(set(&ours.stdout), set(&theirs.stdout), "{spec}");
        let count = Command::new(BIN)
            .args(["--state-dir", dir.path().to_str().unwrap(), "nodeset", "-c", spec])
            .env("MUSTER_CONFIG", dir.path())
            .output()
            .unwrap();
        let their_count = Command::new(&cs).args(["-c", spec]).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&count.stdout), String::from_utf8_lossy(&their_count.stdout), "{spec}");
    }
}
