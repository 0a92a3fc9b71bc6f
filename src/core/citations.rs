//! File citations (OGX's file_search): the markers the model is asked to write after a fact it took
//! from a search result, found in the streamed text and turned into `file_citation` annotations.
//!
//! The model is told to cite as `<|file-id|>`; `[file-id]` and `(file-id)` are accepted too (weaker
//! models approximate the format), as OGX's builtin does. A marker naming a file the searches of this
//! response returned is removed from the text, with one space before it, and becomes an annotation at
//! that position; any other marker stays as text. Markers may be split across chunks at any point: a
//! tail of the text that may still become a marker (or the space before one) is withheld until the
//! next piece decides, so the deltas, the final text and the annotation indexes always agree.

use serde_json::{json, Value};

/// The files this response's searches returned: `(file_id, filename)`, the best-scored first.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct CitationFiles {
    files: Vec<(String, String)>,
}

impl CitationFiles {
    /// Add a search result's file (a file already known keeps its place).
    pub fn add(&mut self, file_id: &str, filename: &str) {
        if !file_id.is_empty() && !self.files.iter().any(|(id, _)| id == file_id) {
            self.files.push((file_id.to_owned(), filename.to_owned()));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    pub fn filename(&self, file_id: &str) -> Option<&str> {
        self.files
            .iter()
            .find(|(id, _)| id == file_id)
            .map(|(_, name)| name.as_str())
    }

    /// The annotation for `file_id` at character `index` of the part's text.
    pub fn annotation(&self, file_id: &str, index: usize) -> Option<Value> {
        self.filename(file_id)
            .map(|filename| file_citation(file_id, filename, index))
    }

    /// The best-scored file: the one a text that cites nothing is attributed to.
    pub fn top(&self) -> Option<(&str, &str)> {
        self.files
            .first()
            .map(|(id, name)| (id.as_str(), name.as_str()))
    }
}

/// A `file_citation` annotation.
pub fn file_citation(file_id: &str, filename: &str, index: usize) -> Value {
    json!({"type": "file_citation", "file_id": file_id, "filename": filename, "index": index})
}

/// What a piece of model text holds once markers are taken out, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cited {
    Text(String),
    /// A known file was cited here.
    Cite(String),
}

/// How the text at some position reads as a marker.
#[derive(Debug, PartialEq, Eq)]
enum Marker {
    /// Not a marker.
    No,
    /// A prefix of a marker that the text ends in: the next piece decides.
    Partial,
    /// A whole marker of `len` bytes naming `file_id`.
    Whole { len: usize, file_id: String },
}

fn id_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_'
}

/// Read `s` (starting at `<`, `[` or `(`) as a citation marker.
fn marker_at(s: &str) -> Marker {
    let b = s.as_bytes();
    let (open_len, close): (usize, &[u8]) = match b.first() {
        Some(b'<') => match b.get(1) {
            None => return Marker::Partial,
            Some(b'|') => (2, b"|>"),
            Some(_) => return Marker::No,
        },
        Some(b'[') => (1, b"]"),
        Some(b'(') => (1, b")"),
        _ => return Marker::No,
    };
    const PREFIX: &[u8] = b"file-";
    let rest = &b[open_len..];
    let n = rest.len().min(PREFIX.len());
    if rest[..n] != PREFIX[..n] {
        return Marker::No;
    }
    if rest.len() < PREFIX.len() {
        return Marker::Partial;
    }
    let id_start = open_len + PREFIX.len();
    let id_len = b[id_start..].iter().take_while(|&&c| id_char(c)).count();
    let after = &b[id_start + id_len..];
    let m = after.len().min(close.len());
    if after[..m] != close[..m] {
        return Marker::No;
    }
    if after.len() < close.len() {
        return Marker::Partial;
    }
    if id_len == 0 {
        return Marker::No;
    }
    let len = id_start + id_len + close.len();
    Marker::Whole {
        len,
        file_id: s[open_len..id_start + id_len].to_owned(),
    }
}

