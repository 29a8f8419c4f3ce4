//! The literal pass's automaton: which sets have a literal somewhere in an input.
//!
//! An Aho-Corasick automaton (ASCII case-insensitive) built as one dense DFA whose states
//! carry the answer itself: each state that ends a literal holds the (word, mask) pairs
//! of every set owning a literal that ends there, its suffixes' included.  A scan is then
//! one table lookup per byte and, at such a state, a few ORs: occurrences are not
//! reported one by one, as the `aho-corasick` crate's overlapping iterator does (in Wasm
//! it took ~1.6x the time per byte on ordinary text).  The states that end a literal are
//! numbered after all the others, so "does this state answer anything" is one comparison
//! of the value just loaded, which indexes the table as it is (no flag to clear).  The
//! table is built in place (one row per state, breadth first, each row starting as a copy
//! of its failure state's; rows renumbered by swaps): its size is the peak of the build too.

use std::collections::{HashMap, VecDeque};

pub struct Gate {
    /// byte -> class (ASCII letters folded; bytes in no literal share class 0)
    classes: [u8; 256],
    /// per state a row: the next state per class, premultiplied by the row's length (so
    /// that it indexes its row); then, for a state that ends a literal, its entry in `outs`
    trans: Vec<u32>,
    out_col: usize,
    /// the first row of the states that end a literal (premultiplied): they come last
    first_match: u32,
    outs: Vec<Vec<(u32, u64)>>,
    /// the sets owning an empty literal: they occur in every input
    always: Vec<(u32, u64)>,
}

fn masks(sets: &[u32]) -> Vec<(u32, u64)> {
    let mut by_word: Vec<(u32, u64)> = Vec::new();
    for &i in sets {
        let (w, m) = (i / 64, 1u64 << (i % 64));
        match by_word.iter_mut().find(|e| e.0 == w) {
            Some(e) => e.1 |= m,
            None => by_word.push((w, m)),
        }
    }
    by_word
}

impl Gate {
    /// `lits[k]` is owned by the sets `owners[k]`.
    pub fn new(lits: &[&[u8]], owners: &[Vec<u32>]) -> Gate {
        let mut classes = [0u8; 256];
        let mut n_classes = 1usize;
        for lit in lits {
            for &b in lit.iter() {
                let b = b.to_ascii_lowercase();
                if classes[b as usize] == 0 {
                    classes[b as usize] = n_classes as u8;
                    n_classes += 1;
                }
            }
        }
        for b in b'A'..=b'Z' {
            classes[b as usize] = classes[b.to_ascii_lowercase() as usize];
        }
        let stride = n_classes;
        // the trie (sparse), with each state's own sets
        let mut kids: Vec<Vec<(u8, u32)>> = vec![Vec::new()];
        let mut own: Vec<Vec<u32>> = vec![Vec::new()];
        let mut always: Vec<u32> = Vec::new();
        for (lit, sets) in lits.iter().zip(owners) {
            if lit.is_empty() {
                always.extend_from_slice(sets);
                continue;
            }
            let mut s = 0usize;
            for &b in lit.iter() {
                let c = classes[b as usize];
                s = match kids[s].iter().find(|e| e.0 == c) {
                    Some(e) => e.1 as usize,
                    None => {
                        kids.push(Vec::new());
                        own.push(Vec::new());
                        let t = kids.len() - 1;
                        kids[s].push((c, t as u32));
                        t
                    }
                };
            }
            own[s].extend_from_slice(sets);
        }
        // breadth first: failure transitions filled in from the failure state's row, and
        // each state's sets joined with its failure state's (its longest proper suffix)
        let n = kids.len();
        let row_len = stride + 1;
        assert!(n * row_len <= u32::MAX as usize);
        let mut trans = vec![0u32; n * row_len];
        let mut fail = vec![0u32; n];
        let mut order = Vec::with_capacity(n);
        let mut queue = VecDeque::new();
        for &(c, t) in &kids[0] {
            trans[c as usize] = t;
            queue.push_back(t as usize);
        }
        while let Some(s) = queue.pop_front() {
            order.push(s);
            let f = fail[s] as usize;
            let (row, frow) = (s * row_len, f * row_len);
            trans.copy_within(frow..frow + stride, row);
            for &(c, t) in &kids[s] {
                fail[t as usize] = trans[frow + c as usize];
                trans[row + c as usize] = t;
                queue.push_back(t as usize);
            }
        }
        drop(kids);
        let mut sets: Vec<Vec<u32>> = own;
        for &s in &order {
            let f = fail[s] as usize;
            if !sets[f].is_empty() {
                let extra = sets[f].clone();
                sets[s].extend(extra);
            }
            sets[s].sort_unstable();
            sets[s].dedup();
        }
        // the states that end a literal renumbered last (the root, which ends none, stays 0)
        let mut num = vec![0u32; n];
        let mut next = 0u32;
        for pass in [false, true] {
            for s in 0..n {
                if sets[s].is_empty() != pass {
                    num[s] = next;
                    next += 1;
                }
            }
        }
        let first_match = (n - sets.iter().filter(|v| !v.is_empty()).count()) * row_len;
        // in place: next states renumbered and premultiplied, each row's last entry its answer
        let mut index: HashMap<Vec<u32>, u32> = HashMap::new();
        let mut outs: Vec<Vec<(u32, u64)>> = Vec::new();
        for s in 0..n {
            let row = s * row_len;
            for e in &mut trans[row..row + stride] {
                *e = num[*e as usize] * row_len as u32;
            }
            if !sets[s].is_empty() {
                trans[row + stride] = *index.entry(sets[s].clone()).or_insert_with(|| {
                    outs.push(masks(&sets[s]));
                    outs.len() as u32 - 1
                });
            }
        }
        // rows moved to their new numbers, a cycle of the permutation at a time
        for s in 0..n {
            while num[s] as usize != s {
                let t = num[s] as usize;
                let (lo, hi) = trans.split_at_mut(s.max(t) * row_len);
                lo[s.min(t) * row_len..][..row_len].swap_with_slice(&mut hi[..row_len]);
                num.swap(s, t);
            }
        }
        Gate { classes, trans, out_col: stride, first_match: first_match as u32, outs, always: masks(&always) }
    }

