//! What a build log never keeps: secret values, replaced by `[redacted]` before a line is kept
//! anywhere (the stored log, the live stream, an error message, a diagnostic).
//!
//! The farm's own secrets (its database and Redis URLs, tokens, keys) are redacted where they
//! appear whole. A project's secret values reach its build, so the build may print them in
//! other shapes, and those are redacted too:
//!
//! - base64-encoded (standard or URL-safe alphabet, padded or not, alone or inside a longer
//!   base64 text, at any of the three byte offsets);
//! - split across lines: a piece of the value that starts it or ends it, anywhere in a line
//!   (`echo ${S:0:10}; echo ${S:10}`, or a tool wrapping long output), and a line that is
//!   entirely a piece of it (the middle of a value wrapped over three lines or more), each
//!   piece at least [`fragment_min`] bytes long.

use std::borrow::Cow;

use base64::Engine;

/// The shortest value redacted (shorter ones would mangle ordinary text).
const MIN_SECRET_BYTES: usize = 6;
const REDACTED: &str = "[redacted]";

/// The shortest piece of a project secret redacted on its own: half the value, at least 4 and
/// at most 8 bytes.
pub fn fragment_min(secret: &str) -> usize {
    (secret.len() / 2).clamp(4, 8)
}

/// Secret values that must never appear in a log.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Redacted where they appear whole, longest first.
    whole: Vec<String>,
    /// Also redacted piece by piece (a project's values and their base64 forms).
    pieces: Vec<String>,
}

impl Redactor {
    /// The farm's own secrets.
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut r = Self {
            whole: secrets
                .into_iter()
                .filter(|s| s.len() >= MIN_SECRET_BYTES)
                .collect(),
            pieces: Vec::new(),
        };
        r.sort();
        r
    }

    /// These secrets and a project's secret values (with their encoded forms).
    pub fn with_project(&self, values: impl IntoIterator<Item = String>) -> Self {
        let mut r = self.clone();
        for value in values.into_iter().filter(|s| s.len() >= MIN_SECRET_BYTES) {
            for form in std::iter::once(value.clone()).chain(base64_forms(value.as_bytes())) {
                r.whole.push(form.clone());
                r.pieces.push(form);
            }
        }
        r.sort();
        r
    }

    fn sort(&mut self) {
        for list in [&mut self.whole, &mut self.pieces] {
            // Longest first, so a secret that contains another is replaced whole.
            list.sort_by_key(|s| (std::cmp::Reverse(s.len()), s.clone()));
            list.dedup();
        }
    }

    pub fn apply<'a>(&self, line: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(line);
        for s in &self.whole {
            if out.contains(s.as_str()) {
                out = Cow::Owned(out.replace(s.as_str(), REDACTED));
            }
        }
        for s in &self.pieces {
            if let Some(redacted) = redact_pieces(&out, s) {
                out = Cow::Owned(redacted);
            }
        }
        out
    }

    /// [`Redactor::apply`] for the start of a line cut short: a secret whose beginning ends
    /// it (the rest was cut off) is redacted too, so no part of a secret is kept.
    pub fn apply_cut<'a>(&self, start: &'a str) -> Cow<'a, str> {
        let mut out = self.apply(start);
        for s in self.whole.iter() {
            let begun = (1..s.len())
                .rev()
                .filter(|&n| s.is_char_boundary(n))
                .find(|&n| out.ends_with(&s[..n]));
            if let Some(n) = begun {
                let kept = out.len() - n;
                out = Cow::Owned(format!("{}{REDACTED}", &out[..kept]));
            }
        }
        out
    }
}

/// The line with the pieces of `secret` it holds redacted (`None`: it holds none): a line
/// that is entirely a piece of the secret, and pieces that begin or end the secret.
fn redact_pieces(line: &str, secret: &str) -> Option<String> {
    let min = fragment_min(secret);
    let trimmed = line.trim();
    if trimmed.len() >= min && trimmed != REDACTED && secret.contains(trimmed) {
        return Some(line.replace(trimmed, REDACTED));
    }
    let (l, s) = (line.as_bytes(), secret.as_bytes());
    if l.len() < min || s.len() <= min {
        return None;
    }
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    // A piece that begins the secret: its first `min` bytes, then as far as both agree.
    let head = &s[..min];
    for at in memchr::memmem::find_iter(l, head) {
        let len = l[at..].iter().zip(s).take_while(|(a, b)| a == b).count();
        ranges.push((at, at + len));
    }
    // A piece that ends the secret: its last `min` bytes, then back as far as both agree.
    let tail = &s[s.len() - min..];
    for at in memchr::memmem::find_iter(l, tail) {
        let end = at + min;
        let len = l[..end]
            .iter()
            .rev()
            .zip(s.iter().rev())
            .take_while(|(a, b)| a == b)
            .count();
        ranges.push((end - len, end));
    }
    if ranges.is_empty() {
        return None;
    }
    ranges.sort();
    let mut out = String::with_capacity(line.len());
    let mut done = 0;
    for (start, end) in ranges {
        // Whole characters only (a multi-byte character cut by a match is redacted whole).
        let start = (0..=start)
            .rev()
            .find(|&i| line.is_char_boundary(i))
            .unwrap_or(0)
            .max(done);
        let end = (end..=line.len())
            .find(|&i| line.is_char_boundary(i))
            .unwrap_or(line.len());
        if end <= start {
            continue;
        }
        out.push_str(&line[done..start]);
        out.push_str(REDACTED);
        done = end;
    }
    out.push_str(&line[done..]);
    Some(out)
}