/// Takes citation markers out of streamed text (see the module doc).
#[derive(Debug, Default)]
pub struct CitationStream {
    pending: String,
}

impl CitationStream {
    /// One piece of the model's text: what may be emitted now, in order.
    pub fn feed(&mut self, piece: &str, files: &CitationFiles) -> Vec<Cited> {
        self.pending.push_str(piece);
        let text = std::mem::take(&mut self.pending);
        let mut out = Vec::new();
        let mut plain = String::new();
        let mut start = 0; // of the text not yet moved to `plain`
        let mut i = 0;
        let bytes = text.as_bytes();
        while i < bytes.len() {
            if !matches!(bytes[i], b'<' | b'[' | b'(') {
                i += 1;
                continue;
            }
            match marker_at(&text[i..]) {
                Marker::No => i += 1,
                Marker::Partial => {
                    // Withhold the marker's start and the space before it.
                    let cut = if i > start && bytes[i - 1] == b' ' {
                        i - 1
                    } else {
                        i
                    };
                    plain.push_str(&text[start..cut]);
                    self.pending = text[cut..].to_owned();
                    push_text(&mut out, plain);
                    return out;
                }
                Marker::Whole { len, file_id } => {
                    if files.filename(&file_id).is_some() {
                        let before = &text[start..i];
                        plain.push_str(before.strip_suffix(' ').unwrap_or(before));
                        push_text(&mut out, std::mem::take(&mut plain));
                        out.push(Cited::Cite(file_id));
                        start = i + len;
                    }
                    i += len;
                }
            }
        }
        // A trailing space may still turn out to precede a marker.
        let cut = if text.len() > start && text.ends_with(' ') {
            text.len() - 1
        } else {
            text.len()
        };
        plain.push_str(&text[start..cut]);
        self.pending = text[cut..].to_owned();
        push_text(&mut out, plain);
        out
    }

    /// The text ended: whatever was withheld is text after all.
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.pending);
        (!rest.is_empty()).then_some(rest)
    }
}

fn push_text(out: &mut Vec<Cited>, text: String) {
    if !text.is_empty() {
        out.push(Cited::Text(text));
    }
}

/// The tool text OGX's builtin gives the model for a file search (its default `vector_stores`
/// templates): a header, each chunk with its `cite as <|file-id|>` line, a footer, and the query
/// with the instruction to cite.
pub fn ogx_search_text(results: &[Value], query: &str) -> String {
    let mut text = format!(
        "file_search tool found {} chunks:\nBEGIN of file_search tool results.\n",
        results.len()
    );
    for (i, r) in results.iter().enumerate() {
        let file_id = r["file_id"].as_str().unwrap_or("");
        let mut metadata = format!("document_id: {file_id}, score: {}", r["score"]);
        if r["attributes"].as_object().is_some_and(|a| !a.is_empty()) {
            metadata.push_str(&format!(", attributes: {}", r["attributes"]));
        }
        text.push_str(&format!(
            "[{}] {metadata} cite as <|{file_id}|>\n{}\n",
            i + 1,
            r["text"].as_str().unwrap_or("")
        ));
    }
    text.push_str("END of file_search tool results.\n");
    let instruction = if results.is_empty() {
        ""
    } else {
        "Cite sources immediately at the end of sentences before punctuation, using `<|file-id|>` \
         format like 'This is a fact <|file-Cn3MSNn72ENTiiq11Qda4A|>.'. Do not add extra punctuation. \
         Use only the file IDs provided, do not invent new ones."
    };
    text.push_str(&format!(
        "The above results were retrieved to help answer the user's query: \"{query}\". \
         Use them as supporting information only in answering this query. {instruction}\n"
    ));
    text
}

#[cfg(test)]
#[path = "citations_tests.rs"]
mod tests;
