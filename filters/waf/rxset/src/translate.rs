//! PCRE2 pattern -> Rust `regex` syntax, as a *superset*: every subject PCRE2
//! matches (8-bit, non-UTF, DOTALL | MULTILINE, as the engine compiles @rx) is
//! matched by the translation.  Constructs a finite automaton cannot express are
//! widened (lookarounds dropped, backreferences become `.*`, atomic groups and
//! possessive quantifiers become plain ones); constructs with no safe widening
//! (recursion, conditionals, callouts, verbs, extended mode) give `None`.
//! Literal bytes are written as `\xHH`, so Rust's escaping rules never matter.

use std::fmt::Write;

/// Translate `pat`; `None` when it has no safe superset in Rust syntax.  `caseless`: match
/// ASCII letters in any case throughout (a superset of the pattern on a lowercased subject).
pub fn translate(pat: &[u8], caseless: bool) -> Option<String> {
    let mut t = Tr { p: pat, i: 0, groups: 0, caseless, out: String::with_capacity(pat.len() * 2) };
    t.out.push_str(if caseless { "(?ism-u)(?:" } else { "(?sm-u)(?:" });
    t.alternation()?;
    if t.i != t.p.len() {
        return None;
    }
    t.out.push(')');
    Some(t.out)
}

/// Any byte string (what a backreference or `\X` could match).
const ANY_STRING: &str = "(?s-u:.*)";
const ANY_BYTE: &str = "(?s-u:.)";

struct Tr<'a> {
    p: &'a [u8],
    i: usize,
    groups: usize,
    /// never turn case-insensitivity off
    caseless: bool,
    out: String,
}

fn hexval(c: u8) -> Option<u32> {
    (c as char).to_digit(16)
}

impl<'a> Tr<'a> {
    fn peek(&self) -> Option<u8> {
        self.p.get(self.i).copied()
    }
    fn peek_at(&self, k: usize) -> Option<u8> {
        self.p.get(self.i + k).copied()
    }

    fn lit(out: &mut String, b: u8) {
        if b.is_ascii_alphanumeric() {
            out.push(b as char);
        } else {
            let _ = write!(out, "\\x{:02X}", b);
        }
    }

    fn alternation(&mut self) -> Option<()> {
        self.sequence()?;
        while self.peek() == Some(b'|') {
            self.i += 1;
            self.out.push('|');
            self.sequence()?;
        }
        Some(())
    }

    fn sequence(&mut self) -> Option<()> {
        while let Some(c) = self.peek() {
            if c == b'|' || c == b')' {
                break;
            }
            let start = self.out.len();
            let quantifiable = self.atom()?;
            self.quantifiers(start, quantifiable)?;
        }
        Some(())
    }

    /// Quantifiers after the atom written at out[start..]; possessive `+` dropped.
    fn quantifiers(&mut self, start: usize, quantifiable: bool) -> Option<()> {
        loop {
            let q = match self.peek() {
                Some(b'*') | Some(b'+') | Some(b'?') => {
                    let c = self.peek().unwrap();
                    self.i += 1;
                    (c as char).to_string()
                }
                Some(b'{') => match self.brace_quantifier() {
                    Some(q) => q,
                    None => return Some(()), // a literal '{': the next atom
                },
                _ => return Some(()),
            };
            if !quantifiable {
                // a quantified assertion may match zero times: drop it (widening)
                self.out.truncate(start);
                continue;
            }
            // Rust rejects stacked repetitions (a{2}{3}); wrap what we have so far
            let atom = self.out.split_off(start);
            let _ = write!(self.out, "(?:{}){}", atom, q);
            match self.peek() {
                Some(b'?') => {
                    self.i += 1;
                    self.out.push('?');
                }
                Some(b'+') => self.i += 1,
                _ => {}
            }
        }
    }

    /// `{n}`, `{n,}`, `{n,m}`, `{,m}`; None (nothing consumed) when it is a literal brace.
    fn brace_quantifier(&mut self) -> Option<String> {
        let rest = &self.p[self.i + 1..];
        let end = rest.iter().position(|&c| c == b'}')?;
        let body: Vec<u8> = rest[..end].iter().copied().filter(|c| *c != b' ').collect();
        let s = std::str::from_utf8(&body).ok()?;
        let (lo, hi) = match s.split_once(',') {
            Some((a, b)) => (a, Some(b)),
            None => (s, None),
        };
        let num = |x: &str| !x.is_empty() && x.bytes().all(|c| c.is_ascii_digit());
        let q = match hi {
            None if num(lo) => format!("{{{}}}", lo.parse::<u32>().ok()?),
            Some(h) if num(lo) && h.is_empty() => format!("{{{},}}", lo.parse::<u32>().ok()?),
            Some(h) if num(lo) && num(h) => format!("{{{},{}}}", lo.parse::<u32>().ok()?, h.parse::<u32>().ok()?),
            Some(h) if lo.is_empty() && num(h) => format!("{{0,{}}}", h.parse::<u32>().ok()?),
            _ => return None,
        };
        self.i += end + 2;
        Some(q)
    }

