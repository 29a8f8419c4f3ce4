//! Required literals: strings one of which every match of a pattern contains.
//!
//! The literals of all sets are searched at once (lib.rs, `RxGate`: one Aho-Corasick pass,
//! ASCII case-insensitive, so a superset whatever the pattern's case flags) and a set runs
//! its alternation's lazy DFA only on input where one of its members' literals occurs: on
//! ordinary values the literals of attack patterns (`<script`, `union`, `/etc/`, ...) are
//! absent, and one literal pass per input costs a fraction of the DFAs' scans.  Derived
//! from the translated pattern's syntax tree, so the strings are required by the same
//! superset the DFA runs.
//!
//! One pass over the tree computes, per node, the strings it matches exactly (when few),
//! and sets of strings one of which every match starts with, ends with, and contains.  A
//! concatenation joins a part's suffixes to the next part's prefixes, and an alternation
//! unites its branches' sets: CRS's patterns are assembled word lists (`a(?:bs|cos|...)`),
//! whose required strings are their words.  Strings are ASCII-lowercased; a set that grows
//! too large keeps shorter pieces of its strings (a prefix of a required prefix is one too).

use regex_syntax::hir::{Class, Hir, HirKind, Literal, RepetitionKind, RepetitionRange};
use regex_syntax::ParserBuilder;

/// strings per set: beyond it, a set is cut to shorter pieces
const CAP: usize = 256;
/// strings per exact set (they multiply in concatenations)
const EXACT_CAP: usize = 64;
/// longest string kept: a longer one is cut (the piece is still required)
const MAX_LEN: usize = 32;
/// a class of at most this many bytes (letters counted once) is a set of exact strings
const CLASS_BYTES: usize = 4;
/// shorter required strings occur in ordinary text too often to be worth a look, except two
/// punctuation bytes (`${`, `{{`, `/*`, `';`: rare outside attacks)
const MIN_USEFUL: usize = 3;

type Set = Vec<Vec<u8>>;

/// What a node says about its matches: the strings it matches, when few; else sets one of
/// which every match starts with, ends with, and contains.  A set holding "" says nothing.
enum Info {
    Exact(Set),
    Inexact { pre: Set, suf: Set, req: Set },
}

impl Info {
    fn pre(&self) -> &Set {
        match self {
            Info::Exact(e) => e,
            Info::Inexact { pre, .. } => pre,
        }
    }
    fn suf(&self) -> &Set {
        match self {
            Info::Exact(e) => e,
            Info::Inexact { suf, .. } => suf,
        }
    }
    fn req(&self) -> &Set {
        match self {
            Info::Exact(e) => e,
            Info::Inexact { req, .. } => req,
        }
    }
}

/// The strings one of which every match of `src` (Rust syntax, bytes) contains, each at
/// least MIN_USEFUL bytes long (or two of punctuation); None when there are none.
pub fn required(src: &str) -> Option<Set> {
    let hir = ParserBuilder::new().allow_invalid_utf8(true).build().parse(src).ok()?;
    let set = info(&hir).req().clone();
    if set.is_empty() || !set.iter().all(|s| useful(s)) {
        return None;
    }
    Some(minimal(set))
}

fn useful(s: &[u8]) -> bool {
    s.len() >= MIN_USEFUL || (s.len() == 2 && s.iter().all(|b| b.is_ascii_punctuation()))
}

/// Without the strings that contain another one of the set (which is found wherever they are).
fn minimal(mut set: Set) -> Set {
    set.sort_by_key(|s| s.len());
    let mut out: Set = Vec::with_capacity(set.len());
    for s in set {
        if !out.iter().any(|o| s.windows(o.len()).any(|w| w == o.as_slice())) {
            out.push(s);
        }
    }
    out
}

fn nothing() -> Set {
    vec![Vec::new()]
}

fn unknown() -> Info {
    Info::Inexact { pre: nothing(), suf: nothing(), req: nothing() }
}

fn says_nothing(s: &Set) -> bool {
    s.iter().any(|x| x.is_empty())
}

fn min_len(s: &Set) -> usize {
    s.iter().map(|x| x.len()).min().unwrap_or(0)
}

/// The better of two required sets: longer shortest string, then fewer strings.
fn better(a: Set, b: Set) -> Set {
    let score = |s: &Set| (min_len(s), usize::MAX - s.len());
    if score(&b) > score(&a) {
        b
    } else {
        a
    }
}

fn sorted(mut s: Set) -> Set {
    s.sort_unstable();
    s.dedup();
    s
}

