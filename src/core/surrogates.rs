//! UTF-16 surrogate escapes that are not pairs, in an upstream's chunk JSON (`chunk.rs`).
//!
//! Some model servers split an emoji's surrogate pair across two chunks (`"content":"\ud83d"`, then
//! `"content":"\ude00"`) or send a lone one; serde_json refuses both. Only when a chunk fails to parse
//! and holds such an escape, `repair` rewrites each unpaired `\uD800`–`\uDFFF` escape as a sentinel
//! character (the last 2048 code points, U+10F800–U+10FFFF, of Supplementary Private Use Area-B, one
//! per surrogate) so the chunk parses; `Carry::text` then turns the sentinels of a piece of model text
//! back into surrogates, joins a high half held from the previous piece of the same kind, holds a
//! trailing high half for the next one, and makes any other lone surrogate U+FFFD. `Carry::arguments`
//! does the same for the pieces of a tool call's `function.arguments`, held per call index. Chunks
//! that parse take none of this (one check of an empty carry per chunk).
//!
//! A real character in U+10F800–U+10FFFF inside a chunk that also holds an unpaired surrogate escape
//! would be read as a surrogate: such characters are private-use and the case needs both at once.

use std::borrow::Cow;

use super::events::DeltaKind;

const SENTINEL_BASE: u32 = 0x10_F800;

/// A high surrogate that ended the last piece of each kind of model text (output text, reasoning,
/// refusal), held until the next piece of that kind, and one that ended the last arguments piece of
/// a tool call (by its index), held until that call's next piece; `take_all` and `take_calls` give
/// what never got its low half.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Carry(pub [Option<u16>; 3], Vec<(i64, u16)>);

fn slot(kind: DeltaKind) -> usize {
    match kind {
        DeltaKind::ReasoningText => 1,
        DeltaKind::Refusal => 2,
        _ => 0,
    }
}

const KINDS: [DeltaKind; 3] = [
    DeltaKind::OutputText,
    DeltaKind::ReasoningText,
    DeltaKind::Refusal,
];

impl Carry {
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none) && self.1.is_empty()
    }

    /// Whether some tool call's arguments hold half a pair.
    pub fn holds_calls(&self) -> bool {
        !self.1.is_empty()
    }

    /// The held half of call `index`'s arguments, taken out.
    pub fn take_call(&mut self, index: i64) -> Option<u16> {
        let at = self.1.iter().position(|&(i, _)| i == index)?;
        Some(self.1.swap_remove(at).1)
    }

    /// Hold `high` for call `index`'s next arguments piece.
    pub fn hold_call(&mut self, index: i64, high: u16) {
        self.1.push((index, high));
    }

    /// The calls (by index, in the order their halves were held) whose arguments ended with a high
    /// half that never got its low half (each then ends with U+FFFD); emptied.
    pub fn take_calls(&mut self) -> Vec<i64> {
        self.1.drain(..).map(|(index, _)| index).collect()
    }

    /// The held slot of `kind`.
    pub fn slot_mut(&mut self, kind: DeltaKind) -> &mut Option<u16> {
        &mut self.0[slot(kind)]
    }

    /// The kinds whose high half never got its low half (each then ends with U+FFFD); emptied.
    pub fn take_all(&mut self) -> Vec<DeltaKind> {
        KINDS
            .into_iter()
            .zip(self.0.iter_mut())
            .filter_map(|(kind, held)| held.take().map(|_| kind))
            .collect()
    }

    /// A piece of model text of `kind` as it goes into the turn. `sentinels`: the chunk was
    /// `repair`ed, so sentinel characters stand for surrogates. Borrowed when nothing changes.
    pub fn text<'s>(&mut self, kind: DeltaKind, s: &'s str, sentinels: bool) -> Cow<'s, str> {
        join(&mut self.0[slot(kind)], s, sentinels)
    }

    /// A piece of call `index`'s arguments, as `text` does for model text: a high half held from
    /// that call's last piece is joined (or U+FFFD when this piece does not begin with the low
    /// half), and a trailing high half is held for its next piece.
    pub fn arguments<'s>(&mut self, index: i64, s: &'s str, sentinels: bool) -> Cow<'s, str> {
        let mut held = self.take_call(index);
        let out = join(&mut held, s, sentinels);
        if let Some(high) = held {
            self.hold_call(index, high);
        }
        out
    }
}

/// `held` (a high half from the last piece) and `s`, with a trailing high half held back in `held`
/// and any other lone surrogate U+FFFD. Borrowed when nothing is held and `s` has no sentinels.
fn join<'s>(held: &mut Option<u16>, s: &'s str, sentinels: bool) -> Cow<'s, str> {
    if held.is_none() && !sentinels {
        return Cow::Borrowed(s);
    }
    let mut units: Vec<u16> = Vec::with_capacity(s.len() + 1);
    units.extend(held.take());
    push_units(s, sentinels, &mut units);
    if let Some(&last) = units.last() {
        if (0xD800..0xDC00).contains(&last) {
            *held = units.pop();
        }
    }
    Cow::Owned(decode_lossy(&units))
}

/// Any other string of a `repair`ed chunk (a call's name or id): each sentinel U+FFFD.
pub fn lossy(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_sentinel) {
        return Cow::Borrowed(s);
    }
    let mut units = Vec::with_capacity(s.len());
    push_units(s, true, &mut units);
    Cow::Owned(decode_lossy(&units))
}

