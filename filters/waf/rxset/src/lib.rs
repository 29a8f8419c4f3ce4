//! Linear-time first pass for the WAF's @rx rules.
//!
//! PCRE2 patterns are translated to Rust `regex` syntax (a superset of what
//! PCRE2 matches, see translate.rs) and compiled to lazy DFAs, whose cost is
//! linear in the subject.  A set answers "which of my patterns can match
//! somewhere in this buffer" in up to two steps:
//!  1. one alternation of the members, stopping at its first match: on benign
//!     input nothing matches and the buffer is scanned once for the whole set;
//!  2. only when it matched, each member alone (each stops at its own first
//!     match).
//! Regexes are compiled the first time they are needed: a set whose rules never
//! run (a paranoia level above the configured one) costs no compile time and no
//! memory, and most members' own regexes are never needed.
//! Regex 1.7's multi-pattern `RegexSet::matches` is not used: once any member
//! matched, every later byte takes its slow path.  Members the caller marks
//! "common" (they match ordinary values, e.g. format checks such as `^\d+$`)
//! would make step 2 run on every request: they stay out of the alternation
//! and are always checked alone.
//!
//! Before any of that, one literal pass (`RxGate`, literals.rs, gate.rs) searches an input for the
//! required literals of every set's members at once; a set none of whose literals occur
//! in an input is not scanned over it at all.
//!
//! A set can instead hold one phrase list (@pm: any of many literal phrases,
//! ASCII case-insensitive), run by the `aho-corasick` crate; its phrases are its
//! literals, and the literal pass answers for it.
//!
//! C ABI for the engine: filters/waf/rxset.h.
pub mod fold;
pub mod gate;
pub mod literals;
pub mod translate;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder};
use regex::bytes::{Regex, RegexBuilder};
use std::cell::RefCell;
use std::collections::HashMap;
use std::slice;

/// At most this many patterns per set (the scan returns a 64-bit mask).
pub const MAX_PATTERNS: usize = 64;
/// pattern flags (rxset.h)
pub const COMMON: u8 = 1;
pub const CASELESS: u8 = 2;
const SIZE_LIMIT: usize = 16 << 20;
/// a pattern longer than this (translated) is not looked at as a class of bytes
const CLASS_MAX_LEN: usize = 128;
/// lazy DFA cache of one member's own regex (the alternation gets the caller's limit)
const MEMBER_DFA_LIMIT: usize = 2 << 20;
/// Two branches that never match (a byte before the start of the text, one after its end),
/// put before every alternation: a partial start and end anchor, for which `regex` 1.7
/// extracts neither prefix nor suffix literals.  Its literal search (Aho-Corasick, without
/// SIMD in Wasm) cost more than the lazy DFA scanning the same bytes itself, and a gated
/// set's literals are already the literal pass's answer.
const NO_LITERAL_SCAN: &str = r"\x00\A|\z\x00";

struct Member {
    /// Rust syntax; None: not in the set (the caller always runs the pattern)
    src: Option<String>,
    /// compiled on first use
    re: Option<Alone>,
    common: bool,
    /// one class of bytes the caller tests itself (rxset_take_class): scans report it unlooked
    taken: bool,
}

/// A member's own matcher.
enum Alone {
    /// a pattern that is one class of bytes (`[\n\r]`, CRS 921140/921150 on every header and
    /// argument name): any of them anywhere, told without entering a DFA per subject
    Bytes(Box<[bool; 256]>),
    Re(Regex),
    /// too big alone: it "may match" everything
    TooBig,
}

impl Alone {
    fn new(src: &str) -> Alone {
        if let Some(set) = byte_class(src) {
            return Alone::Bytes(set);
        }
        build(src, MEMBER_DFA_LIMIT).map_or(Alone::TooBig, Alone::Re)
    }
}