    /// One atom; false when it is zero-width / empty (a quantifier on it is dropped).
    fn atom(&mut self) -> Option<bool> {
        let c = self.peek()?;
        self.i += 1;
        match c {
            b'(' => self.group(),
            b'[' => {
                let cls = self.class()?;
                self.out.push_str(&cls);
                Some(true)
            }
            b'\\' => self.escape(),
            b'.' => {
                self.out.push('.');
                Some(true)
            }
            b'^' | b'$' => {
                let _ = write!(self.out, "(?m:{})", c as char);
                Some(false)
            }
            b'*' | b'+' | b'?' => None,
            _ => {
                Tr::lit(&mut self.out, c);
                Some(true)
            }
        }
    }

    fn group(&mut self) -> Option<bool> {
        if self.peek() == Some(b'*') {
            return None; // (*VERB), (*pla:...)
        }
        if self.peek() != Some(b'?') {
            self.groups += 1;
            return self.group_body("(?:");
        }
        self.i += 1;
        let k = self.peek()?;
        match k {
            b':' | b'>' | b'|' => {
                self.i += 1;
                self.group_body("(?:")
            }
            b'=' | b'!' => {
                self.i += 1;
                self.skip_group()
            }
            b'<' if matches!(self.peek_at(1), Some(b'=') | Some(b'!')) => {
                self.i += 2;
                self.skip_group()
            }
            b'#' => {
                let end = self.p[self.i..].iter().position(|&c| c == b')')?;
                self.i += end + 1;
                Some(false)
            }
            b'<' | b'\'' => {
                let close = if k == b'<' { b'>' } else { b'\'' };
                let end = self.p[self.i + 1..].iter().position(|&c| c == close)?;
                self.i += end + 2;
                self.groups += 1;
                self.group_body("(?:")
            }
            b'P' => match self.peek_at(1) {
                Some(b'<') => {
                    let end = self.p[self.i + 2..].iter().position(|&c| c == b'>')?;
                    self.i += end + 3;
                    self.groups += 1;
                    self.group_body("(?:")
                }
                Some(b'=') => {
                    let end = self.p[self.i..].iter().position(|&c| c == b')')?;
                    self.i += end + 1;
                    self.out.push_str(ANY_STRING);
                    Some(true)
                }
                _ => None,
            },
            _ => self.flags(),
        }
    }

    /// `(?imsU-imsU)` or `(?imsU-imsU:...)`; `n` and `J` are dropped, `x` unsupported.
    fn flags(&mut self) -> Option<bool> {
        let mut f = String::new();
        let mut off = false;
        loop {
            let c = self.peek()?;
            self.i += 1;
            match c {
                b'i' if off && self.caseless => {}
                b'i' | b'm' | b's' | b'U' => f.push(c as char),
                b'-' => {
                    off = true;
                    f.push('-');
                }
                b'n' | b'J' => {}
                b'^' => f.push_str(if self.caseless { "-ms" } else { "-ims" }),
                b')' => {
                    if !f.is_empty() && f != "-" {
                        let _ = write!(self.out, "(?{})", f.trim_end_matches('-'));
                    }
                    return Some(false);
                }
                b':' => {
                    let f = f.trim_end_matches('-');
                    let open = if f.is_empty() { "(?:".to_string() } else { format!("(?{}:", f) };
                    return self.group_body(&open);
                }
                _ => return None,
            }
        }
    }

    fn group_body(&mut self, open: &str) -> Option<bool> {
        self.out.push_str(open);
        self.alternation()?;
        if self.peek() != Some(b')') {
            return None;
        }
        self.i += 1;
        self.out.push(')');
        Some(true)
    }

    /// A lookaround: parsed (so the pattern stays well-formed) and dropped.
    fn skip_group(&mut self) -> Option<bool> {
        let mark = self.out.len();
        self.alternation()?;
        if self.peek() != Some(b')') {
            return None;
        }
        self.i += 1;
        self.out.truncate(mark);
        Some(false)
    }