    /// ORs into `bits` (64 sets per word) the sets one of whose literals occurs in `hay`.
    pub fn scan(&self, hay: &[u8], bits: &mut [u64]) {
        for &(w, m) in &self.always {
            bits[w as usize] |= m;
        }
        let (trans, classes, first_match) = (&self.trans[..], &self.classes, self.first_match);
        // every entry of `trans` starts a row and every class < stride
        let step = |s: u32, b: u8| unsafe { *trans.get_unchecked(s as usize + *classes.get_unchecked(b as usize) as usize) };
        let mut s = 0u32;   // the root
        let mut quads = hay.chunks_exact(4);
        for q in &mut quads {
            for &b in q {
                s = step(s, b);
                if s >= first_match {
                    self.answer(s, bits);
                }
            }
        }
        for &b in quads.remainder() {
            s = step(s, b);
            if s >= first_match {
                self.answer(s, bits);
            }
        }
    }

    #[cold]
    fn answer(&self, s: u32, bits: &mut [u64]) {
        for &(w, m) in &self.outs[self.trans[s as usize + self.out_col] as usize] {
            bits[w as usize] |= m;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Gate;
    use aho_corasick::AhoCorasickBuilder;

    /// The sets the `aho-corasick` crate's overlapping search finds, the reference.
    fn reference(lits: &[&[u8]], owners: &[Vec<u32>], hay: &[u8], bits: &mut [u64]) {
        let ac = AhoCorasickBuilder::new().ascii_case_insensitive(true).dfa(true).build(lits);
        for m in ac.find_overlapping_iter(hay) {
            for &i in &owners[m.pattern()] {
                bits[i as usize / 64] |= 1u64 << (i % 64);
            }
        }
    }

    #[test]
    fn finds_the_sets_of_every_occurrence_in_any_case() {
        let lits: [&[u8]; 6] = [b"union", b"select", b"/etc/", b"ion", b"<script", b"\xc0\xae"];
        let owners = vec![vec![0], vec![0, 70], vec![1], vec![2], vec![3, 64], vec![4]];
        let g = Gate::new(&lits, &owners);
        for hay in [&b"an ordinary sentence"[..], b"UNIONs", b"x\n../ETC/passwd", b"<ScRiPt", b"\xc0\xae", b"", b"selec"] {
            let (mut a, mut b) = ([0u64; 2], [0u64; 2]);
            g.scan(hay, &mut a);
            reference(&lits, &owners, hay, &mut b);
            assert_eq!(a, b, "{:?}", String::from_utf8_lossy(hay));
        }
        let mut bits = [0u64; 2];
        g.scan(b"a UNION b", &mut bits);
        assert_eq!(bits, [0b101, 0]);   // "union" and its suffix "ion"
    }

    #[test]
    fn agrees_with_aho_corasick_on_random_text() {
        let mut seed = 0x2545F4914F6CDD1Du64;
        let mut rnd = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let alphabet = b"abcABC/-. \n\x80";
        let mut lits: Vec<Vec<u8>> = Vec::new();
        for _ in 0..300 {
            let len = 1 + rnd(5) as usize;
            lits.push((0..len).map(|_| alphabet[rnd(alphabet.len() as u64) as usize]).collect());
        }
        let owners: Vec<Vec<u32>> = (0..lits.len()).map(|_| vec![rnd(150) as u32, rnd(150) as u32]).collect();
        let refs: Vec<&[u8]> = lits.iter().map(|v| v.as_slice()).collect();
        let g = Gate::new(&refs, &owners);
        for _ in 0..300 {
            let len = rnd(40) as usize;
            let hay: Vec<u8> = (0..len).map(|_| alphabet[rnd(alphabet.len() as u64) as usize]).collect();
            let (mut a, mut b) = ([0u64; 3], [0u64; 3]);
            g.scan(&hay, &mut a);
            reference(&refs, &owners, &hay, &mut b);
            assert_eq!(a, b);
        }
    }
}