/// The bytes a pattern matches when it is a single class of bytes (one byte each match).
fn byte_class(src: &str) -> Option<Box<[bool; 256]>> {
    use regex_syntax::hir::{Class, HirKind};
    // asked of every member at configure: a long pattern is not parsed to find out
    if src.len() > CLASS_MAX_LEN {
        return None;
    }
    let hir = regex_syntax::ParserBuilder::new().allow_invalid_utf8(true).build().parse(src).ok()?;
    let mut h = &hir;
    while let HirKind::Group(g) = h.kind() {
        h = &g.hir;
    }
    let mut set = Box::new([false; 256]);
    match h.kind() {
        HirKind::Class(Class::Bytes(c)) => c.iter().for_each(|r| (r.start()..=r.end()).for_each(|b| set[b as usize] = true)),
        HirKind::Class(Class::Unicode(c)) => {
            for r in c.iter() {
                if !r.end().is_ascii() {
                    return None;
                }
                (r.start() as u8..=r.end() as u8).for_each(|b| set[b as usize] = true);
            }
        }
        _ => return None,
    }
    Some(set)
}

pub struct RxSet {
    /// the members that are not common, as one alternation: None until the first scan,
    /// then the compiled regex (None: no such member), or Err when it does not compile
    any: Option<Result<Option<Regex>, ()>>,
    members: Vec<Member>,
    /// a phrase list instead of patterns: the set's only member
    phrases: Option<Phrases>,
    /// the required literals of the members that are not common, when every such member has
    /// some: an input none of them occurs in cannot match the alternation (a phrase list:
    /// its phrases, then the literal pass is its whole answer)
    literals: Option<Vec<Vec<u8>>>,
    dfa_limit: usize,
}

/// A phrase list and its automaton, built on first use: a list the literal pass answers for
/// (RxGate) never needs its own.
struct Phrases {
    list: Vec<Vec<u8>>,
    ac: Option<AhoCorasick>,
}

impl Phrases {
    fn is_match(&mut self, hay: &[u8]) -> bool {
        let list = &self.list;
        self.ac
            .get_or_insert_with(|| AhoCorasickBuilder::new().ascii_case_insensitive(true).dfa(true).build(list))
            .is_match(hay)
    }
}

fn build(pat: &str, dfa_limit: usize) -> Result<Regex, ()> {
    RegexBuilder::new(pat).size_limit(SIZE_LIMIT).dfa_size_limit(dfa_limit).build().map_err(|_| ())
}

impl Member {
    fn may_match(&mut self, hay: &[u8]) -> bool {
        let src = match &self.src {
            Some(s) if !self.taken => s,
            _ => return true,
        };
        match self.re.get_or_insert_with(|| Alone::new(src)) {
            Alone::Bytes(set) => hay.chunks(16).any(|c| c.iter().fold(false, |a, &b| a | set[b as usize])),
            Alone::Re(re) => re.is_match(hay),
            Alone::TooBig => true,
        }
    }
}

impl RxSet {
    /// `flags[i]`: COMMON (pattern i matches ordinary values), CASELESS (match it in any
    /// case: the caller scans values before a final t:lowercase).  Returns the set and, per
    /// pattern, whether it is in it (no translation: not, the caller always runs it).
    /// Nothing is compiled before the set is first used.
    pub fn new(pats: &[&[u8]], flags: &[u8], dfa_limit: usize) -> (RxSet, Vec<bool>) {
        let members: Vec<Member> = pats
            .iter()
            .zip(flags)
            .take(MAX_PATTERNS)
            .map(|(p, &f)| Member {
                src: translate::translate(p, f & CASELESS != 0),
                re: None,
                common: f & COMMON != 0,
                taken: false,
            })
            .collect();
        let ok = members.iter().map(|m| m.src.is_some()).collect();
        let literals = Self::literals(&members);
        (RxSet { any: None, members, phrases: None, literals, dfa_limit }, ok)
    }

