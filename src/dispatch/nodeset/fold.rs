//! Folding host names back into node-set form for display, as ClusterShell's
//! `nodeset -f` and `clubak -b` do: `web01 web02 web03` -> `web[01-03]`,
//! `r1n01 .. r2n03` -> `r[1-2]n[01-03]`, `artcore3-ib0 .. artcore999-ib0` ->
//! `artcore[3-999]-ib0`. The inverse of [`super::expand`] for the names it
//! makes.

use std::collections::{BTreeMap, BTreeSet};

/// One numeric field of a name: its value and its zero-padded width (0 when
/// written without a leading zero: "7", "10"; 3 for "007").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Num {
    value: u64,
    width: usize,
}

impl Num {
    fn digits(self) -> usize {
        self.value.checked_ilog10().unwrap_or(0) as usize + 1
    }
}

/// A name split into literal text around its numeric fields:
/// `r1n01-ib` -> (["r", "n", "-ib"], [1, 01]). A run of digits too long for
/// u64 stays in the text.
fn split_fields(name: &str) -> (Vec<String>, Vec<Num>) {
    let (mut texts, mut nums, mut text) = (Vec::new(), Vec::new(), String::new());
    let mut rest = name;
    while let Some(c) = rest.chars().next() {
        let run = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if run == 0 {
            text.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let digits = &rest[..run];
        match digits.parse::<u64>() {
            Ok(value) => {
                let width = if digits.len() > 1 && digits.starts_with('0') { digits.len() } else { 0 };
                nums.push(Num { value, width });
                texts.push(std::mem::take(&mut text));
            }
            Err(_) => text.push_str(digits),
        }
        rest = &rest[run..];
    }
    texts.push(text);
    (texts, nums)
}

/// Fold names into the compact form, as `nodeset -f` does: names with the
/// same text around their numeric fields are grouped, and the set of their
/// number tuples is written as a few products of ranges, e.g.
/// `["web01","web02","web03","web05","db1"]` -> `"db1,web[01-03,05]"`,
/// `["r1n1","r1n2","r2n1","r2n2"]` -> `"r[1-2]n[1-2]"`,
/// `["n1","n03","n05"]` -> `"n[1,03,05]"` (mixed padding in one bracket).
///
/// A field with one value is written plainly (`r1n[01-03]`, not `r[1]n[...]`);
/// fields are folded from the last: names that share every field but the
/// last are grouped, then those with the same last-field set are folded on
/// the fields before. Output is sorted by the text around the fields, then by
/// number. Empty names and duplicates are dropped; an empty list folds to "".
/// For names made by [`super::expand`] (no whitespace, commas, brackets or
/// operators), `expand(&fold(names))` gives the same set back whenever the
/// fold is at most [`super::MAX_SPEC_LEN`] bytes (a fold is for display and
/// is not bounded).
pub fn fold<S: AsRef<str>>(names: &[S]) -> String {
    let mut by_text: BTreeMap<Vec<String>, BTreeSet<Vec<Num>>> = BTreeMap::new();
    for name in names.iter().map(AsRef::as_ref).filter(|n| !n.is_empty()) {
        let (texts, nums) = split_fields(name);
        by_text.entry(texts).or_default().insert(nums);
    }
    let mut out: Vec<String> = Vec::new();
    for (texts, tuples) in &by_text {
        let dims = texts.len() - 1;
        let mut boxes = fold_boxes(tuples.iter().cloned().collect(), dims);
        boxes.sort_by_key(|b| b.iter().map(|s| s.first().copied()).collect::<Vec<_>>());
        for b in boxes {
            let mut s = texts[0].clone();
            for (set, text) in b.iter().zip(&texts[1..]) {
                if set.len() == 1 {
                    s.push_str(&render(set));
                } else {
                    s.push('[');
                    s.push_str(&render(set));
                    s.push(']');
                }
                s.push_str(text);
            }
            out.push(s);
        }
    }
    out.join(",")
}

/// Cover a set of `dims`-tuples with products of per-field sets: group by
/// every field but the last, then fold the heads that share a last-field set.
fn fold_boxes(tuples: Vec<Vec<Num>>, dims: usize) -> Vec<Vec<BTreeSet<Num>>> {
    if dims == 0 {
        return if tuples.is_empty() { Vec::new() } else { vec![Vec::new()] };
    }
    let mut lasts: BTreeMap<Vec<Num>, BTreeSet<Num>> = BTreeMap::new();
    for mut t in tuples {
        let last = t.pop().expect("a tuple has `dims` fields");
        lasts.entry(t).or_default().insert(last);
    }
    let mut heads: BTreeMap<BTreeSet<Num>, Vec<Vec<Num>>> = BTreeMap::new();
    for (head, last) in lasts {
        heads.entry(last).or_default().push(head);
    }
    let mut out = Vec::new();
    for (last, hs) in heads {
        for mut b in fold_boxes(hs, dims - 1) {
            b.push(last.clone());
            out.push(b);
        }
    }
    out
}

/// "1-3,5" for {1,2,3,5}; padded numbers keep their width, and a number
/// without a leading zero joins the padded run of its width ("09-10").
fn render(set: &BTreeSet<Num>) -> String {
    let widths: BTreeSet<usize> = set.iter().map(|n| n.width).filter(|&w| w > 0).collect();
    let mut classes: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    for n in set {
        let class = if n.width == 0 && widths.contains(&n.digits()) { n.digits() } else { n.width };
        classes.entry(class).or_default().push(n.value);
    }
    let mut runs: Vec<(u64, usize, String)> = Vec::new();
    for (w, mut values) in classes {
        values.sort_unstable();
        values.dedup();
        let mut iter = values.into_iter().peekable();
        while let Some(lo) = iter.next() {
            let mut hi = lo;
            while iter.next_if(|&n| Some(n) == hi.checked_add(1)).is_some() {
                hi += 1;
            }
            let text = if lo == hi { format!("{lo:0w$}") } else { format!("{lo:0w$}-{hi:0w$}") };
            runs.push((lo, w, text));
        }
    }
    runs.sort();
    runs.into_iter().map(|(_, _, text)| text).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

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
        folds("n1 n01", "n[1,01]");
        folds("n1 n03 n05", "n[1,03,05]");
        folds("n1 n2 n01 n001", "n[1-2,01,001]");
        folds("n1-ib n2-ib rack1-n05 rack1-n06", "n[1-2]-ib,rack1-n[05-06]");
        folds("n99999999999999999999 n0 n1", "n[0-1],n99999999999999999999");
        folds("r1n01 r1n02 r1n03 r2n01 r2n02 r2n03", "r[1-2]n[01-03]");
        folds("r1n1 r1n2 r2n1", "r1n[1-2],r2n1");
        folds("1-ib 2-ib 3-ib", "[1-3]-ib");
        folds("10.0.0.5 10.0.0.6", "10.0.0.[5-6]");
        folds("", "");
    }

    #[test]
    fn folds_on_the_field_that_varies() {
        let names: Vec<String> = (3..=999).map(|n| format!("artcore{n}-ib0")).collect();
        assert_eq!(fold(&names), "artcore[3-999]-ib0");
        let names: Vec<String> = (1..=4).flat_map(|r| (1..=8).map(move |n| format!("c{r}-n{n:02}-ib0"))).collect();
        assert_eq!(fold(&names), "c[1-4]-n[01-08]-ib0");
    }
}
