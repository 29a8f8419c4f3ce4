//! Linear-time first pass for the WAF's @rx rules.
//!
//! PCRE2 patterns are translated to Rust `regex` syntax (a superset of what
//! PCRE2 matches, see translate.rs) and compiled to lazy DFAs, whose cost is
//! linear in the subject.  A set answers "which of my patterns can match
//! somewhere in this buffer" in up to two steps:
//!  1. one alternation of the members, stopping at its first match: on benign
//!     input nothing matches and the buffer is scanned once for the whole set;
//!  2. only when it matched, each member alone (each stops at its own first
//!     match).  A member's own regex is compiled the first time it is needed:
//!     most never are, which keeps configure time and memory down.
//! Regex 1.7's multi-pattern `RegexSet::matches` is not used: once any member
//! matched, every later byte takes its slow path.  Members the caller marks
//! "common" (they match ordinary values, e.g. format checks such as `^\d+$`)
//! would make step 2 run on every request: they stay out of the alternation
//! and are always checked alone.
//!
//! C ABI for the engine: filters/waf/rxset.h.
pub mod translate;

use regex::bytes::{Regex, RegexBuilder};
use std::slice;

/// At most this many patterns per set (the scan returns a 64-bit mask).
pub const MAX_PATTERNS: usize = 64;
const SIZE_LIMIT: usize = 16 << 20;
/// lazy DFA cache of one member's own regex (the alternation gets the caller's limit)
const MEMBER_DFA_LIMIT: usize = 2 << 20;

struct Member {
    /// Rust syntax; None: not in the set (the caller always runs the pattern)
    src: Option<String>,
    /// compiled on first use; Err: too big alone (then it "may match" everything)
    re: Option<Result<Regex, ()>>,
    common: bool,
}

pub struct RxSet {
    /// the members that are not common, as one alternation (None: no such member)
    any: Option<Regex>,
    members: Vec<Member>,
}

fn build(pat: &str, dfa_limit: usize) -> Result<Regex, ()> {
    RegexBuilder::new(pat).size_limit(SIZE_LIMIT).dfa_size_limit(dfa_limit).build().map_err(|_| ())
}

impl Member {
    fn may_match(&mut self, hay: &[u8]) -> bool {
        let src = match &self.src {
            Some(s) => s,
            None => return true,
        };
        match self.re.get_or_insert_with(|| build(src, MEMBER_DFA_LIMIT)) {
            Ok(re) => re.is_match(hay),
            Err(()) => true,
        }
    }
}

impl RxSet {
    /// `common[i]`: pattern i matches ordinary values.  Returns the set and, per pattern,
    /// whether it is in it (untranslatable or too big: not, the caller runs it).
    pub fn new(pats: &[&[u8]], common: &[bool], dfa_limit: usize) -> (RxSet, Vec<bool>) {
        let mut members: Vec<Member> = pats
            .iter()
            .zip(common)
            .take(MAX_PATTERNS)
            .map(|(p, &c)| Member { src: translate::translate(p), re: None, common: c })
            .collect();
        for m in members.iter_mut().filter(|m| m.common && m.src.is_some()) {
            match build(m.src.as_deref().unwrap_or_default(), MEMBER_DFA_LIMIT) {
                Ok(re) => m.re = Some(Ok(re)),
                Err(()) => m.src = None,
            }
        }
        let mut any = RxSet::alternation(&members, dfa_limit);
        if any.is_err() {
            // some member does not compile in Rust (or the whole is too big): keep those that do
            for m in members.iter_mut().filter(|m| !m.common && m.src.is_some()) {
                if build(m.src.as_deref().unwrap_or_default(), dfa_limit).is_err() {
                    m.src = None;
                }
            }
            any = RxSet::alternation(&members, dfa_limit);
        }
        if any.is_err() {
            for m in members.iter_mut().filter(|m| !m.common) {
                m.src = None;
            }
        }
        let ok = members.iter().map(|m| m.src.is_some()).collect();
        (RxSet { any: any.unwrap_or(None), members }, ok)
    }