    fn literals(members: &[Member]) -> Option<Vec<Vec<u8>>> {
        let mut all: Vec<Vec<u8>> = Vec::new();
        for src in members.iter().filter(|m| !m.common).filter_map(|m| m.src.as_deref()) {
            all.extend(required_memo(src)?);
        }
        if all.is_empty() {
            return None;
        }
        all.sort();
        all.dedup();
        Some(all)
    }

    /// One member: any of `phrases`, ASCII case-insensitive.
    pub fn phrases(phrases: &[&[u8]]) -> RxSet {
        let list: Vec<Vec<u8>> = phrases.iter().map(|p| p.to_vec()).collect();
        // an empty phrase is in every input: nothing for the literal pass to look for
        let literals = if list.iter().any(|p| p.is_empty()) { None } else { Some(list.clone()) };
        RxSet {
            any: None,
            members: Vec::new(),
            phrases: Some(Phrases { list, ac: None }),
            literals,
            dfa_limit: 0,
        }
    }

    fn alternation(&self) -> Result<Option<Regex>, ()> {
        let rare: Vec<&str> = self.members.iter().filter(|m| !m.common).filter_map(|m| m.src.as_deref()).collect();
        if rare.is_empty() {
            return Ok(None);
        }
        build(&format!("{}|{}", NO_LITERAL_SCAN, rare.join("|")), self.dfa_limit).map(Some)
    }

    /// Bit i: pattern i may match somewhere in `hay`.
    pub fn scan(&mut self, hay: &[u8]) -> u64 {
        if let Some(p) = &mut self.phrases {
            return p.is_match(hay) as u64;
        }
        if self.any.is_none() {
            self.any = Some(self.alternation());
        }
        let rare_possible = match &self.any {
            Some(Ok(Some(any))) => any.is_match(hay),
            Some(Ok(None)) => false,
            _ => true, // no alternation (too big): each member alone
        };
        let mut mask = 0u64;
        for (i, m) in self.members.iter_mut().enumerate() {
            if m.src.is_some() && (m.common || rare_possible) && m.may_match(hay) {
                mask |= 1u64 << i;
            }
        }
        mask
    }

    /// Many patterns as one alternation that is only asked whether any of them matches
    /// (rxset_new_union), each with its digits folded (fold.rs: the caller may also ask about
    /// texts whose digits are written as `0`): compiled on first use.
    pub fn union(pats: &[&[u8]], flags: &[u8], dfa_limit: usize) -> RxSet {
        let members = pats
            .iter()
            .zip(flags)
            .map(|(p, &f)| Member {
                src: translate::translate(p, f & CASELESS != 0).and_then(|t| fold::fold_digits(&t)),
                re: None,
                common: false,
                taken: false,
            })
            .collect();
        RxSet { any: None, members, phrases: None, literals: None, dfa_limit }
    }

    /// Whether any member may match `hay` (a member without translation: always).
    pub fn any_match(&mut self, hay: &[u8]) -> bool {
        if self.members.iter().any(|m| m.src.is_none()) {
            return true;
        }
        if self.any.is_none() {
            self.any = Some(self.alternation());
        }
        match &self.any {
            Some(Ok(Some(any))) => any.is_match(hay),
            Some(Ok(None)) => false,
            _ => true,
        }
    }

    /// Member i's bytes when it is one class of bytes (one byte each match), which the caller
    /// then tests itself: from here on the set reports it as possible without looking.
    pub fn take_class(&mut self, i: usize) -> Option<Box<[bool; 256]>> {
        let m = self.members.get_mut(i)?;
        let set = byte_class(m.src.as_deref()?)?;
        m.taken = true;
        Some(set)
    }

    /// Whether pattern i alone may match `hay`.
    pub fn may_match(&mut self, i: usize, hay: &[u8]) -> bool {
        if let Some(p) = &mut self.phrases {
            return p.is_match(hay);
        }
        self.members.get_mut(i).map_or(true, |m| m.may_match(hay))
    }
}

