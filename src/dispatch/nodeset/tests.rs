//! Unit and property tests of the node-set library.

use super::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

fn ok(spec: &str) -> Vec<String> {
    expand(spec).unwrap_or_else(|e| panic!("{spec:?}: {e}"))
}

fn groups() -> BTreeMap<String, Vec<String>> {
    let mut g = BTreeMap::new();
    g.insert("web".to_string(), ok("web[1-4]"));
    g.insert("eu".to_string(), ok("web[3-6],db1"));
    g.insert("all".to_string(), ok("web[1-6],db[1-2]"));
    g.insert("rack1".to_string(), ok("r1n[1-2]"));
    g.insert("rack2".to_string(), ok("r2n[1-2]"));
    g
}

fn with_groups(spec: &str) -> Result<Vec<String>, NodeSetError> {
    expand_with(spec, &groups(), Bounds::DEFAULT)
}

#[test]
fn expands_examples() {
    let names = ok("web[01-20],db1,db[3,5-6]");
    assert_eq!(names.len(), 24);
    assert_eq!((names[0].as_str(), names[19].as_str()), ("web01", "web20"));
    assert_eq!(names[20..], ["db1", "db3", "db5", "db6"]);
    assert_eq!(ok("web[08-10]"), ["web08", "web09", "web10"]);
    assert_eq!(ok("n[1-10]")[8..], ["n9", "n10"]);
    assert_eq!(ok("n[01-10]")[8..], ["n09", "n10"]);
    assert_eq!(ok("r[1-2]n[1-2]"), ["r1n1", "r1n2", "r2n1", "r2n2"]);
    assert_eq!(ok("n2,n[1-3],n2"), ["n2", "n1", "n3"]);
    assert_eq!(ok(" web1 ,\tdb2 "), ["web1", "db2"]);
    assert_eq!(ok("[0-1]-ib,rack1-n[05]"), ["0-ib", "1-ib", "rack1-n05"]);
    assert_eq!(ok("n[1-100000]").len(), 100_000);
    assert_eq!(ok("admin@10.0.0.5:2222,web1.example.com"), ["admin@10.0.0.5:2222", "web1.example.com"]);
    // A digit just before '[' is literal text.
    assert_eq!(ok("n2[8-11]"), ["n28", "n29", "n210", "n211"]);
    assert_eq!(ok("n[00-02]"), ["n00", "n01", "n02"]);
}

#[test]
fn steps() {
    assert_eq!(ok("n[1-10/2]"), ["n1", "n3", "n5", "n7", "n9"]);
    assert_eq!(ok("n[01-10/3]"), ["n01", "n04", "n07", "n10"]);
    assert_eq!(ok("n[1-10/3],n[2-9/7]"), ["n1", "n4", "n7", "n10", "n2", "n9"]);
    assert_eq!(ok("n[1-5/1]"), ok("n[1-5]"));
    assert_eq!(ok("n[3-3/5]"), ["n3"]);
    assert_eq!(ok("n[0-18446744073709551615/18446744073709551615]"), ["n0", "n18446744073709551615"]);
    assert_eq!(ok("r[1-5/2]n[1-2]").len(), 6);
}

#[test]
fn operators_left_to_right() {
    assert_eq!(ok("web[01-03]!web02"), ["web01", "web03"]);
    assert_eq!(ok("n[1-5]&n[3-8]"), ["n3", "n4", "n5"]);
    assert_eq!(ok("n[1-5]^n[3-8]"), ["n1", "n2", "n6", "n7", "n8"]);
    assert_eq!(ok("n[1-5],n[3-8]!n4"), ["n1", "n2", "n3", "n5", "n6", "n7", "n8"]);
    assert_eq!(ok("a!b!c"), ["a"]);
    assert_eq!(ok("n[1-3]!n[1-3]"), Vec::<String>::new());
    assert_eq!(ok("n[1-3]!n[1-3],n7"), ["n7"]);
    assert_eq!(ok("n[1-6]!n[2-3]&n[1-4]"), ["n1", "n4"]);
    assert_eq!(ok("n1 ! n1,n2 "), ["n2"]);
    // Operators never end up in a name.
    for spec in ["web[01-03]!web02", "a&b", "a^b", "a!b"] {
        assert!(ok(spec).iter().all(|n| !n.contains(['!', '&', '^'])), "{spec}");
    }
}

#[test]
fn spaces_inside_brackets_are_ignored() {
    assert_eq!(ok("n[1, 5]"), ["n1", "n5"]);
    assert_eq!(ok("n[ 1 - 3 ]"), ["n1", "n2", "n3"]);
    assert_eq!(ok("n[1-10 / 5]"), ["n1", "n6"]);
}