/// Every string cut to its first (or last) `len` bytes.
fn cut(s: &Set, len: usize, keep_start: bool) -> Set {
    sorted(
        s.iter()
            .map(|x| if x.len() <= len { x.clone() } else if keep_start { x[..len].to_vec() } else { x[x.len() - len..].to_vec() })
            .collect(),
    )
}

/// `s` within CAP strings of at most MAX_LEN bytes, by cutting its strings shorter.
fn fit(s: Set, keep_start: bool) -> Set {
    let s = if s.iter().any(|x| x.len() > MAX_LEN) { cut(&s, MAX_LEN, keep_start) } else { s };
    if s.len() <= CAP {
        return s;
    }
    for len in [8, 4, 3] {
        let c = cut(&s, len, keep_start);
        if c.len() <= CAP {
            return c;
        }
    }
    nothing()
}

fn product(a: &Set, b: &Set) -> Set {
    let mut out = Vec::with_capacity(a.len() * b.len());
    for x in a {
        for y in b {
            let mut s = Vec::with_capacity(x.len() + y.len());
            s.extend_from_slice(x);
            s.extend_from_slice(y);
            out.push(s);
        }
    }
    sorted(out)
}

/// a × b within CAP: b's strings cut shorter (keeping their start when `keep_start`, else
/// a's keeping their end) until it fits; None when even single bytes do not.
fn fit_product(a: &Set, b: &Set, keep_start: bool) -> Option<Set> {
    if a.len() * b.len() <= CAP {
        return Some(fit(product(a, b), keep_start));
    }
    for len in [8, 4, 2, 1] {
        let (x, y) = if keep_start { (a.clone(), cut(b, len, true)) } else { (cut(a, len, false), b.clone()) };
        if x.len() * y.len() <= CAP {
            return Some(fit(product(&x, &y), keep_start));
        }
    }
    None
}

/// One byte, or a few (an ASCII letter in either case counts once): those, lowercased.
fn class_bytes(h: &Hir) -> Option<Set> {
    let mut bytes: Vec<u8> = Vec::new();
    let mut add = |b: u8| {
        let b = b.to_ascii_lowercase();
        if !bytes.contains(&b) {
            bytes.push(b);
        }
        bytes.len() <= CLASS_BYTES
    };
    match h.kind() {
        HirKind::Class(Class::Bytes(c)) => {
            for r in c.iter() {
                if r.end() - r.start() >= 2 * CLASS_BYTES as u8 {
                    return None;
                }
                for b in r.start()..=r.end() {
                    if !add(b) {
                        return None;
                    }
                }
            }
        }
        HirKind::Class(Class::Unicode(c)) => {
            for r in c.iter() {
                if !r.end().is_ascii() || (r.end() as u32 - r.start() as u32) >= 2 * CLASS_BYTES as u32 {
                    return None;
                }
                for ch in r.start()..=r.end() {
                    if !add(ch as u8) {
                        return None;
                    }
                }
            }
        }
        _ => return None,
    }
    Some(bytes.into_iter().map(|b| vec![b]).collect())
}

fn info(h: &Hir) -> Info {
    match h.kind() {
        HirKind::Empty | HirKind::Anchor(_) | HirKind::WordBoundary(_) => Info::Exact(nothing()),
        HirKind::Literal(Literal::Byte(b)) => Info::Exact(vec![vec![b.to_ascii_lowercase()]]),
        HirKind::Literal(Literal::Unicode(c)) => {
            let mut buf = [0u8; 4];
            Info::Exact(vec![c.encode_utf8(&mut buf).as_bytes().to_ascii_lowercase()])
        }
        HirKind::Class(_) => class_bytes(h).map_or_else(unknown, Info::Exact),
        HirKind::Group(g) => info(&g.hir),
        HirKind::Repetition(r) => repetition(&r.kind, info(&r.hir)),
        HirKind::Concat(v) => {
            let mut parts = v.iter().map(info);
            let first = parts.next().unwrap_or(Info::Exact(nothing()));
            parts.fold(first, concat)
        }
        HirKind::Alternation(v) => alternation(v.iter().map(info).collect()),
    }
}