thread_local! {
    /// literals::required per translated pattern while sets are being built: the engine asks
    /// for a pattern's literals to group it, then again when its set is made (parsing a
    /// pattern costs as much as the extraction); emptied once the gate is built
    static REQUIRED: RefCell<HashMap<String, Option<Vec<Vec<u8>>>>> = RefCell::new(HashMap::new());
}

fn required_memo(src: &str) -> Option<Vec<Vec<u8>>> {
    REQUIRED.with(|m| {
        m.borrow_mut().entry(src.to_string()).or_insert_with(|| literals::required(src)).clone()
    })
}

/// The literal pass: the required literals of many sets as one Aho-Corasick automaton
/// (ASCII case-insensitive, gate.rs), each literal knowing the sets that require it.
pub struct RxGate {
    gate: Option<gate::Gate>,
}

impl RxGate {
    /// `sets[i]`: the sets to gate, by index (None, or a set without literals: not in it).
    pub fn new(sets: &[Option<&RxSet>]) -> RxGate {
        let mut index: HashMap<&[u8], usize> = HashMap::new();
        let mut pats: Vec<&[u8]> = Vec::new();
        let mut owners: Vec<Vec<u32>> = Vec::new();
        for (i, s) in sets.iter().enumerate() {
            for lit in s.and_then(|s| s.literals.as_ref()).into_iter().flatten() {
                let k = *index.entry(lit.as_slice()).or_insert_with(|| {
                    pats.push(lit.as_slice());
                    owners.push(Vec::new());
                    pats.len() - 1
                });
                owners[k].push(i as u32);
            }
        }
        REQUIRED.with(|m| m.borrow_mut().clear());
        let gate = if pats.is_empty() { None } else { Some(gate::Gate::new(&pats, &owners)) };
        RxGate { gate }
    }

    /// Sets bit i of `bits` (64 per word) for each set i one of whose literals occurs in `hay`.
    pub fn scan(&self, hay: &[u8], bits: &mut [u64]) {
        if let Some(g) = &self.gate {
            g.scan(hay, bits);
        }
    }
}

unsafe fn bytes<'a>(p: *const u8, len: usize) -> &'a [u8] {
    if len == 0 {
        &[]
    } else {
        slice::from_raw_parts(p, len)
    }
}

/// # Safety
/// For i < n: `pats[i]` points to `lens[i]` bytes; `flags` and `ok` have n bytes.
#[no_mangle]
pub unsafe extern "C" fn rxset_new(pats: *const *const u8, lens: *const usize, flags: *const u8, n: usize,
                                   ok: *mut u8, dfa_limit: usize) -> *mut RxSet {
    let n = n.min(MAX_PATTERNS);
    let ps = slice::from_raw_parts(pats, n);
    let ls = slice::from_raw_parts(lens, n);
    let v: Vec<&[u8]> = ps.iter().zip(ls).map(|(&p, &l)| bytes(p, l)).collect();
    let (set, okv) = RxSet::new(&v, slice::from_raw_parts(flags, n), dfa_limit);
    for (o, k) in slice::from_raw_parts_mut(ok, n).iter_mut().zip(okv) {
        *o = k as u8;
    }
    Box::into_raw(Box::new(set))
}

/// # Safety
/// For i < n: `phrases[i]` points to `lens[i]` bytes.
#[no_mangle]
pub unsafe extern "C" fn rxset_new_phrases(phrases: *const *const u8, lens: *const usize, n: usize) -> *mut RxSet {
    let ps = slice::from_raw_parts(phrases, n);
    let ls = slice::from_raw_parts(lens, n);
    let v: Vec<&[u8]> = ps.iter().zip(ls).map(|(&p, &l)| bytes(p, l)).collect();
    Box::into_raw(Box::new(RxSet::phrases(&v)))
}

/// # Safety
/// `s` from rxset_new; `hay` points to `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn rxset_scan(s: *mut RxSet, hay: *const u8, len: usize) -> u64 {
    (*s).scan(bytes(hay, len))
}