#[test]
fn groups_and_all() {
    assert_eq!(with_groups("@web").unwrap(), ok("web[1-4]"));
    assert_eq!(with_groups("@web&@eu").unwrap(), ["web3", "web4"]);
    assert_eq!(with_groups("@all!@web").unwrap(), ["web5", "web6", "db1", "db2"]);
    assert_eq!(with_groups("all,x1").unwrap().len(), 9);
    assert_eq!(with_groups("x1,all").unwrap()[0], "x1");
    assert_eq!(with_groups("all").unwrap().len(), 8);
    assert_eq!(with_groups("@rack[1-2]").unwrap(), ["r1n1", "r1n2", "r2n1", "r2n2"]);
    assert_eq!(with_groups(" @web , db9").unwrap().len(), 5);
    // Only a leading '@' names a group.
    assert_eq!(with_groups("root@web1").unwrap(), ["root@web1"]);
    let e = with_groups("@web,@nope").unwrap_err().to_string();
    assert_eq!(e, "unknown group @nope; known groups: @all @eu @rack1 @rack2 @web");
    let e = expand("all,web1").unwrap_err().to_string();
    assert!(e.starts_with("unknown group @all; no groups are known here"), "{e}");
    for bad in ["@", "@@web", "@-x", "@web!x,@", "@.x", "@we$b", "@rack[1-2]x y"] {
        assert!(with_groups(bad).is_err(), "{bad:?} accepted");
    }
    assert!(with_groups("@we$b").unwrap_err().to_string().contains("character '$'"));
    // Group members count toward the bound.
    let small = Bounds { max_names: 5, ..Bounds::DEFAULT };
    assert!(matches!(expand_with("@web,@eu", &groups(), small), Err(NodeSetError::TooMany { .. })));
    assert_eq!(expand_with("@web,x", &groups(), small).unwrap().len(), 5);
    assert!(matches!(with_groups("@g[1-9999999999]"), Err(NodeSetError::TooMany { .. })));
}

#[test]
fn rejects_bad_specs() {
    let cases = [
        ("", "empty node set"),
        ("  ", "empty node set"),
        (",,", "empty element in \",,\""),
        ("a,,b", "empty element in \"a,,b\""),
        (",a", "empty element in \",a\""),
        ("a, ", "empty element in \"a, \""),
        ("!a", "missing node set before '!' in \"!a\"; '!' goes between two node sets, as in web[1-4]!web2"),
        ("a!", "missing node set after '!' in \"a!\""),
        ("a&&b", "missing node set after '&' in \"a&&b\""),
        ("^", "missing node set before '^'"),
        ("a!,b", "missing node set after '!' in \"a!,b\""),
        ("a,!b", "empty element in \"a,!b\""),
        ("web1],db", "unmatched ']' in \"web1]\""),
        ("a[1]2]", "unmatched ']' in \"a[1]2]\""),
        ("a[1[2]],b", "nested '[' in \"a[1[2]]\""),
        ("a[1[2", "unclosed '[' in \"a[1[2\""),
        ("web[]", "empty brackets in \"web[]\""),
        ("web[ ]", "empty brackets in \"web[ ]\""),
        ("w[1,,2]", "empty range item in \"w[1,,2]\""),
        ("w[a-3]", "range bound \"a\" in \"w[a-3]\" is not a number; ranges are written a-b or a-b/step"),
        ("w[-3]", "range bound \"\" in \"w[-3]\" is not"),
        ("w[+3]", "range bound \"+3\" in \"w[+3]\" is not"),
        ("w[1-2-3]", "range bound \"2-3\" in \"w[1-2-3]\""),
        ("n[1-2/2-3]", "step in \"1-2/2-3\" in \"n[1-2/2-3]\" is not a whole number; steps are written a-b/step"),
        ("n[1-10/0]", "step in \"1-10/0\" in \"n[1-10/0]\" is 0; steps are written a-b/step, as in name[1-10/2]"),
        ("n[1/2]", "step in \"1/2\" in \"n[1/2]\" has no range before it; steps are written a-b/step"),
        ("n[1-3/]", "step in \"1-3/\" in \"n[1-3/]\" is not a whole number"),
        ("n[1-3/99999999999999999999]", "step in \"1-3/99999999999999999999\" in \"n[1-3/99999999999999999999]\" is too large"),
        ("n[1-3/2/2]", "step in \"1-3/2/2\" in \"n[1-3/2/2]\" is not a whole number"),
        ("w[99999999999999999999]", "number \"99999999999999999999\""),
        ("web[5-3]", "range \"5-3\" in \"web[5-3]\" runs down"),
        ("n[9-010]", "range \"9-010\" in \"n[9-010]\" has bounds padded differently (\"9\" and \"010\"); a zero-padded range has bounds of one width"),
        ("n[1-044]", "range \"1-044\" in \"n[1-044]\" has bounds padded differently"),
        ("n[08-100]", "range \"08-100\" in \"n[08-100]\" has bounds padded differently"),
        ("n[010-9]", "range \"010-9\" in \"n[010-9]\" runs downwards"),
        ("n[0-010]", "range \"0-010\" in \"n[0-010]\" has bounds padded differently"),
        ("n[1-1000001]", "\"n[1-1000001]\" expands to more than"),
        ("r[1-400]n[1-400]", "\"r[1-400]n[1-400]\" expands to"),
        ("n[1-6],m[1-99999]", "\"n[1-6],m[1-99999]\" expands to"),
        ("web 01", "whitespace inside node name \"web 01\"; separate node names with commas"),
        ("n [1-3]", "whitespace inside node name \"n [1-3]\""),
        ("we$b", "character '$' in \"we$b\" cannot be in a node name; names use letters, digits and - . _ : @"),
        ("a;rm", "character ';' in \"a;rm\""),
        ("a/b", "character '/' in \"a/b\""),
        ("-oProxyCommand=x", "character '=' in \"-oProxyCommand=x\""),
        ("-x", "node name \"-x\" starts with '-'; a node name starts with a letter, a digit or a range"),
        ("-[1-2]", "node name \"-[1-2]\" starts with '-'"),
        (".a,b", "node name \".a\" starts with '.'"),
        ("n[1-2]!@", "bad group name in \"@\""),
    ];
    for (spec, want) in cases {
        let msg = expand(spec).unwrap_err().to_string();
        assert!(msg.starts_with(want), "{spec:?} gave {msg:?}");
    }
    let msg = expand("x,web[01-03").unwrap_err().to_string();
    assert_eq!(msg, "unclosed '[' in \"web[01-03\"; write ranges as name[01-20]");
    assert!(expand("n[0-999999]").unwrap_err().to_string().contains("100000 names"));
    // Neighbours of the padding rule that are fine.
    assert_eq!(ok("n[009-010]").len(), 2);
    assert_eq!(ok("n[9-10]").len(), 2);
    assert_eq!(ok("n[0-10]").len(), 11);
    assert_eq!(ok("n[00-10]").len(), 11);
}