    fn alternation(members: &[Member], dfa_limit: usize) -> Result<Option<Regex>, ()> {
        let rare: Vec<&str> = members.iter().filter(|m| !m.common).filter_map(|m| m.src.as_deref()).collect();
        if rare.is_empty() {
            return Ok(None);
        }
        build(&rare.join("|"), dfa_limit).map(Some)
    }

    /// Bit i: pattern i may match somewhere in `hay`.
    pub fn scan(&mut self, hay: &[u8]) -> u64 {
        let rare_possible = match &self.any {
            Some(any) => any.is_match(hay),
            None => false,
        };
        let mut mask = 0u64;
        for (i, m) in self.members.iter_mut().enumerate() {
            if m.src.is_some() && (m.common || rare_possible) && m.may_match(hay) {
                mask |= 1u64 << i;
            }
        }
        mask
    }

    /// Whether pattern i alone may match `hay`.
    pub fn may_match(&mut self, i: usize, hay: &[u8]) -> bool {
        self.members.get_mut(i).map_or(true, |m| m.may_match(hay))
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
/// For i < n: `pats[i]` points to `lens[i]` bytes; `common` and `ok` have n bytes.
#[no_mangle]
pub unsafe extern "C" fn rxset_new(pats: *const *const u8, lens: *const usize, common: *const u8, n: usize,
                                   ok: *mut u8, dfa_limit: usize) -> *mut RxSet {
    let n = n.min(MAX_PATTERNS);
    let ps = slice::from_raw_parts(pats, n);
    let ls = slice::from_raw_parts(lens, n);
    let v: Vec<&[u8]> = ps.iter().zip(ls).map(|(&p, &l)| bytes(p, l)).collect();
    let c: Vec<bool> = slice::from_raw_parts(common, n).iter().map(|&b| b != 0).collect();
    let (set, okv) = RxSet::new(&v, &c, dfa_limit);
    for (o, k) in slice::from_raw_parts_mut(ok, n).iter_mut().zip(okv) {
        *o = k as u8;
    }
    Box::into_raw(Box::new(set))
}

/// # Safety
/// `s` from rxset_new; `hay` points to `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn rxset_scan(s: *mut RxSet, hay: *const u8, len: usize) -> u64 {
    (*s).scan(bytes(hay, len))
}

/// # Safety
/// `s` from rxset_new; `hay` points to `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn rxset_match(s: *mut RxSet, i: usize, hay: *const u8, len: usize) -> bool {
    (*s).may_match(i, bytes(hay, len))
}

/// # Safety
/// `s` from rxset_new (or NULL), not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn rxset_free(s: *mut RxSet) {
    if !s.is_null() {
        drop(Box::from_raw(s));
    }
}

#[cfg(test)]
mod tests {
    use super::RxSet;

    #[test]
    fn scan_reports_each_member_that_can_match() {
        let pats: [&[u8]; 3] = [b"(?i)union\\s+select", b"a(?=b)", b"^\\d+$"];
        let (mut s, ok) = RxSet::new(&pats, &[false, false, true], 1 << 20);
        assert_eq!(ok, vec![true, true, true]);
        assert_eq!(s.scan(b"x UNION  Select y"), 0b001);
        assert_eq!(s.scan(b"ac\n42"), 0b110);
        assert_eq!(s.scan(b"nothing here"), 0);
        assert!(s.may_match(2, b"7"));
        assert!(!s.may_match(0, b"union"));
    }

    #[test]
    fn untranslatable_members_stay_out() {
        let pats: [&[u8]; 2] = [b"(a)(?1)", b"b"];
        let (mut s, ok) = RxSet::new(&pats, &[false, false], 1 << 20);
        assert_eq!(ok, vec![false, true]);
        assert_eq!(s.scan(b"aa b"), 0b10);
    }
}
