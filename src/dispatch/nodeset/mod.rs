//! Node sets in the syntax of ClusterShell's `nodeset` (1.10): [`expand`]
//! turns a spec such as `web[01-20/2],db[3,5-6]!db5` into the host names it
//! denotes, and [`fold`] turns a list of names back into that compact form
//! (`r[1-2]n[01-03]`, `artcore[3-999]-ib0`). Group references (`@web`,
//! `@all`, and `all` as a member of a list) are looked up through a
//! [`Groups`] resolver that the caller passes, so this module does no I/O:
//! no DNS, no registry, no files. docs/nodesets.md has the grammar and the
//! deliberate differences from ClusterShell.
//!
//! Grammar (`,` `!` `&` `^` are evaluated left to right, as ClusterShell does):
//!
//! ```text
//! spec    := operand (op operand)*        op: , union  ! difference  & intersection  ^ symmetric difference
//! operand := "all" | "@" pattern | pattern   (whitespace around an operand is ignored)
//! pattern := (literal | "[" item ("," item)* "]")+
//! item    := num | num "-" num | num "-" num "/" step   (whitespace inside brackets is ignored)
//! ```

use std::collections::HashSet;

mod fold;
mod parse;
pub use fold::fold;
pub use parse::is_group_name;

/// Most names one spec may expand to, counted before duplicates are removed
/// (group members included).
pub const MAX_NAMES: u64 = 100_000;
/// Longest spec accepted, in bytes.
pub const MAX_SPEC_LEN: usize = 64 * 1024;
/// Most bytes the expanded names of one spec may add up to (16 MiB).
pub const MAX_NAME_BYTES: u64 = 16 << 20;

/// How much one spec may cost; [`expand`] uses [`Bounds::DEFAULT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Names, counted before duplicates are removed.
    pub max_names: u64,
    /// Spec length in bytes.
    pub max_spec_len: usize,
    /// Bytes of all names added up.
    pub max_name_bytes: u64,
}

impl Bounds {
    /// [`MAX_NAMES`], [`MAX_SPEC_LEN`], [`MAX_NAME_BYTES`].
    pub const DEFAULT: Bounds =
        Bounds { max_names: MAX_NAMES, max_spec_len: MAX_SPEC_LEN, max_name_bytes: MAX_NAME_BYTES };
}

/// Where `@NAME` in a spec is looked up. The dispatcher's resolver maps
/// registry tags, `@all` and the groups of `groups.toml`; see
/// `crate::dispatch::groups`.
pub trait Groups {
    /// The members of group `name` (written `@name`), or None when there is
    /// no such group: [`expand_with`] then fails with
    /// [`NodeSetError::UnknownGroup`], never an empty set. Err when the
    /// groups cannot be read (a bad groups file, say): the message says why
    /// and becomes [`NodeSetError::Group`].
    fn members(&self, name: &str) -> Result<Option<Vec<String>>, String>;
    /// The names of the groups there are, for the error naming an unknown one.
    fn names(&self) -> Vec<String>;
}

/// A resolver that knows no group: any `@NAME` (and `all` in a list) is an
/// error saying so.
pub struct NoGroups;

impl Groups for NoGroups {
    fn members(&self, _: &str) -> Result<Option<Vec<String>>, String> {
        Ok(None)
    }
    fn names(&self) -> Vec<String> {
        Vec::new()
    }
}

/// A fixed map from group name to members, e.g. built from registry tags.
impl Groups for std::collections::BTreeMap<String, Vec<String>> {
    fn members(&self, name: &str) -> Result<Option<Vec<String>>, String> {
        Ok(self.get(name).cloned())
    }
    fn names(&self) -> Vec<String> {
        self.keys().cloned().collect()
    }
}

