//! Patterns with their digits folded: every ASCII digit a literal or class holds also takes
//! `0`.  A folded pattern matches wherever the pattern does (it only matches more), and where
//! the pattern matches a text it matches the text with each digit written as `0` (by the
//! pattern's structure: a digit it matched is now `0`, which the folded literal or class
//! holds; digits and `0` are alike word bytes and none is a line end).  The engine's unions are
//! folded so, and asked about a large source's distinct values in that form, each form once:
//! a JSON array's argument names `json.items.array_N.field` are a few forms per field
//! (`array_0`, `array_00`, …) instead of one value per record.
use regex_syntax::hir::{
    Class, ClassBytes, ClassBytesRange, ClassUnicode, ClassUnicodeRange, Group, Hir, HirKind, Literal, Repetition,
};
use regex_syntax::ParserBuilder;

/// `src`: a translated pattern (Rust syntax, as lib.rs compiles it); None when it does not
/// parse.  A pattern without digits is returned as it is (compiled as before).
pub fn fold_digits(src: &str) -> Option<String> {
    let hir = ParserBuilder::new().allow_invalid_utf8(true).build().parse(src).ok()?;
    let folded = fold(&hir);
    Some(if folded == hir { src.to_string() } else { folded.to_string() })
}

fn has_digit(start: u32, end: u32) -> bool {
    start <= b'9' as u32 && end >= b'0' as u32
}

fn fold(h: &Hir) -> Hir {
    match h.kind() {
        HirKind::Literal(Literal::Unicode(c)) if c.is_ascii_digit() && *c != '0' => {
            Hir::class(Class::Unicode(ClassUnicode::new([ClassUnicodeRange::new('0', '0'), ClassUnicodeRange::new(*c, *c)])))
        }
        HirKind::Literal(Literal::Byte(b)) if b.is_ascii_digit() && *b != b'0' => {
            Hir::class(Class::Bytes(ClassBytes::new([ClassBytesRange::new(b'0', b'0'), ClassBytesRange::new(*b, *b)])))
        }
        HirKind::Class(Class::Unicode(c)) if c.iter().any(|r| has_digit(r.start() as u32, r.end() as u32)) => {
            let mut c = c.clone();
            c.push(ClassUnicodeRange::new('0', '0'));
            Hir::class(Class::Unicode(c))
        }
        HirKind::Class(Class::Bytes(c)) if c.iter().any(|r| has_digit(r.start() as u32, r.end() as u32)) => {
            let mut c = c.clone();
            c.push(ClassBytesRange::new(b'0', b'0'));
            Hir::class(Class::Bytes(c))
        }
        HirKind::Repetition(r) => Hir::repetition(Repetition { kind: r.kind.clone(), greedy: r.greedy, hir: Box::new(fold(&r.hir)) }),
        HirKind::Group(g) => Hir::group(Group { kind: g.kind.clone(), hir: Box::new(fold(&g.hir)) }),
        HirKind::Concat(hs) => Hir::concat(hs.iter().map(fold).collect()),
        HirKind::Alternation(hs) => Hir::alternation(hs.iter().map(fold).collect()),
        _ => h.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::fold_digits;
    use regex::bytes::Regex;

    fn folded(text: &[u8]) -> Vec<u8> {
        text.iter().map(|&b| if b.is_ascii_digit() { b'0' } else { b }).collect()
    }

    #[test]
    fn a_folded_pattern_matches_the_text_and_the_folded_text_wherever_the_pattern_matched() {
        let pats = [r"(?sm-u)atan2\(", r"(?sm-u)(?:^|\n)4294967295$", r"(?i-u)x[1-3]{2}y", r"(?-u)\d{3}-\d+",
                    r"(?-u)\b1=1\b", r"(?sm-u)[^0-8]", r"(?-u)\x37"];
        let texts: [&[u8]; 8] = [b"atan2(", b"4294967295", b"X13Y", b"123-4", b"a 1=1 b", b"9", b"7", b"plain"];
        for p in pats {
            let (orig, f) = (Regex::new(p).unwrap(), Regex::new(&fold_digits(p).unwrap()).unwrap());
            for t in texts {
                if orig.is_match(t) {
                    assert!(f.is_match(t) && f.is_match(&folded(t)), "{p} on {:?}", String::from_utf8_lossy(t));
                }
            }
        }
    }

    #[test]
    fn folding_keeps_what_does_not_involve_digits() {
        let f = Regex::new(&fold_digits(r"(?sm-u)(?i)\bcat\s+/etc/").unwrap()).unwrap();
        assert!(f.is_match(b"x;CAT /etc/passwd") && !f.is_match(b"concatenate"));
    }
}
