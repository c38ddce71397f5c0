//! Folding host names back into node-set form for display, as `clubak -b`
//! and `nodeset -f` do (`web01 web02 web03` -> `web[01-03]`): the inverse of
//! [`super::expand`] for names without whitespace, commas or brackets.

use super::pad_width;
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// How the numbers of one folded group are written.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    /// No numeric field (or one too large for u64): written as is.
    Plain,
    /// No leading zeros; widths may differ ("web[9-10]").
    Natural,
    /// Zero-padded to this many digits ("web[09-10]").
    Fixed(usize),
}

/// Split a name around its trailing-most run of ASCII digits:
/// (prefix, digits, suffix, value). None without digits or if they overflow.
fn split_number(name: &str) -> Option<(&str, &str, &str, u64)> {
    let end = name.rfind(|c: char| c.is_ascii_digit())? + 1;
    let head = name[..end].trim_end_matches(|c: char| c.is_ascii_digit());
    let digits = &name[head.len()..end];
    Some((head, digits, &name[end..], digits.parse().ok()?))
}

/// Fold names back into the compact form, as clubak -b / nodeset -f do:
/// names that share a prefix and suffix around one trailing-most numeric
/// field are grouped, numbers sorted, consecutive runs of equal width written
/// as a-b, e.g. ["web01","web02","web03","web05","db1"] -> "db1,web[01-03,05]".
///
/// Single-member groups are written plainly ("web05" not "web[05]"). Names
/// without digits (or with a number too large for u64) are kept as they are.
/// Output groups are sorted by (prefix, suffix). Different widths ("web9",
/// "web10") are grouped as "web[9-10]" only if neither has a leading zero;
/// "web09","web10" -> "web[09-10]" (same width 2). Mixed like "n1","n01" stay
/// separate entries ("n1,n01"). Empty names and duplicates are dropped, so an
/// empty list folds to "". Names are assumed to be valid node names (no
/// whitespace, commas or brackets); `expand(&fold(names))` gives them back
/// whenever the fold is at most [`MAX_SPEC_LEN`] bytes (a fold is for
/// display and is not bounded).
pub fn fold<S: AsRef<str>>(names: &[S]) -> String {
    use Class::{Fixed, Natural, Plain};
    // A number without leading zero joins the zero-padded group of its width.
    let padded: HashSet<(&str, &str, usize)> = names
        .iter()
        .filter_map(|name| split_number(name.as_ref()))
        .map(|(prefix, digits, suffix, _)| (prefix, suffix, pad_width(digits)))
        .collect();
    let mut groups: BTreeMap<(&str, &str, Class), BTreeSet<u64>> = BTreeMap::new();
    for name in names.iter().map(AsRef::as_ref).filter(|n| !n.is_empty()) {
        let (key, value) = match split_number(name) {
            None => ((name, "", Plain), 0),
            Some((p, d, s, v)) if padded.contains(&(p, s, d.len())) => ((p, s, Fixed(d.len())), v),
            Some((p, _, s, v)) => ((p, s, Natural), v),
        };
        groups.entry(key).or_default().insert(value);
    }
    let folded: Vec<String> = groups
        .iter()
        .map(|(&(prefix, suffix, class), values)| {
            let run = runs(values, if let Fixed(w) = class { w } else { 0 });
            match class {
                Plain => prefix.to_string(),
                _ if values.len() == 1 => format!("{prefix}{run}{suffix}"),
                _ => format!("{prefix}[{run}]{suffix}"),
            }
        })
        .collect();
    folded.join(",")
}

/// "1-3,5" for {1,2,3,5}, each number zero-padded to `w` digits.
fn runs(values: &BTreeSet<u64>, w: usize) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut iter = values.iter().copied().peekable();
    while let Some(lo) = iter.next() {
        let mut hi = lo;
        while iter.next_if(|&n| Some(n) == hi.checked_add(1)).is_some() {
            hi += 1;
        }
        out.push(if lo == hi { format!("{lo:0w$}") } else { format!("{lo:0w$}-{hi:0w$}") });
    }
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::super::expand;
    use super::*;
    use proptest::prelude::*;

    fn folds(names: &str, want: &str) {
        let names: Vec<&str> = names.split_whitespace().collect();
        assert_eq!(fold(&names), want, "folding {names:?}");
    }

    #[test]
    fn folds_examples() {
        folds("web01 web02 web03 web05 db1", "db1,web[01-03,05]");
        folds("web05", "web05");
        folds("localhost web2 web1 web1", "localhost,web[1-2]");
        folds("web9 web10", "web[9-10]");
        folds("web09 web10", "web[09-10]");
        folds("n1 n01", "n1,n01");
        folds("n1-ib n2-ib rack1-n05 rack1-n06", "n[1-2]-ib,rack1-n[05-06]");
        folds("n99999999999999999999 n0 n1", "n[0-1],n99999999999999999999");
        folds("", "");
    }

    fn arb_name() -> impl Strategy<Value = String> {
        let prefix = prop::sample::select(vec!["web", "db", "n", "rack1-n"]);
        let suffix = prop::sample::select(vec!["", "", "-ib"]);
        (prefix, 0u32..130, 0usize..4, suffix).prop_map(|(p, n, w, s)| format!("{p}{n:0w$}{s}"))
    }

    proptest! {
        #[test]
        fn fold_then_expand_round_trips(names in prop::collection::vec(arb_name(), 1..40)) {
            let folded = fold(&names);
            let back = expand(&folded).unwrap();
            let want: BTreeSet<&str> = names.iter().map(String::as_str).collect();
            prop_assert_eq!(back.len(), want.len(), "{}", folded);
            prop_assert_eq!(back.iter().map(String::as_str).collect::<BTreeSet<_>>(), want);
            prop_assert_eq!(fold(&back), folded);
        }
    }
}