/// Why a spec cannot be expanded. Every message names the piece at fault and
/// the rule it breaks.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NodeSetError {
    #[error("empty node set; expected names such as \"web[01-20],db1\"")]
    Empty,
    #[error("empty element in {spec:?} (stray comma); separate names with single commas")]
    EmptyElement { spec: String },
    #[error("missing node set {side} '{op}' in {spec:?}; '{op}' goes between two node sets, as in web[1-4]{op}web2")]
    MissingOperand { spec: String, op: char, side: &'static str },
    #[error("unclosed '[' in {element:?}; write ranges as name[01-20]")]
    Unclosed { element: String },
    #[error("unmatched ']' in {element:?}; write ranges as name[01-20]")]
    Unmatched { element: String },
    #[error("nested '[' in {element:?}; brackets cannot nest, write r[1-2]n[1-4]")]
    Nested { element: String },
    #[error("empty brackets in {element:?}; put numbers or ranges inside, as in name[1-4]")]
    EmptyBrackets { element: String },
    #[error("empty range item in {element:?}; write ranges as name[1,3-5]")]
    EmptyRange { element: String },
    #[error(
        "range bound {bound:?} in {element:?} is not a number; ranges are written a-b or a-b/step, as in name[01-20]"
    )]
    NotNumeric { element: String, bound: String },
    #[error("number {bound:?} in {element:?} is too large; the largest is {}", u64::MAX)]
    TooLarge { element: String, bound: String },
    #[error("range {range:?} in {element:?} runs downwards; write the lower bound first")]
    Descending { element: String, range: String },
    #[error("step in {range:?} in {element:?} {why}; steps are written a-b/step, as in name[1-10/2]")]
    BadStep { element: String, range: String, why: &'static str },
    #[error("range {range:?} in {element:?} has bounds padded differently ({lo:?} and {hi:?}); a zero-padded range has bounds of one width, as in name[009-010] or name[9-10]")]
    Padding { element: String, range: String, lo: String, hi: String },
    #[error("{spec:?} expands to more than {max} names; split it into smaller node sets")]
    TooMany { spec: String, max: u64 },
    #[error("node set of {len} bytes is longer than {max}; use ranges (web[001-500]) or split it")]
    TooLong { len: usize, max: usize },
    #[error("{spec:?} expands to more than {max} bytes of names; use shorter names or split it")]
    TooBig { spec: String, max: u64 },
    #[error("whitespace inside node name {element:?}; separate node names with commas (spaces are ignored only around names and inside brackets)")]
    Whitespace { element: String },
    #[error("character {ch:?} in {element:?} cannot be in a node name; names use letters, digits and - . _ : @, and , ! & ^ join node sets")]
    BadChar { element: String, ch: char },
    #[error(
        "node name {element:?} starts with {ch:?}; a node name starts with a letter, a digit or a range such as [1-4]"
    )]
    BadStart { element: String, ch: char },
    #[error("bad group name in {element:?}; groups are written @NAME with letters, digits, - _ . (or @all)")]
    BadGroup { element: String },
    #[error("group @{group}: {why}")]
    Group { group: String, why: String },
    #[error("unknown group @{group}; {}", known_groups(.known))]
    UnknownGroup { group: String, known: Vec<String> },
}

fn known_groups(known: &[String]) -> String {
    if known.is_empty() {
        return "no groups are known here (groups are registry tags, @all and the groups of groups.toml)".into();
    }
    let shown: Vec<String> = known.iter().take(20).map(|g| format!("@{g}")).collect();
    let more = if known.len() > 20 { format!(" and {} more", known.len() - 20) } else { String::new() };
    format!("known groups: {}{more}", shown.join(" "))
}

/// [`expand_with`] with no groups and the default bounds: a spec naming a
/// group is refused.
///
/// Examples: `web[01-03]` -> web01, web02, web03; `n[1-10/4]` -> n1, n5, n9;
/// `r[1-2]n[1-2]` -> r1n1, r1n2, r2n1, r2n2 (first bracket outermost);
/// `web[01-03]!web02` -> web01, web03.
pub fn expand(spec: &str) -> Result<Vec<String>, NodeSetError> {
    expand_with(spec, &NoGroups, Bounds::DEFAULT)
}

/// [`expand`] with other bounds (a smaller budget for fuzzing, say); the
/// syntax and the result within the bounds are the same.
pub fn expand_within(spec: &str, bounds: Bounds) -> Result<Vec<String>, NodeSetError> {
    expand_with(spec, &NoGroups, bounds)
}

