//! URL citations (web_search): the model is asked to cite a search result it uses as a markdown link
//! to its URL (see `web_search::CITE_INSTRUCTION`); a link `[label](url)` in the streamed output text
//! whose URL is one of this response's search results becomes a `url_citation` annotation spanning
//! the link, `start_index` at its `[` and `end_index` just past its `)` (characters, as OpenAI counts
//! them: `text[start_index..end_index]` is the link), with the result's URL and title.
//!
//! Unlike file citation markers nothing is taken out of the text: the scanner only cuts each piece
//! after a link's closing `)`, so the annotation is announced right after the delta that completed
//! the link, and the deltas still concatenate to the final text. A link may be split across pieces
//! at any point.

use serde_json::{json, Value};

use super::web_search::Source;

/// A label or a URL longer than this (characters) is not read as a citation.
const MAX_LABEL: usize = 500;
const MAX_URL: usize = 2048;

/// A `url_citation` annotation.
pub fn url_citation(url: &str, title: &str, start_index: usize, end_index: usize) -> Value {
    json!({"type": "url_citation", "url": url, "title": title,
           "start_index": start_index, "end_index": end_index})
}

/// What a piece of output text holds, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Linked {
    Text(String),
    /// The text so far ends with a link of `chars` characters citing `source`.
    Cite {
        chars: usize,
        source: Source,
    },
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
enum State {
    #[default]
    Text,
    /// In `[...`: the label so far.
    Label(String),
    /// Just after `[label]`.
    Closed(String),
    /// In `[label](...`: the label, the URL so far and the depth of parentheses inside it.
    Url(String, String, usize),
}

/// Finds cited links in streamed output text (see the module doc).
#[derive(Debug, Default)]
pub struct LinkScanner {
    state: State,
}

/// The search result a link's URL names, if any (a trailing `/` does not matter).
fn source_for<'a>(url: &str, sources: &'a [Source]) -> Option<&'a Source> {
    let url = url.trim();
    let bare = url.trim_end_matches('/');
    sources
        .iter()
        .find(|s| s.url == url)
        .or_else(|| sources.iter().find(|s| s.url.trim_end_matches('/') == bare))
}

impl LinkScanner {
    /// One piece of output text: the text, cut after each link that cites one of `sources`.
    pub fn feed(&mut self, piece: &str, sources: &[Source]) -> Vec<Linked> {
        let mut out = Vec::new();
        let mut start = 0; // of the piece's text not yet moved to `out`
        for (i, c) in piece.char_indices() {
            let state = std::mem::take(&mut self.state);
            self.state = match (state, c) {
                (State::Url(label, url, 0), ')') => {
                    if let Some(source) = source_for(&url, sources) {
                        let end = i + c.len_utf8();
                        if end > start {
                            out.push(Linked::Text(piece[start..end].to_owned()));
                        }
                        start = end;
                        // `[` + label + `](` + url + `)`
                        let chars = label.chars().count() + url.chars().count() + 4;
                        out.push(Linked::Cite {
                            chars,
                            source: source.clone(),
                        });
                    }
                    State::Text
                }
                (State::Url(label, mut url, depth), c)
                    if !c.is_whitespace() && url.chars().count() < MAX_URL =>
                {
                    let depth = match c {
                        '(' => depth + 1,
                        ')' => depth.saturating_sub(1),
                        _ => depth,
                    };
                    url.push(c);
                    State::Url(label, url, depth)
                }
                (State::Closed(label), '(') => State::Url(label, String::new(), 0),
                (State::Label(label), ']') => State::Closed(label),
                (State::Label(mut label), c)
                    if c != '[' && c != '\n' && label.chars().count() < MAX_LABEL =>
                {
                    label.push(c);
                    State::Label(label)
                }
                (_, '[') => State::Label(String::new()),
                _ => State::Text,
            };
        }
        if start < piece.len() {
            out.push(Linked::Text(piece[start..].to_owned()));
        }
        out
    }
}

#[cfg(test)]
#[path = "url_citations_tests.rs"]
mod tests;