fn repetition(kind: &RepetitionKind, sub: Info) -> Info {
    let (min, max) = match kind {
        RepetitionKind::ZeroOrOne => (0, Some(1)),
        RepetitionKind::ZeroOrMore => (0, None),
        RepetitionKind::OneOrMore => (1, None),
        RepetitionKind::Range(RepetitionRange::Exactly(n)) => (*n, Some(*n)),
        RepetitionKind::Range(RepetitionRange::AtLeast(n)) => (*n, None),
        RepetitionKind::Range(RepetitionRange::Bounded(n, m)) => (*n, Some(*m)),
    };
    match (min, max, sub) {
        (1, Some(1), sub) => sub,
        // x? is x or nothing
        (0, Some(1), Info::Exact(mut e)) if e.len() < EXACT_CAP => {
            e.push(Vec::new());
            Info::Exact(sorted(e))
        }
        (0, _, _) => unknown(),
        // at least once: each repetition's prefix, suffix and required strings hold
        (_, _, Info::Exact(e)) => Info::Inexact { pre: e.clone(), suf: e.clone(), req: e },
        (_, _, sub) => sub,
    }
}

fn concat(a: Info, b: Info) -> Info {
    if let (Info::Exact(x), Info::Exact(y)) = (&a, &b) {
        if x.len() * y.len() <= EXACT_CAP {
            let p = product(x, y);
            if p.iter().all(|s| s.len() <= MAX_LEN) {
                return Info::Exact(p);
            }
        }
    }
    // a match starts with one of a's exact strings and then one of b's prefixes
    let pre = match &a {
        Info::Exact(x) => fit_product(x, b.pre(), true).unwrap_or_else(|| x.clone()),
        Info::Inexact { pre, .. } => pre.clone(),
    };
    let suf = match &b {
        Info::Exact(y) => fit_product(a.suf(), y, false).unwrap_or_else(|| y.clone()),
        Info::Inexact { suf, .. } => suf.clone(),
    };
    // ... and contains one of a's suffixes followed by one of b's prefixes
    let mut req = better(a.req().clone(), b.req().clone());
    if let Some(j) = fit_product(a.suf(), b.pre(), true) {
        req = better(req, j);
    }
    req = better(req, pre.clone());
    req = better(req, suf.clone());
    Info::Inexact { pre, suf, req }
}

/// Any of the branches: each set is the union of theirs.
fn alternation(branches: Vec<Info>) -> Info {
    if branches.iter().all(|b| matches!(b, Info::Exact(_))) {
        let n: usize = branches.iter().map(|b| b.pre().len()).sum();
        if n <= EXACT_CAP {
            return Info::Exact(sorted(branches.iter().flat_map(|b| b.pre().iter().cloned()).collect()));
        }
    }
    let union = |get: fn(&Info) -> &Set, keep_start: bool| {
        if branches.iter().any(|b| says_nothing(get(b))) {
            return nothing();
        }
        fit(sorted(branches.iter().flat_map(|b| get(b).iter().cloned()).collect()), keep_start)
    };
    Info::Inexact { pre: union(Info::pre, true), suf: union(Info::suf, false), req: union(Info::req, true) }
}

#[cfg(test)]
mod tests {
    use super::required;
    use crate::translate::translate;

    /// the literals of a PCRE2 pattern, through its translation (as the sets compile it)
    fn req(s: &str) -> Option<Vec<String>> {
        required(&translate(s.as_bytes(), false).unwrap()).map(|v| {
            let mut v: Vec<String> = v.into_iter().map(|s| String::from_utf8(s).unwrap()).collect();
            v.sort();
            v
        })
    }

    #[test]
    fn literals_every_match_contains() {
        assert_eq!(req("(?i)union\\s+select"), Some(vec!["select".into()]));
        assert_eq!(req("(?i)UNION"), Some(vec!["union".into()]));
        assert_eq!(req("<script[^>]*>"), Some(vec!["<script".into()]));
        assert_eq!(req("(?:foo|bar)baz"), Some(vec!["barbaz".into(), "foobaz".into()]));
        assert_eq!(req("(?:abc|\\d+)"), None);
        assert_eq!(req("x(?:abc)?y"), None);
        assert_eq!(req("(?:abcd)+z"), Some(vec!["abcdz".into()]));
        assert_eq!(req("^\\d+$"), None);
        // an assembled word list: its words
        assert_eq!(req("(?i)\\b(?:a(?:bs|cosh?)|sin)\\b"), Some(vec!["abs".into(), "acos".into(), "sin".into()]));
        assert_eq!(req("x(?:ab|cd)y"), Some(vec!["xaby".into(), "xcdy".into()]));
        assert_eq!(req("\\{\\{.*?}}"), Some(vec!["{{".into()]));
        assert_eq!(req("ab.*cd"), None);
    }
}
