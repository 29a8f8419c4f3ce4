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
//! A set can instead hold one phrase list (@pm: any of many literal phrases,
//! ASCII case-insensitive), run by the `aho-corasick` crate.
//!
//! C ABI for the engine: filters/waf/rxset.h.
pub mod translate;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder};
use regex::bytes::{Regex, RegexBuilder};
use std::slice;

/// At most this many patterns per set (the scan returns a 64-bit mask).
pub const MAX_PATTERNS: usize = 64;
/// pattern flags (rxset.h)
pub const COMMON: u8 = 1;
pub const CASELESS: u8 = 2;
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
    /// the members that are not common, as one alternation: None until the first scan,
    /// then the compiled regex (None: no such member), or Err when it does not compile
    any: Option<Result<Option<Regex>, ()>>,
    members: Vec<Member>,
    /// a phrase list instead of patterns: the set's only member
    phrases: Option<AhoCorasick>,
    dfa_limit: usize,
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
            })
            .collect();
        let ok = members.iter().map(|m| m.src.is_some()).collect();
        (RxSet { any: None, members, phrases: None, dfa_limit }, ok)
    }

    /// One member: any of `phrases`, ASCII case-insensitive.
    pub fn phrases(phrases: &[&[u8]]) -> RxSet {
        let ac = AhoCorasickBuilder::new().ascii_case_insensitive(true).dfa(true).build(phrases);
        RxSet { any: None, members: Vec::new(), phrases: Some(ac), dfa_limit: 0 }
    }

    fn alternation(&self) -> Result<Option<Regex>, ()> {
        let rare: Vec<&str> = self.members.iter().filter(|m| !m.common).filter_map(|m| m.src.as_deref()).collect();
        if rare.is_empty() {
            return Ok(None);
        }
        build(&rare.join("|"), self.dfa_limit).map(Some)
    }

    /// Bit i: pattern i may match somewhere in `hay`.
    pub fn scan(&mut self, hay: &[u8]) -> u64 {
        if let Some(ac) = &self.phrases {
            return ac.is_match(hay) as u64;
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

    /// Whether pattern i alone may match `hay`.
    pub fn may_match(&mut self, i: usize, hay: &[u8]) -> bool {
        if let Some(ac) = &self.phrases {
            return ac.is_match(hay);
        }
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
    use super::{RxSet, CASELESS, COMMON};

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
    fn phrase_lists_ignore_ascii_case() {
        let mut s = RxSet::phrases(&[b"etc/passwd", b"boot.ini"]);
        assert_eq!(s.scan(b"x\n../ETC/Passwd"), 1);
        assert!(!s.may_match(0, b"etc/shadow"));
    }

    #[test]
    fn untranslatable_members_stay_out() {
        let pats: [&[u8]; 2] = [b"(a)(?1)", b"b"];
        let (mut s, ok) = RxSet::new(&pats, &[0, CASELESS], 1 << 20);
        assert_eq!(ok, vec![false, true]);
        assert_eq!(s.scan(b"aa B"), 0b10);
    }
}