/// # Safety
/// For i < n: `pats[i]` points to `lens[i]` bytes; `flags` has n bytes.
#[no_mangle]
pub unsafe extern "C" fn rxset_new_union(pats: *const *const u8, lens: *const usize, flags: *const u8, n: usize,
                                         dfa_limit: usize) -> *mut RxSet {
    let ps = slice::from_raw_parts(pats, n);
    let ls = slice::from_raw_parts(lens, n);
    let v: Vec<&[u8]> = ps.iter().zip(ls).map(|(&p, &l)| bytes(p, l)).collect();
    Box::into_raw(Box::new(RxSet::union(&v, slice::from_raw_parts(flags, n), dfa_limit)))
}

/// # Safety
/// `s` from rxset_new_union; `hay` points to `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn rxset_any(s: *mut RxSet, hay: *const u8, len: usize) -> bool {
    (*s).any_match(bytes(hay, len))
}

/// # Safety
/// `s` from rxset_new; `hay` points to `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn rxset_match(s: *mut RxSet, i: usize, hay: *const u8, len: usize) -> bool {
    (*s).may_match(i, bytes(hay, len))
}

/// # Safety
/// `s` from rxset_new; `out` has 256 bytes.
#[no_mangle]
pub unsafe extern "C" fn rxset_take_class(s: *mut RxSet, i: usize, out: *mut u8) -> bool {
    match (*s).take_class(i) {
        Some(set) => {
            for (o, &b) in slice::from_raw_parts_mut(out, 256).iter_mut().zip(set.iter()) {
                *o = b as u8;
            }
            true
        }
        None => false,
    }
}

/// # Safety
/// `s` from rxset_new (or NULL), not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn rxset_free(s: *mut RxSet) {
    if !s.is_null() {
        drop(Box::from_raw(s));
    }
}

/// # Safety
/// `s` from rxset_new.
#[no_mangle]
pub unsafe extern "C" fn rxset_gated(s: *const RxSet) -> bool {
    (*s).literals.is_some()
}

/// # Safety
/// `sets` points to n pointers from rxset_new / rxset_new_phrases (or NULL).
#[no_mangle]
pub unsafe extern "C" fn rxgate_new(sets: *const *const RxSet, n: usize) -> *mut RxGate {
    let v: Vec<Option<&RxSet>> = slice::from_raw_parts(sets, n).iter().map(|&p| p.as_ref()).collect();
    Box::into_raw(Box::new(RxGate::new(&v)))
}

/// # Safety
/// `g` from rxgate_new; `hay` points to `len` bytes; `bits` has a bit per set given to it.
#[no_mangle]
pub unsafe extern "C" fn rxgate_scan(g: *const RxGate, hay: *const u8, len: usize, bits: *mut u64, words: usize) {
    (*g).scan(bytes(hay, len), slice::from_raw_parts_mut(bits, words))
}

/// # Safety
/// `g` from rxgate_new (or NULL), not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn rxgate_free(g: *mut RxGate) {
    if !g.is_null() {
        drop(Box::from_raw(g));
    }
}

/// # Safety
/// `pat` points to `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn rxset_pattern_has_literals(pat: *const u8, len: usize, caseless: bool) -> bool {
    translate::translate(bytes(pat, len), caseless).map_or(false, |src| required_memo(&src).is_some())
}

#[cfg(test)]
mod tests {
    use super::{RxGate, RxSet, CASELESS, COMMON};

    #[test]
    fn scan_reports_each_member_that_can_match() {
        let pats: [&[u8]; 3] = [b"(?i)union\\s+select", b"a(?=b)", b"^\\d+$"];
        let (mut s, ok) = RxSet::new(&pats, &[0, 0, COMMON], 1 << 20);
        assert_eq!(ok, vec![true, true, true]);
        assert_eq!(s.scan(b"x UNION  Select y"), 0b001);
        assert_eq!(s.scan(b"ac\n42"), 0b110);
        assert_eq!(s.scan(b"nothing here"), 0);
        assert!(s.may_match(2, b"7"));
        assert!(!s.may_match(0, b"union"));
    }