/// Expand `spec` into host names, groups looked up in `groups`.
///
/// Operands are joined left to right: `,` union, `!` difference, `&`
/// intersection, `^` symmetric difference (so `a,b!c` is `(a,b)!c`). The
/// result keeps first-seen order (names of the left operand first), without
/// duplicates. Zero padding is kept; a padded range has bounds of one width
/// (`[001-120]`), and a range may step (`[1-10/3]` -> 1, 4, 7, 10). Several
/// brackets in one name give the product, first bracket outermost. A digit
/// just before `[` is literal text (`n2[1-3]` -> n21, n22, n23, not
/// ClusterShell's reading of `n[21-23]`, which it also gives here).
///
/// `@NAME` is group NAME's members and `all` as an operand is `@all`;
/// callers that give `all` alone another meaning check for it first.
///
/// Errors ([`NodeSetError`]): syntax (each naming the piece at fault), an
/// unknown group, a name that starts with anything but a letter, digit or
/// range, a character outside letters, digits and `- . _ : @`. Work is
/// bounded before names are made: more than `bounds.max_names` names
/// (operands and group members counted before duplicates are removed), a
/// spec longer than `bounds.max_spec_len`, or names adding up to more than
/// `bounds.max_name_bytes` are refused.
pub fn expand_with(spec: &str, groups: &dyn Groups, bounds: Bounds) -> Result<Vec<String>, NodeSetError> {
    if spec.len() > bounds.max_spec_len {
        return Err(NodeSetError::TooLong { len: spec.len(), max: bounds.max_spec_len });
    }
    if spec.trim().is_empty() {
        return Err(NodeSetError::Empty);
    }
    let terms = parse::parse(spec)?;
    // Count and size everything before making a single name.
    let (mut total, mut bytes) = (0u64, 0u64);
    let mut budget = |count: u64, longest: u64| {
        total = total.saturating_add(count);
        if total > bounds.max_names {
            return Err(NodeSetError::TooMany { spec: spec.into(), max: bounds.max_names });
        }
        bytes = bytes.saturating_add(count.saturating_mul(longest));
        if bytes > bounds.max_name_bytes {
            return Err(NodeSetError::TooBig { spec: spec.into(), max: bounds.max_name_bytes });
        }
        Ok(())
    };
    let mut operands: Vec<Operand> = Vec::with_capacity(terms.len());
    for term in &terms {
        match &term.operand {
            parse::Operand::Pattern(parts) => {
                budget(parse::count(parts), parse::longest(parts))?;
                operands.push(Operand::Pattern(parts));
            }
            parse::Operand::Group(parts) => {
                // Group names are bounded too, but only members count.
                if parse::count(parts) > bounds.max_names {
                    return Err(NodeSetError::TooMany { spec: spec.into(), max: bounds.max_names });
                }
                let mut members = Vec::new();
                for name in parse::generate(parts) {
                    if !parse::is_group_name(&name) {
                        return Err(NodeSetError::BadGroup { element: term.text.to_string() });
                    }
                    let found = groups
                        .members(&name)
                        .map_err(|why| NodeSetError::Group { group: name.clone(), why })?
                        .ok_or_else(|| NodeSetError::UnknownGroup { group: name.clone(), known: groups.names() })?;
                    let longest = found.iter().map(|n| n.len() as u64).max().unwrap_or(0);
                    budget(found.len() as u64, longest)?;
                    members.extend(found);
                }
                operands.push(Operand::Names(members));
            }
        }
    }
    let mut set = NameSet::default();
    for (term, operand) in terms.iter().zip(operands) {
        let names = match operand {
            Operand::Pattern(parts) => parse::generate(parts),
            Operand::Names(names) => names,
        };
        match term.op {
            parse::Op::Union => set.union(names),
            parse::Op::Difference => set.difference(names),
            parse::Op::Intersection => set.intersection(names),
            parse::Op::Symmetric => set.symmetric(names),
        }
    }
    Ok(set.names)
}

enum Operand<'a> {
    Pattern(&'a [parse::Part]),
    Names(Vec<String>),
}

/// Names in first-seen order without duplicates.
#[derive(Default)]
struct NameSet {
    names: Vec<String>,
    seen: HashSet<String>,
}

impl NameSet {
    fn union(&mut self, names: Vec<String>) {
        for name in names {
            if self.seen.insert(name.clone()) {
                self.names.push(name);
            }
        }
    }

    fn difference(&mut self, names: Vec<String>) {
        let drop: HashSet<String> = names.into_iter().collect();
        self.names.retain(|n| !drop.contains(n));
        self.seen.retain(|n| !drop.contains(n));
    }

    fn intersection(&mut self, names: Vec<String>) {
        let keep: HashSet<String> = names.into_iter().collect();
        self.names.retain(|n| keep.contains(n));
        self.seen.retain(|n| keep.contains(n));
    }

    fn symmetric(&mut self, names: Vec<String>) {
        let other: HashSet<&String> = names.iter().collect();
        let both: HashSet<String> = self.names.iter().filter(|n| other.contains(n)).cloned().collect();
        self.names.retain(|n| !both.contains(n));
        self.seen.retain(|n| !both.contains(n));
        self.union(names.into_iter().filter(|n| !both.contains(n)).collect());
    }
}

#[cfg(test)]
mod tests;