#[test]
fn work_is_bounded_before_generating() {
    let long = "a".repeat(MAX_SPEC_LEN + 1);
    assert_eq!(expand(&long), Err(NodeSetError::TooLong { len: MAX_SPEC_LEN + 1, max: MAX_SPEC_LEN }));
    assert_eq!(expand(&"a".repeat(MAX_SPEC_LEN)).unwrap().len(), 1, "exactly the limit is fine");
    // 100,000 names of 200 bytes would be 20 MB: refused before any is made.
    let wide = format!("{}[1-100000]", "x".repeat(194));
    assert!(matches!(expand(&wide), Err(NodeSetError::TooBig { .. })));
    assert_eq!(expand(&format!("{}[1-100000]", "x".repeat(144))).unwrap().len(), 100_000);
    let padded = format!("{}[0000000001-0000100000]", "y".repeat(158));
    assert!(matches!(expand(&padded), Err(NodeSetError::TooBig { .. })));
    // Billions of names are refused by counting, with steps too, and at once.
    let t0 = std::time::Instant::now();
    for spec in ["n[0-18446744073709551615]", "r[1-99999]n[1-99999]", "n[1-9999999999/2]", "a[1-9]!b[0-99999999999]"] {
        assert!(matches!(expand(spec), Err(NodeSetError::TooMany { .. })), "{spec}");
    }
    for _ in 0..20 {
        assert!(expand(&wide).is_err());
        assert!(expand(&long).is_err());
    }
    assert!(t0.elapsed() < std::time::Duration::from_secs(1), "refusals are cheap: {:?}", t0.elapsed());
    assert_eq!(ok("n[1-199999/2]").len(), 100_000);
    let small = Bounds { max_names: 10, max_spec_len: 20, max_name_bytes: 30 };
    assert_eq!(expand_within("n[1-10]", small).unwrap(), expand("n[1-10]").unwrap());
    assert_eq!(expand_within("n[1-11]", small), Err(NodeSetError::TooMany { spec: "n[1-11]".into(), max: 10 }));
    assert!(matches!(expand_within("abcdefghijkl[1-3]", small), Err(NodeSetError::TooBig { max: 30, .. })));
    assert!(matches!(expand_within(&"a".repeat(21), small), Err(NodeSetError::TooLong { len: 21, max: 20 })));
}