/// The base64 forms of a value that any base64 text holding it contains: the value encoded
/// alone (both alphabets), and, for each of the three offsets it may start at inside longer
/// text, the characters its own whole 3-byte groups encode to.
fn base64_forms(value: &[u8]) -> Vec<String> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let mut forms = Vec::new();
    for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
        forms.push(engine.encode(value));
        for skip in 0..3 {
            let rest = value.get(skip..).unwrap_or_default();
            let whole = rest.len() / 3 * 3;
            let core = engine.encode(&rest[..whole]);
            if core.len() >= 8 {
                forms.push(core);
            }
        }
    }
    forms.sort();
    forms.dedup();
    forms
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "sk_live_4f9a2b7c1d8e3f60aa";

    fn r() -> Redactor {
        Redactor::new(["farm-token-123".to_owned()]).with_project([SECRET.to_owned()])
    }

    #[test]
    fn whole_values_and_the_farms_are_redacted() {
        let r = r();
        assert_eq!(r.apply(&format!("key={SECRET}!")), "key=[redacted]!");
        assert_eq!(r.apply("t=farm-token-123"), "t=[redacted]");
        assert_eq!(r.apply("nothing secret here"), "nothing secret here");
    }

    #[test]
    fn a_value_split_over_lines_leaves_no_piece() {
        let r = r();
        for cut in [6, 10, 13, 18, 20] {
            let (a, b) = SECRET.split_at(cut);
            let first = r.apply(&format!("part one: {a}")).into_owned();
            let second = r.apply(&format!("part two: {b} (end)")).into_owned();
            for piece in [a, b] {
                if piece.len() >= fragment_min(SECRET) {
                    assert!(
                        !first.contains(piece) && !second.contains(piece),
                        "{cut}: {first} / {second}"
                    );
                }
            }
            assert!(
                first.contains("[redacted]") || second.contains("[redacted]"),
                "{cut}"
            );
        }
        // Wrapped over three lines: the middle one is a piece of it.
        let (a, rest) = SECRET.split_at(9);
        let (b, c) = rest.split_at(9);
        assert_eq!(r.apply(a), "[redacted]");
        assert_eq!(r.apply(&format!("  {b}")), "  [redacted]");
        assert_eq!(r.apply(c), "[redacted]");
        // The farm's own values are redacted whole only (its URLs' pieces are common words).
        assert_eq!(r.apply("farm-tok"), "farm-tok");
    }

    #[test]
    fn base64_forms_are_redacted_at_any_offset_and_wrapped() {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE};
        let r = r();
        for prefix in ["", "a", "ab", "abc"] {
            for engine in [&STANDARD, &URL_SAFE] {
                let encoded = engine.encode(format!("{prefix}{SECRET}\n"));
                let line = r.apply(&encoded).into_owned();
                let decoded_rest = line.replace("[redacted]", "");
                assert!(line.contains("[redacted]"), "{prefix:?}: {line}");
                // What is left decodes to no more than a few bytes of the value.
                assert!(decoded_rest.len() <= 8, "{prefix:?}: {line}");
            }
        }
        // `base64` wraps its output at 76 characters.
        let long = format!("{SECRET}{SECRET}{SECRET}");
        let r = Redactor::default().with_project([long.clone()]);
        let encoded = STANDARD.encode(&long);
        for chunk in encoded.as_bytes().chunks(76) {
            let line = std::str::from_utf8(chunk).unwrap();
            assert!(r.apply(line).contains("[redacted]"), "{line}");
        }
    }

    #[test]
    fn multibyte_text_around_a_piece_stays_valid() {
        let r = Redactor::default().with_project(["pässwörd-geheim".to_owned()]);
        let out = r.apply("→ pässwö");
        assert!(out.contains("[redacted]"), "{out}");
        let out = r.apply("rd-geheim ←");
        assert_eq!(out, "[redacted] ←");
    }
}