    /// Escape outside a class (the backslash consumed).
    fn escape(&mut self) -> Option<bool> {
        let c = self.peek()?;
        self.i += 1;
        let piece: &str = match c {
            b'd' | b'D' | b'w' | b'W' | b's' | b'S' => {
                let _ = write!(self.out, "\\{}", c as char);
                return Some(true);
            }
            b'b' | b'B' => {
                let _ = write!(self.out, "\\{}", c as char);
                return Some(false);
            }
            // start / end of the subject: of a line in a joined scan buffer
            b'A' | b'G' => {
                self.out.push_str("(?m:^)");
                return Some(false);
            }
            b'z' | b'Z' => {
                self.out.push_str("(?m:$)");
                return Some(false);
            }
            b'K' | b'E' => return Some(false),
            b'h' => "[\\x09\\x20\\xA0]",
            b'H' => "[^\\x09\\x20\\xA0]",
            b'v' => "[\\x0A-\\x0D\\x85]",
            b'V' => "[^\\x0A-\\x0D\\x85]",
            b'R' => "(?:\\x0D\\x0A|[\\x0A-\\x0D\\x85])",
            b'N' if self.peek() != Some(b'{') => "[^\\x0A]",
            b'X' => "(?s-u:.+)",
            b'C' => ANY_BYTE,
            b'p' | b'P' => {
                self.skip_property()?;
                ANY_BYTE
            }
            b'g' | b'k' => {
                self.skip_backref(c)?;
                ANY_STRING
            }
            b'1'..=b'9' => {
                // a backreference (PCRE2 reads \10+ as octal only beyond the group count)
                let start = self.i - 1;
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.i += 1;
                }
                let n: usize = std::str::from_utf8(&self.p[start..self.i]).ok()?.parse().ok()?;
                if n >= 10 && n > self.groups {
                    self.i = start;
                    let b = self.octal(3)?;
                    Tr::lit(&mut self.out, b);
                    return Some(true);
                }
                ANY_STRING
            }
            b'Q' => {
                let rest = &self.p[self.i..];
                let end = rest.windows(2).position(|w| w == b"\\E").unwrap_or(rest.len());
                let mark = self.out.len();
                for &b in &rest[..end] {
                    Tr::lit(&mut self.out, b);
                }
                self.i += (end + 2).min(rest.len());
                return Some(self.out.len() > mark);
            }
            _ => {
                let b = self.escaped_byte(c)?;
                Tr::lit(&mut self.out, b);
                return Some(true);
            }
        };
        self.out.push_str(piece);
        Some(true)
    }

    fn skip_property(&mut self) -> Option<()> {
        if self.peek() == Some(b'{') {
            let end = self.p[self.i..].iter().position(|&c| c == b'}')?;
            self.i += end + 1;
        } else {
            self.peek()?;
            self.i += 1;
        }
        Some(())
    }

    fn skip_backref(&mut self, kind: u8) -> Option<()> {
        match self.peek()? {
            b'{' => {
                let end = self.p[self.i..].iter().position(|&c| c == b'}')?;
                self.i += end + 1;
            }
            b'<' | b'\'' if kind == b'k' => {
                let close = if self.peek() == Some(b'<') { b'>' } else { b'\'' };
                let end = self.p[self.i + 1..].iter().position(|&c| c == close)?;
                self.i += end + 2;
            }
            b'0'..=b'9' | b'-' | b'+' if kind == b'g' => {
                self.i += 1;
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.i += 1;
                }
            }
            _ => return None, // \g<...> is a subroutine call
        }
        Some(())
    }

    /// Up to `max` octal digits at self.i.
    fn octal(&mut self, max: usize) -> Option<u8> {
        let mut v: u32 = 0;
        let mut k = 0;
        while k < max && matches!(self.peek(), Some(b'0'..=b'7')) {
            v = v * 8 + (self.peek()? - b'0') as u32;
            self.i += 1;
            k += 1;
        }
        if k == 0 {
            return None;
        }
        u8::try_from(v).ok()
    }

    /// The byte an escape stands for (`c` consumed): \n \x41 \x{41} \0 \o{101} \cA \/ ...
    fn escaped_byte(&mut self, c: u8) -> Option<u8> {
        Some(match c {
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'f' => 0x0c,
            b'e' => 0x1b,
            b'a' => 0x07,
            b'0' => {
                self.i -= 1;
                self.octal(3)?
            }
            b'o' => {
                if self.peek() != Some(b'{') {
                    return None;
                }
                let end = self.p[self.i..].iter().position(|&c| c == b'}')?;
                let s = std::str::from_utf8(&self.p[self.i + 1..self.i + end]).ok()?;
                self.i += end + 1;
                u8::try_from(u32::from_str_radix(s, 8).ok()?).ok()?
            }
            b'x' => {
                if self.peek() == Some(b'{') {
                    let end = self.p[self.i..].iter().position(|&c| c == b'}')?;
                    let s = std::str::from_utf8(&self.p[self.i + 1..self.i + end]).ok()?;
                    self.i += end + 1;
                    u8::try_from(u32::from_str_radix(s.trim(), 16).ok()?).ok()?
                } else {
                    let mut v = 0u32;
                    let mut k = 0;
                    while k < 2 {
                        match self.peek().and_then(hexval) {
                            Some(h) => {
                                v = v * 16 + h;
                                self.i += 1;
                                k += 1;
                            }
                            None => break,
                        }
                    }
                    v as u8
                }
            }
            b'c' => {
                let x = self.peek()?;
                self.i += 1;
                x.to_ascii_uppercase() ^ 0x40
            }
            c if c.is_ascii_alphanumeric() => return None,
            c => c,
        })
    }

    /// A character class (the '[' consumed), as a Rust class.
    fn class(&mut self) -> Option<String> {
        let mut out = String::from("[");
        if self.peek() == Some(b'^') {
            self.i += 1;
            out.push('^');
        }
        let mut first = true;
        let mut items = 0;
        loop {
            let c = self.peek()?;
            if c == b']' && !first {
                self.i += 1;
                break;
            }
            first = false;
            if c == b'[' && self.peek_at(1) == Some(b':') {
                let end = self.p[self.i..].windows(2).position(|w| w == b":]")?;
                let name = std::str::from_utf8(&self.p[self.i + 2..self.i + end]).ok()?;
                let bare = name.trim_start_matches('^');
                const NAMES: [&str; 14] = ["alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph",
                                           "lower", "print", "punct", "space", "upper", "word", "xdigit"];
                if !NAMES.contains(&bare) {
                    return None;
                }
                let _ = write!(out, "[[:{}:]]", name);
                self.i += end + 2;
                items += 1;
                continue;
            }
            let lo = match self.class_atom(&mut out)? {
                Some(b) => b,
                None => {
                    items += 1;
                    continue;
                }
            };
            // a range?
            if self.peek() == Some(b'-') && self.peek_at(1).map_or(false, |c| c != b']') {
                let save = self.i;
                self.i += 1;
                let mut scratch = String::new();
                match self.class_atom(&mut scratch)? {
                    Some(hi) if hi >= lo => {
                        let _ = write!(out, "\\x{:02X}-\\x{:02X}", lo, hi);
                        items += 1;
                        continue;
                    }
                    Some(_) => return None,
                    None => {
                        // [a-\d]: '-' is literal
                        self.i = save;
                    }
                }
            }
            let _ = write!(out, "\\x{:02X}", lo);
            items += 1;
        }
        if items == 0 {
            return None;
        }
        out.push(']');
        Some(out)
    }

    /// One class member: Some(byte) for a single byte, None after writing a set (\d, \h, ...) to out.
    fn class_atom(&mut self, out: &mut String) -> Option<Option<u8>> {
        let c = self.peek()?;
        self.i += 1;
        if c != b'\\' {
            return Some(Some(c));
        }
        let e = self.peek()?;
        self.i += 1;
        let set = match e {
            b'd' | b'D' | b'w' | b'W' | b's' | b'S' => {
                let _ = write!(out, "\\{}", e as char);
                return Some(None);
            }
            b'h' => "\\x09\\x20\\xA0",
            b'H' => "[^\\x09\\x20\\xA0]",
            b'v' => "\\x0A-\\x0D\\x85",
            b'V' => "[^\\x0A-\\x0D\\x85]",
            b'p' | b'P' => {
                self.skip_property()?;
                "\\x00-\\xFF"
            }
            b'b' => return Some(Some(0x08)),
            b'N' | b'R' | b'X' => return None,
            b'Q' => {
                let rest = &self.p[self.i..];
                let end = rest.windows(2).position(|w| w == b"\\E").unwrap_or(rest.len());
                for &b in &rest[..end] {
                    let _ = write!(out, "\\x{:02X}", b);
                }
                self.i += (end + 2).min(rest.len());
                return Some(None);
            }
            b'E' => return Some(None),
            b'1'..=b'7' => {
                self.i -= 1;
                return Some(Some(self.octal(3)?));
            }
            _ => return Some(Some(self.escaped_byte(e)?)),
        };
        out.push_str(set);
        Some(None)
    }
}

#[cfg(test)]
mod tests {
    use super::translate;

    fn t(p: &str) -> String {
        translate(p.as_bytes(), false).unwrap()
    }

    #[test]
    fn literals_are_hex_escaped() {
        assert_eq!(t("a/b"), "(?sm-u)(?:a\\x2Fb)");
    }

    #[test]
    fn lookarounds_are_dropped() {
        assert_eq!(t("a(?!b)c"), "(?sm-u)(?:ac)");
    }

    #[test]
    fn recursion_is_refused() {
        assert!(translate(b"a(?R)", false).is_none());
    }

    #[test]
    fn caseless_keeps_case_insensitivity_on() {
        assert_eq!(translate(b"a(?-i)b", true).unwrap(), "(?ism-u)(?:ab)");
    }
}