    #[test]
    fn alternations_match_as_their_members_without_a_literal_scan() {
        // the two branches that switch the regex crate's literal search off match nothing,
        // at the text's ends or beside NUL bytes; members with short prefixes still match there
        let pats: [&[u8]; 2] = [b"<x", b";\\s*id"];
        let (mut s, _) = RxSet::new(&pats, &[0, 0], 1 << 20);
        for hay in [&b""[..], b"\x00", b"a\x00", b"\x00a\x00", b"<y;\x00"] {
            assert_eq!(s.scan(hay), 0, "{:?}", hay);
        }
        assert_eq!(s.scan(b"\x00<x"), 0b01);
        assert_eq!(s.scan(b"a;  id\x00"), 0b10);
        let mut u = RxSet::union(&pats, &[0, 0], 1 << 20);
        assert!(!u.any_match(b"\x00") && !u.any_match(b""));
        assert!(u.any_match(b"\x00;id"));
    }

    #[test]
    fn phrase_lists_ignore_ascii_case() {
        let mut s = RxSet::phrases(&[b"etc/passwd", b"boot.ini"]);
        assert_eq!(s.scan(b"x\n../ETC/Passwd"), 1);
        assert!(!s.may_match(0, b"etc/shadow"));
    }

    #[test]
    fn gate_finds_each_sets_literals_in_any_case() {
        let (a, _) = RxSet::new(&[b"(?i)union\\s+select", b"<script"], &[0, 0], 1 << 20);
        let (b, _) = RxSet::new(&[b"/etc/(?:passwd|shadow)"], &[0], 1 << 20);
        let (c, _) = RxSet::new(&[b"^\\d+$"], &[0], 1 << 20);
        assert!(a.literals.is_some() && b.literals.is_some() && c.literals.is_none());
        let g = RxGate::new(&[Some(&a), Some(&b), Some(&c)]);
        let mut bits = [0u64];
        g.scan(b"an ordinary sentence\n42", &mut bits);
        assert_eq!(bits[0], 0);
        g.scan(b"x UNION  Select y\n../ETC/Shadow", &mut bits);
        assert_eq!(bits[0], 0b011);
    }

    #[test]
    fn a_class_of_bytes_alone_is_told_by_its_bytes() {
        let pats: [&[u8]; 3] = [b"[\\n\\r]", b"(?i)[a-c]", b"[\\x80-\\xff]"];
        let (mut s, _) = RxSet::new(&pats, &[COMMON, COMMON, COMMON], 1 << 20);
        assert!(super::byte_class(s.members[0].src.as_deref().unwrap()).is_some());
        assert!(s.may_match(0, b"a\rb") && !s.may_match(0, b"ab"));
        assert!(s.may_match(1, b"xxB") && !s.may_match(1, b"xyz"));
        assert!(s.may_match(2, b"caf\xc3\xa9") && !s.may_match(2, b"cafe"));
        assert_eq!(s.scan(b"x\ny"), 0b001);
        let taken = s.take_class(0).unwrap();
        assert!(taken[b'\n' as usize] && taken[b'\r' as usize] && !taken[b'a' as usize]);
        assert!(s.take_class(1).is_some());
        assert_eq!(s.scan(b"xyz"), 0b011);   // taken members: reported without looking
        assert!(s.may_match(0, b"ab"));
    }

    #[test]
    fn untranslatable_members_stay_out() {
        let pats: [&[u8]; 2] = [b"(a)(?1)", b"b"];
        let (mut s, ok) = RxSet::new(&pats, &[0, CASELESS], 1 << 20);
        assert_eq!(ok, vec![false, true]);
        assert_eq!(s.scan(b"aa B"), 0b10);
    }
}
