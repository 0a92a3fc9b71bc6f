//! Splitting a leading `<think>…</think>` out of the model's text (an option, off by default): some
//! servers stream a reasoning model's thoughts inline in `content` instead of `reasoning_content`.
//! Tags may be split across chunks; only a block at the very start (after whitespace) is reasoning.

use super::events::DeltaKind;

const OPEN: &str = "<think>";
const CLOSE: &str = "</think>";

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not yet known whether the text starts with `<think>`.
    #[default]
    Undecided,
    Thinking,
    /// Right after `</think>`: whitespace before the answer is dropped.
    AfterThinking,
    Answer,
}

#[derive(Debug, Default)]
pub struct ThinkSplitter {
    state: State,
    pending: String,
}

/// The length of the longest suffix of `text` that is a proper prefix of `tag`.
fn partial_tag(text: &str, tag: &str) -> usize {
    (1..tag.len().min(text.len() + 1))
        .rev()
        .find(|&n| text.is_char_boundary(text.len() - n) && text.ends_with(&tag[..n]))
        .unwrap_or(0)
}

impl ThinkSplitter {
    /// Route one piece of content: the pieces of reasoning and of answer text it holds, in order.
    pub fn split(&mut self, piece: &str) -> Vec<(DeltaKind, String)> {
        let mut out = Vec::new();
        self.pending.push_str(piece);
        loop {
            match self.state {
                State::Undecided => {
                    let text = self.pending.trim_start();
                    if let Some(rest) = text.strip_prefix(OPEN) {
                        self.pending = rest.to_owned();
                        self.state = State::Thinking;
                    } else if OPEN.starts_with(text) {
                        return out; // still possibly the tag
                    } else {
                        self.state = State::Answer;
                    }
                }
                State::Thinking => {
                    if let Some(i) = self.pending.find(CLOSE) {
                        let rest = self.pending.split_off(i);
                        push(&mut out, DeltaKind::ReasoningText, &self.pending);
                        self.pending = rest[CLOSE.len()..].to_owned();
                        self.state = State::AfterThinking;
                    } else {
                        let keep = partial_tag(&self.pending, CLOSE);
                        let rest = self.pending.split_off(self.pending.len() - keep);
                        push(&mut out, DeltaKind::ReasoningText, &self.pending);
                        self.pending = rest;
                        return out;
                    }
                }
                State::AfterThinking => {
                    let text = self.pending.trim_start();
                    if text.is_empty() {
                        self.pending.clear();
                        return out;
                    }
                    self.pending = text.to_owned();
                    self.state = State::Answer;
                }
                State::Answer => {
                    push(&mut out, DeltaKind::OutputText, &self.pending);
                    self.pending.clear();
                    return out;
                }
            }
        }
    }

    /// The stream ended: whatever was held back (an unfinished tag, unterminated thoughts).
    pub fn finish(&mut self) -> Vec<(DeltaKind, String)> {
        let kind = match self.state {
            State::Thinking => DeltaKind::ReasoningText,
            _ => DeltaKind::OutputText,
        };
        let mut out = Vec::new();
        push(&mut out, kind, &std::mem::take(&mut self.pending));
        self.state = State::Answer;
        out
    }
}

fn push(out: &mut Vec<(DeltaKind, String)>, kind: DeltaKind, text: &str) {
    if !text.is_empty() {
        out.push((kind, text.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(pieces: &[&str]) -> (String, String) {
        let mut splitter = ThinkSplitter::default();
        let (mut reasoning, mut text) = (String::new(), String::new());
        let all = pieces
            .iter()
            .flat_map(|p| splitter.split(p))
            .collect::<Vec<_>>();
        for (kind, piece) in all.into_iter().chain(splitter.finish()) {
            match kind {
                DeltaKind::ReasoningText => reasoning.push_str(&piece),
                _ => text.push_str(&piece),
            }
        }
        (reasoning, text)
    }

    #[test]
    fn a_leading_think_block_is_reasoning_whatever_the_chunking() {
        let whole = "\n<think>Let me see: 2 < 3.</think>\n\nYes, 2 < 3.";
        let chars: Vec<char> = whole.chars().collect();
        for size in 1..=whole.len() {
            let pieces: Vec<String> = chars.chunks(size).map(|c| c.iter().collect()).collect();
            let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
            assert_eq!(
                run(&pieces),
                ("Let me see: 2 < 3.".to_owned(), "Yes, 2 < 3.".to_owned()),
                "chunks of {size}"
            );
        }
    }

    #[test]
    fn text_without_a_leading_block_is_untouched() {
        assert_eq!(
            run(&["Hi <think>x</think>"]),
            (String::new(), "Hi <think>x</think>".into())
        );
        assert_eq!(
            run(&["<th", "ank you"]),
            (String::new(), "<thank you".into())
        );
        assert_eq!(run(&["<thi"]), (String::new(), "<thi".into()));
    }

    #[test]
    fn unterminated_thoughts_stay_reasoning() {
        assert_eq!(
            run(&["<think>hmm </thi"]),
            ("hmm </thi".into(), String::new())
        );
    }
}