#[test]
fn folds_what_it_expands() {
    for (spec, want) in [
        ("r[1-2]n[01-03]", "r[1-2]n[01-03]"),
        ("artcore[3-999]-ib0", "artcore[3-999]-ib0"),
        ("n1,n03,n05", "n[1,03,05]"),
        ("n[1-10/2]", "n[1,3,5,7,9]"),
        ("web[01-03]!web02", "web[01,03]"),
        ("r[1-3]n[1-4]!r2n3", "r[1,3]n[1-4],r2n[1-2,4]"),
    ] {
        assert_eq!(fold(&ok(spec)), want, "{spec}");
        let back: BTreeSet<String> = ok(want).into_iter().collect();
        assert_eq!(back, ok(spec).into_iter().collect(), "{spec}");
    }
}

/// A number as a range bound, padded to `width` digits when width > 0.
fn bound(n: u32, width: usize) -> String {
    format!("{n:0width$}")
}

/// One bracket item: n, a-b or a-b/step, padded or not.
fn arb_item() -> impl Strategy<Value = String> {
    (0u32..60, 0u32..25, 0usize..4, prop::option::of(1u32..6), any::<bool>()).prop_map(|(lo, len, pad, step, range)| {
        let width = if pad < 2 { 0 } else { pad + 1 };
        let hi = lo + len;
        let width = if width > 0 { width.max(bound(hi, 0).len()) } else { 0 };
        match (range, step) {
            (false, _) => bound(lo, width),
            (true, None) => format!("{}-{}", bound(lo, width), bound(hi, width)),
            (true, Some(s)) => format!("{}-{}/{s}", bound(lo, width), bound(hi, width)),
        }
    })
}

fn arb_brackets() -> impl Strategy<Value = String> {
    prop::collection::vec(arb_item(), 1..3).prop_map(|items| format!("[{}]", items.join(",")))
}

/// A pattern of agent-name characters: literal pieces and brackets.
fn arb_pattern() -> impl Strategy<Value = String> {
    let first = prop_oneof!["[a-z][a-z0-9-]{0,3}", arb_brackets()];
    let more = prop::collection::vec(prop_oneof!["[a-z-][a-z0-9-]{0,3}", arb_brackets()], 0..3);
    (first, more).prop_map(|(f, m)| format!("{f}{}", m.concat()))
}

fn arb_spec() -> impl Strategy<Value = String> {
    let op = prop::sample::select(vec![",", ",", "!", "&", "^", " , "]);
    (arb_pattern(), prop::collection::vec((op, arb_pattern()), 0..3))
        .prop_map(|(first, rest)| rest.into_iter().fold(first, |acc, (op, p)| format!("{acc}{op}{p}")))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn expand_never_panics(spec in any::<String>()) {
        let _ = expand(&spec);
    }

    #[test]
    fn expand_never_panics_on_syntax(spec in "[a-z0-9\\[\\],!&^/@ \\-]{0,40}") {
        if let Ok(names) = with_groups(&spec) {
            for name in names {
                prop_assert!(name.starts_with(|c: char| c.is_ascii_alphanumeric()), "{:?} from {:?}", name, spec);
                prop_assert!(!name.contains([',', '!', '&', '^', '[', ']', '/', ' ']), "{:?} from {:?}", name, spec);
            }
        }
    }

    /// fold(expand(s)) expands to the same set, and folding is stable.
    #[test]
    fn fold_of_expand_expands_to_the_same_set(spec in arb_spec()) {
        if let Ok(names) = expand(&spec) {
            let folded = fold(&names);
            let back = if names.is_empty() { Vec::new() } else { expand(&folded).map_err(|e| TestCaseError::fail(format!("{folded:?}: {e}")))? };
            let want: BTreeSet<&str> = names.iter().map(String::as_str).collect();
            prop_assert_eq!(back.len(), want.len(), "{} folded to {}", spec, folded);
            prop_assert_eq!(back.iter().map(String::as_str).collect::<BTreeSet<_>>(), want);
            prop_assert_eq!(fold(&back), folded);
        }
    }

    /// Every name a spec of agent-name characters expands to passes the
    /// agent-name rule: no operator, comma, bracket or space leaks into one.
    #[test]
    fn expand_yields_valid_agent_names(spec in arb_spec()) {
        if let Ok(names) = expand(&spec) {
            for name in names {
                prop_assert!(crate::protocol::check_action_name(&name).is_ok(), "{:?} from {:?}", name, spec);
            }
        }
    }

    /// Most generated specs are accepted (the generator is not all errors).
    #[test]
    fn generated_patterns_expand(p in arb_pattern()) {
        let first = p.chars().next().unwrap_or('a');
        if first.is_ascii_alphanumeric() || first == '[' {
            let r = expand(&p);
            prop_assert!(r.is_ok() || p == "all" || matches!(r, Err(NodeSetError::TooMany { .. })), "{:?}: {:?}", p, r);
        }
    }
}