fn is_sentinel(c: char) -> bool {
    c as u32 >= SENTINEL_BASE
}

fn push_units(s: &str, sentinels: bool, units: &mut Vec<u16>) {
    let mut buf = [0u16; 2];
    for c in s.chars() {
        if sentinels && is_sentinel(c) {
            // 0xD800 + (0..0x800): within u16.
            units.push((0xD800 + (c as u32 - SENTINEL_BASE)) as u16);
        } else {
            units.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
}

fn decode_lossy(units: &[u16]) -> String {
    char::decode_utf16(units.iter().copied())
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

fn hex4(bytes: &[u8]) -> Option<u16> {
    let digits = std::str::from_utf8(bytes.get(..4)?).ok()?;
    u16::from_str_radix(digits, 16).ok()
}

/// Whether the JSON bytes hold a `\u` escape of a surrogate (`\uD800`–`\uDFFF`, any case).
pub fn has_surrogate_escape(json: &[u8]) -> bool {
    json.windows(4).any(|w| {
        w[0] == b'\\'
            && w[1] == b'u'
            && (w[2] == b'd' || w[2] == b'D')
            && matches!(w[3], b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F')
    })
}

/// The chunk's JSON with every unpaired surrogate escape replaced by its sentinel character (raw
/// UTF-8); `None` when there is none (the chunk's fault lies elsewhere).
pub fn repair(json: &[u8]) -> Option<Vec<u8>> {
    if !has_surrogate_escape(json) {
        return None;
    }
    let mut out = Vec::with_capacity(json.len() + 8);
    let mut changed = false;
    let mut i = 0;
    while i < json.len() {
        let b = json[i];
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        // An escape: `\` and one byte, or `\uXXXX`. Backslashes only occur inside strings.
        let unit = match json.get(i + 1) {
            Some(b'u') => hex4(&json[i + 2..]),
            _ => None,
        };
        match unit {
            Some(high @ 0xD800..=0xDBFF) => {
                let next_is_low = json.get(i + 6) == Some(&b'\\')
                    && json.get(i + 7) == Some(&b'u')
                    && matches!(
                        hex4(json.get(i + 8..).unwrap_or(&[])),
                        Some(0xDC00..=0xDFFF)
                    );
                if next_is_low {
                    out.extend_from_slice(&json[i..i + 12]);
                    i += 12;
                } else {
                    push_sentinel(high, &mut out);
                    changed = true;
                    i += 6;
                }
            }
            Some(low @ 0xDC00..=0xDFFF) => {
                push_sentinel(low, &mut out);
                changed = true;
                i += 6;
            }
            Some(_) => {
                out.extend_from_slice(&json[i..i + 6]);
                i += 6;
            }
            None => {
                let end = (i + 2).min(json.len());
                out.extend_from_slice(&json[i..end]);
                i = end;
            }
        }
    }
    changed.then_some(out)
}

fn push_sentinel(unit: u16, out: &mut Vec<u8>) {
    let c = char::from_u32(SENTINEL_BASE + u32::from(unit - 0xD800))
        .unwrap_or(char::REPLACEMENT_CHARACTER);
    let mut buf = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(json: &[u8]) -> String {
        let v: serde_json::Value = serde_json::from_slice(json).expect("repaired JSON parses");
        v["c"].as_str().expect("string").to_owned()
    }

    #[test]
    fn repair_only_touches_unpaired_surrogates() {
        assert_eq!(repair(br#"{"c":"plain \u00e9 \\ud83d"}"#), None);
        assert_eq!(repair(br#"{"c":"pair \ud83d\ude00"}"#), None);
        let fixed = repair(br#"{"c":"a\uD83D"}"#).expect("lone high");
        let mut carry = Carry::default();
        assert_eq!(
            carry.text(DeltaKind::OutputText, &content(&fixed), true),
            "a"
        );
        assert_eq!(carry.0[0], Some(0xD83D));
        let fixed = repair(br#"{"c":"\ude00b"}"#).expect("lone low");
        assert_eq!(
            carry.text(DeltaKind::OutputText, &content(&fixed), true),
            "\u{1F600}b"
        );
        assert!(carry.is_empty());
        // A lone low with nothing held, and a high followed by text, are U+FFFD.
        let fixed = repair(br#"{"c":"\udc00x\ud800y \ud83d\ude00"}"#).expect("lone");
        assert_eq!(
            carry.text(DeltaKind::OutputText, &content(&fixed), true),
            "\u{FFFD}x\u{FFFD}y \u{1F600}"
        );
        assert_eq!(lossy(&content(&fixed)), "\u{FFFD}x\u{FFFD}y \u{1F600}");
    }

    #[test]
    fn a_held_half_meets_plain_text_or_the_end() {
        let mut carry = Carry::default();
        assert_eq!(carry.text(DeltaKind::Refusal, "no", false), "no");
        let fixed = repair(br#"{"c":"\ud83d"}"#).expect("lone high");
        assert_eq!(carry.text(DeltaKind::Refusal, &content(&fixed), true), "");
        // Another kind's text does not meet it.
        assert_eq!(carry.text(DeltaKind::OutputText, "x", false), "x");
        assert_eq!(carry.text(DeltaKind::Refusal, "z", false), "\u{FFFD}z");
        carry.text(DeltaKind::ReasoningText, &content(&fixed), true);
        assert_eq!(carry.take_all(), vec![DeltaKind::ReasoningText]);
        assert!(carry.is_empty());
    }
}
