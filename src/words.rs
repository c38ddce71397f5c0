//! Small helpers for the English of operator-facing text: counts with the
//! right plural ("1 target", "3 targets") and the verb that agrees.

/// `"1 target"`, `"0 targets"`, `"3 targets"`, for a noun whose plural
/// adds an `s`.
pub fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `"is"` for one, `"are"` otherwise.
pub fn is_are(n: usize) -> &'static str {
    if n == 1 {
        "is"
    } else {
        "are"
    }
}

/// `"was"` for one, `"were"` otherwise.
pub fn was_were(n: usize) -> &'static str {
    if n == 1 {
        "was"
    } else {
        "were"
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_agree() {
        assert_eq!(super::plural(1, "agent"), "1 agent");
        assert_eq!(super::plural(0, "agent"), "0 agents");
        assert_eq!(super::plural(2, "target"), "2 targets");
        assert_eq!((super::is_are(1), super::was_were(2)), ("is", "were"));
    }
}
