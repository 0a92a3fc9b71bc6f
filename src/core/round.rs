//! The round assembler: one inference round's pieces (text, refusal, reasoning, tool-call deltas)
//! turned into output items and their events, strictly nested.
//!
//! Pieces arrive in any order. They are grouped into *segments* in order of first appearance: a run of
//! reasoning, a message (its output text and refusal parts), a tool call (by its index). A segment's
//! item is on the wire only while it is the *live* one, the earliest segment not yet closed; the
//! segments after it are buffered and replayed, each as its own `added → deltas → done`, when the one
//! before closes. So item N is fully closed before item N+1's `output_item.added`:
//! - a message or a reasoning run closes as soon as anything else starts (text that comes back after a
//!   tool call opens a new message);
//! - a function call closes when a later segment exists and its arguments are a complete JSON object
//!   (sequential parallel calls: call k closes when call k+1 starts; interleaved ones: the earliest
//!   streams live, the others wait), or when the round ends;
//! - a function call's item opens only once its name and its `call_id` are known, so
//!   `output_item.added` carries the final `call_id`;
//! - server-side calls (web search, file search, MCP) have no item during the round: the tool loop
//!   opens theirs when it runs them.
//!
//! The common case, one message streamed piece by piece, touches only the last segment: no search,
//! and no allocation but the growing text itself.

use serde_json::Value;

use super::citations::file_citation;
use super::events::{DeltaKind, EventBody};
use super::ids::new_id;
use super::items::{Content, ContentPart, Item, Role};
use super::output::{ItemId, Output};

/// One tool-call delta: every part is optional.
#[derive(Debug, Clone, Copy)]
pub struct CallPiece<'a> {
    /// The chunk's `index`: only a key, any integer.
    pub key: i64,
    pub id: Option<&'a str>,
    pub name: Option<&'a str>,
    pub arguments: Option<&'a str>,
}

/// What a tool call is, once its name is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// Handed back to the client (a function tool, or a name the request did not offer).
    Function,
    WebSearch,
    /// `file_search`; the index of the request tool it came from.
    FileSearch(usize),
    /// An MCP tool; the index of its server.
    Mcp(usize),
}

impl CallKind {
    /// Server-side calls get their item from the tool loop, not while the model streams.
    fn streams(self) -> bool {
        self == CallKind::Function
    }
}

/// A streamed delta the caller builds itself (see `Turn::text_delta_direct`): everything but the
/// text, which is the piece the caller just passed in.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectDelta {
    pub kind: DeltaKind,
    pub sequence_number: u64,
    pub item_id: ItemId,
    pub output_index: usize,
    pub content_index: usize,
}

/// A tool call as the round ended with it.
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedCall {
    pub kind: CallKind,
    pub call_id: String,
    pub name: String,
    pub arguments: String,
    /// The call was cut off (the round ended incomplete): it must not run.
    pub incomplete: bool,
}

/// What one round produced, for the tool loop and the chat history.
#[derive(Debug, Default, PartialEq)]
pub struct RoundResult {
    /// The assistant's output text (every message segment, in order), if any.
    pub text: Option<String>,
    /// The reasoning text, if any (sent back to the model only when the host asks).
    pub reasoning: Option<String>,
    pub calls: Vec<FinishedCall>,
}

#[derive(Debug)]
struct Part {
    kind: DeltaKind,
    text: String,
    /// An output text's annotations (file citations), in order.
    annotations: Vec<Value>,
}

impl Part {
    fn new(kind: DeltaKind, text: String) -> Part {
        Part {
            kind,
            text,
            annotations: Vec::new(),
        }
    }
}

#[derive(Debug)]
struct Call {
    key: i64,
    call_id: String,
    name: String,
    arguments: String,
    kind: Option<CallKind>,
    shape: ClientShape,
}

#[derive(Debug)]
enum Body {
    Reasoning(String),
    Message(Vec<Part>),
    Call(Call),
}

#[derive(Debug, Clone, PartialEq)]
enum Wire {
    /// Not announced yet (buffered, or waiting for a call's name and id).
    Pending,
    Open {
        output_index: usize,
        item_id: ItemId,
    },
    Closed,
    /// A server-side call: the tool loop gives it an item.
    Hidden,
}

#[derive(Debug)]
struct Segment {
    body: Body,
    wire: Wire,
}

/// How a finished round's last item ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Completed,
    /// Cut off (`finish_reason: length` or `content_filter`): the item being written is `incomplete`.
    Incomplete,
}

/// Looks up what a called name is (function, or which server-side tool).
pub trait Classify {
    fn classify(&self, name: &str) -> CallKind;

    /// The item a client-side call of this chat function name comes back as.
    fn client_shape(&self, _name: &str) -> ClientShape {
        ClientShape::Function
    }
}

/// The item a call handed back to the client becomes: a chat function stands for a function, a
/// namespaced function, a custom tool or a client-executed tool search.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum ClientShape {
    /// A `function_call` named as the model called it.
    #[default]
    Function,
    /// A `function_call` with `name` and `namespace`.
    Namespaced { namespace: String, name: String },
    /// A `custom_tool_call`: its input is the chat function's `input` argument.
    Custom {
        namespace: Option<String>,
        name: String,
    },
    /// A `tool_search_call` (`execution: "client"`) with the arguments as an object.
    ToolSearch,
}

impl ClientShape {
    /// Argument deltas stream as `function_call_arguments.delta` only for function calls; a custom
    /// call's input is its decoded `input` argument, sent whole when the call closes.
    fn streams_arguments(&self) -> bool {
        matches!(self, ClientShape::Function | ClientShape::Namespaced { .. })
    }

    fn open_item(&self, call_id: &str, chat_name: &str) -> (&'static str, Item) {
        match self {
            ClientShape::Function | ClientShape::Namespaced { .. } => {
                let (namespace, name) = match self {
                    ClientShape::Namespaced { namespace, name } => {
                        (Some(namespace.clone()), name.clone())
                    }
                    _ => (None, chat_name.to_owned()),
                };
                (
                    "fc_",
                    Item::FunctionCall {
                        arguments: String::new(),
                        call_id: call_id.to_owned(),
                        name,
                        id: None,
                        status: Some("in_progress".to_owned()),
                        namespace,
                    },
                )
            }
            ClientShape::Custom { namespace, name } => (
                "ctc_",
                Item::CustomToolCall {
                    call_id: call_id.to_owned(),
                    input: String::new(),
                    name: name.clone(),
                    id: None,
                    namespace: namespace.clone(),
                },
            ),
            ClientShape::ToolSearch => (
                "tsc_",
                Item::ToolSearchCall {
                    id: None,
                    call_id: Some(call_id.to_owned()),
                    arguments: Value::Object(Default::default()),
                    execution: "client".to_owned(),
                    status: Some("in_progress".to_owned()),
                },
            ),
        }
    }

    /// The finished item, its events emitted (`*.done`, and a custom call's one input delta first).
    fn close_item(
        &self,
        out: &mut Output,
        call: &Call,
        item_id: &ItemId,
        id: String,
        output_index: usize,
        status: Option<String>,
    ) -> Item {
        match self {
            ClientShape::Function | ClientShape::Namespaced { .. } => {
                out.emit(EventBody::Done {
                    kind: DeltaKind::FunctionArguments,
                    item_id: id.clone(),
                    output_index,
                    content_index: 0,
                    text: call.arguments.clone(),
                });
                let (namespace, name) = match self {
                    ClientShape::Namespaced { namespace, name } => {
                        (Some(namespace.clone()), name.clone())
                    }
                    _ => (None, call.name.clone()),
                };
                Item::FunctionCall {
                    arguments: call.arguments.clone(),
                    call_id: call.call_id.clone(),
                    name,
                    id: Some(id),
                    status,
                    namespace,
                }
            }
            ClientShape::Custom { namespace, name } => {
                let input = super::chat::custom_input(&call.arguments);
                if !input.is_empty() {
                    out.emit(EventBody::Delta {
                        kind: DeltaKind::CustomToolInput,
                        item_id: item_id.clone(),
                        output_index,
                        content_index: 0,
                        delta: input.clone(),
                    });
                }
                out.emit(EventBody::Done {
                    kind: DeltaKind::CustomToolInput,
                    item_id: id.clone(),
                    output_index,
                    content_index: 0,
                    text: input.clone(),
                });
                Item::CustomToolCall {
                    call_id: call.call_id.clone(),
                    input,
                    name: name.clone(),
                    id: Some(id),
                    namespace: namespace.clone(),
                }
            }
            ClientShape::ToolSearch => Item::ToolSearchCall {
                id: Some(id),
                call_id: Some(call.call_id.clone()),
                arguments: match serde_json::from_str::<Value>(&call.arguments) {
                    Ok(v @ Value::Object(_)) => v,
                    _ => Value::Object(Default::default()),
                },
                execution: "client".to_owned(),
                status,
            },
        }
    }
}

#[derive(Debug, Default)]
pub struct Round {
    segs: Vec<Segment>,
    /// Every segment before this one is closed or hidden.
    live: usize,
    /// Position of the call touched last: argument deltas hit the same call again and again.
    last_call: usize,
    /// The file (id, filename) an output text that cites nothing is attributed to when it closes
    /// (after a file search, as OGX's builtin does).
    fallback_citation: Option<(String, String)>,
}

/// A call's arguments are complete when they parse as one JSON value (an object, for a function).
fn arguments_complete(arguments: &str) -> bool {
    arguments.trim_start().starts_with('{')
        && serde_json::from_str::<serde::de::IgnoredAny>(arguments).is_ok()
}

fn status_of(ending: Ending) -> &'static str {
    match ending {
        Ending::Completed => "completed",
        Ending::Incomplete => "incomplete",
    }
}

impl Round {
    pub fn new() -> Round {
        Round::default()
    }

    pub fn is_empty(&self) -> bool {
        self.segs.is_empty()
    }

    /// Attribute every output text that closes without a citation to this file.
    pub fn set_fallback_citation(&mut self, file_id: &str, filename: &str) {
        self.fallback_citation = Some((file_id.to_owned(), filename.to_owned()));
    }

    /// A file citation at the current end of the output text: the annotation is recorded on the
    /// part (its `index` is the part's length in characters so far) and, when the part is on the
    /// wire, announced right away, after the delta that carried the text before it.
    pub fn cite(&mut self, out: &mut Output, file_id: &str, filename: &str) {
        self.annotate(out, |end| Some(file_citation(file_id, filename, end)));
    }

    /// An annotation made from the output text's current length in characters (`None`: none), recorded
    /// and announced as `cite` does.
    pub fn annotate(&mut self, out: &mut Output, make: impl FnOnce(usize) -> Option<Value>) {
        let pos = self.text_segment(out, DeltaKind::OutputText);
        let fallback = &self.fallback_citation;
        let seg = &mut self.segs[pos];
        let Body::Message(parts) = &mut seg.body else {
            return;
        };
        let new_part = parts.last().map(|p| p.kind) != Some(DeltaKind::OutputText);
        let len = match parts.last() {
            Some(part) if !new_part => part.text.chars().count(),
            _ => 0,
        };
        let Some(annotation) = make(len) else {
            return;
        };
        if new_part {
            parts.push(Part::new(DeltaKind::OutputText, String::new()));
        }
        let part_index = parts.len() - 1;
        let part = &mut parts[part_index];
        part.annotations.push(annotation.clone());
        let annotation_index = part.annotations.len() - 1;
        match seg.wire.clone() {
            Wire::Open {
                output_index,
                item_id,
            } => {
                if new_part {
                    if let Some(prev_index) = part_index.checked_sub(1) {
                        close_part(
                            out,
                            &item_id,
                            output_index,
                            prev_index,
                            &mut parts[prev_index],
                            fallback,
                        );
                    }
                    open_part(
                        out,
                        &item_id,
                        output_index,
                        part_index,
                        DeltaKind::OutputText,
                    );
                }
                out.emit(EventBody::AnnotationAdded {
                    item_id: item_id.to_string(),
                    output_index,
                    content_index: part_index,
                    annotation_index,
                    annotation,
                });
            }
            Wire::Pending if pos == self.live => self.advance(out),
            Wire::Pending | Wire::Closed | Wire::Hidden => {}
        }
    }

    // -----------------------------------------------------------------------------------------
    // Text, refusal and reasoning pieces

    /// A piece of output text, refusal or reasoning text. Empty pieces are ignored.
    pub fn text(&mut self, out: &mut Output, kind: DeltaKind, piece: &str) {
        if piece.is_empty() {
            return;
        }
        let pos = self.text_segment(out, kind);
        let fallback = &self.fallback_citation;
        let seg = &mut self.segs[pos];
        let (part_index, new_part) = match &mut seg.body {
            Body::Reasoning(text) => {
                text.push_str(piece);
                (0, false)
            }
            Body::Message(parts) => match parts.last_mut() {
                Some(part) if part.kind == kind => {
                    part.text.push_str(piece);
                    (parts.len() - 1, false)
                }
                _ => {
                    parts.push(Part::new(kind, piece.to_owned()));
                    (parts.len() - 1, true)
                }
            },
            Body::Call(_) => return,
        };
        match seg.wire.clone() {
            Wire::Open {
                output_index,
                item_id,
            } => {
                if new_part {
                    // The message switches between output text and refusal: one part at a time.
                    if let (Body::Message(parts), Some(prev_index)) =
                        (&mut seg.body, part_index.checked_sub(1))
                    {
                        let prev = &mut parts[prev_index];
                        close_part(out, &item_id, output_index, prev_index, prev, fallback);
                    }
                    open_part(out, &item_id, output_index, part_index, kind);
                }
                out.emit(EventBody::Delta {
                    kind,
                    item_id,
                    output_index,
                    content_index: part_index,
                    delta: piece.to_owned(),
                });
            }
            Wire::Pending if pos == self.live => self.advance(out),
            Wire::Pending | Wire::Closed | Wire::Hidden => {}
        }
    }

    /// The per-chunk fast path of `text`: when the piece extends the part being streamed live and
    /// nothing is queued, nothing is allocated; the caller builds the delta from what comes back.
    pub fn text_direct(
        &mut self,
        out: &mut Output,
        kind: DeltaKind,
        piece: &str,
    ) -> Option<DirectDelta> {
        if piece.is_empty() || !out.emits() || !out.idle() || self.live + 1 != self.segs.len() {
            return None;
        }
        let seg = self.segs.last_mut()?;
        let Wire::Open {
            output_index,
            item_id,
        } = &seg.wire
        else {
            return None;
        };
        let (text, content_index) = match (&mut seg.body, kind) {
            (Body::Reasoning(text), DeltaKind::ReasoningText) => (text, 0),
            (Body::Message(parts), DeltaKind::OutputText | DeltaKind::Refusal) => {
                let index = parts.len().checked_sub(1)?;
                let part = parts.last_mut()?;
                if part.kind != kind {
                    return None;
                }
                (&mut part.text, index)
            }
            _ => return None,
        };
        text.push_str(piece);
        Some(DirectDelta {
            kind,
            sequence_number: out.take_seq(),
            item_id: item_id.clone(),
            output_index: *output_index,
            content_index,
        })
    }

    /// The segment a text piece of `kind` goes to: the last one if it takes that kind, else a new one.
    fn text_segment(&mut self, out: &mut Output, kind: DeltaKind) -> usize {
        let reasoning = kind == DeltaKind::ReasoningText;
        let fits = match self.segs.last().map(|s| &s.body) {
            Some(Body::Reasoning(_)) => reasoning,
            Some(Body::Message(_)) => !reasoning,
            _ => false,
        };
        if !fits {
            let body = if reasoning {
                Body::Reasoning(String::new())
            } else {
                Body::Message(Vec::new())
            };
            self.push(out, body);
        }
        self.segs.len() - 1
    }

    /// Append a segment: everything before it is now superseded and may close.
    fn push(&mut self, out: &mut Output, body: Body) {
        self.segs.push(Segment {
            body,
            wire: Wire::Pending,
        });
        self.advance(out);
    }

    // -----------------------------------------------------------------------------------------
    // Tool calls

    /// A piece of a tool call, aggregated by `key` (the chunk's index). Every part is optional:
    /// servers send the id and name once, then argument pieces.
    pub fn tool_call(
        &mut self,
        out: &mut Output,
        catalog: &impl Classify,
        piece: CallPiece<'_>,
        direct: bool,
    ) -> Option<DirectDelta> {
        let CallPiece {
            key,
            id,
            name,
            arguments,
        } = piece;
        let pos = match self.segs.get(self.last_call) {
            Some(Segment {
                body: Body::Call(c),
                ..
            }) if c.key == key => self.last_call,
            _ => match self
                .segs
                .iter()
                .position(|s| matches!(&s.body, Body::Call(c) if c.key == key))
            {
                Some(pos) => pos,
                None => {
                    self.push(
                        out,
                        Body::Call(Call {
                            key,
                            call_id: String::new(),
                            name: String::new(),
                            arguments: String::new(),
                            kind: None,
                            shape: ClientShape::Function,
                        }),
                    );
                    self.segs.len() - 1
                }
            },
        };
        self.last_call = pos;
        let seg = &mut self.segs[pos];
        let Body::Call(call) = &mut seg.body else {
            return None;
        };
        let mut changed = false;
        if let Some(id) = id.filter(|s| !s.is_empty()) {
            if call.call_id.is_empty() {
                call.call_id = id.to_owned();
                changed = true;
            }
        }
        if let Some(name) = name.filter(|s| !s.is_empty()) {
            if call.name.is_empty() {
                call.name = name.to_owned();
                call.kind = Some(catalog.classify(name));
                call.shape = catalog.client_shape(name);
                changed = true;
            }
        }
        let piece = arguments.unwrap_or("");
        call.arguments.push_str(piece);
        let mut result = None;
        if let Wire::Open {
            output_index,
            item_id,
        } = &seg.wire
        {
            if !piece.is_empty() && call.shape.streams_arguments() {
                if direct && out.idle() && out.emits() {
                    result = Some(DirectDelta {
                        kind: DeltaKind::FunctionArguments,
                        sequence_number: out.take_seq(),
                        item_id: item_id.clone(),
                        output_index: *output_index,
                        content_index: 0,
                    });
                } else {
                    out.emit(EventBody::Delta {
                        kind: DeltaKind::FunctionArguments,
                        item_id: item_id.clone(),
                        output_index: *output_index,
                        content_index: 0,
                        delta: piece.to_owned(),
                    });
                }
            }
        }
        // The live call may now open (its name and id came) or close (its arguments ended while a
        // later segment waits).
        // (A delta handed back took its sequence number first, so it precedes what this queues.)
        if pos == self.live
            && (changed || (pos + 1 < self.segs.len() && piece.trim_end().ends_with('}')))
        {
            self.advance(out);
        }
        result
    }

    // -----------------------------------------------------------------------------------------
    // Opening and closing segments

    /// Close the live segment while it is complete and open the next ones, replaying what they
    /// buffered, until one is still being written.
    fn advance(&mut self, out: &mut Output) {
        while self.live < self.segs.len() {
            let i = self.live;
            match self.segs[i].wire {
                Wire::Closed | Wire::Hidden => {
                    self.live += 1;
                    continue;
                }
                Wire::Pending => {
                    if !self.open(out, i) {
                        return;
                    }
                    if self.segs[i].wire == Wire::Hidden {
                        self.live += 1;
                        continue;
                    }
                }
                Wire::Open { .. } => {}
            }
            let superseded = i + 1 < self.segs.len();
            let complete = match &self.segs[i].body {
                Body::Reasoning(_) | Body::Message(_) => true,
                Body::Call(call) => arguments_complete(&call.arguments),
            };
            if !(superseded && complete) {
                return;
            }
            self.close(out, i, Ending::Completed);
            self.live += 1;
        }
    }

    /// Announce segment `i` and replay what it buffered. False when it cannot open yet (a call
    /// whose name or id has not come).
    fn open(&mut self, out: &mut Output, i: usize) -> bool {
        let fallback = &self.fallback_citation;
        let seg = &mut self.segs[i];
        let (prefix, item) = match &seg.body {
            Body::Reasoning(_) => (
                "rs_",
                Item::Reasoning {
                    id: String::new(),
                    summary: Vec::new(),
                    content: Vec::new(),
                    encrypted_content: None,
                    status: Some("in_progress".to_owned()),
                },
            ),
            Body::Message(_) => (
                "msg_",
                Item::Message {
                    content: Content::Parts(Vec::new()),
                    role: Role::Assistant,
                    id: None,
                    status: Some("in_progress".to_owned()),
                },
            ),
            Body::Call(call) => match call.kind {
                None => return false,
                Some(kind) if !kind.streams() => {
                    seg.wire = Wire::Hidden;
                    return true;
                }
                Some(_) if call.call_id.is_empty() => return false,
                Some(_) => call.shape.open_item(&call.call_id, &call.name),
            },
        };
        let id = new_id(prefix);
        let item = with_id(item, &id);
        let output_index = out.open(item);
        let item_id: ItemId = id.into();
        match &mut seg.body {
            Body::Reasoning(text) => {
                open_part(out, &item_id, output_index, 0, DeltaKind::ReasoningText);
                replay(
                    out,
                    &item_id,
                    output_index,
                    0,
                    DeltaKind::ReasoningText,
                    text,
                );
            }
            Body::Message(parts) => {
                for p in 0..parts.len() {
                    if p > 0 {
                        close_part(
                            out,
                            &item_id,
                            output_index,
                            p - 1,
                            &mut parts[p - 1],
                            fallback,
                        );
                    }
                    let part = &parts[p];
                    open_part(out, &item_id, output_index, p, part.kind);
                    replay(out, &item_id, output_index, p, part.kind, &part.text);
                    replay_annotations(out, &item_id, output_index, p, &part.annotations);
                }
            }
            Body::Call(call) if call.shape.streams_arguments() => replay(
                out,
                &item_id,
                output_index,
                0,
                DeltaKind::FunctionArguments,
                &call.arguments,
            ),
            Body::Call(_) => {}
        }
        seg.wire = Wire::Open {
            output_index,
            item_id,
        };
        true
    }

    /// Close segment `i`'s item (its open part first).
    fn close(&mut self, out: &mut Output, i: usize, ending: Ending) {
        let fallback = &self.fallback_citation;
        let seg = &mut self.segs[i];
        let Wire::Open {
            output_index,
            item_id,
        } = std::mem::replace(&mut seg.wire, Wire::Closed)
        else {
            return;
        };
        let status = Some(status_of(ending).to_owned());
        let id = item_id.to_string();
        let item = match &mut seg.body {
            Body::Reasoning(text) => {
                let mut part = Part::new(DeltaKind::ReasoningText, text.clone());
                close_part(out, &item_id, output_index, 0, &mut part, &None);
                Item::Reasoning {
                    id,
                    summary: Vec::new(),
                    content: vec![ContentPart::ReasoningText { text: part.text }],
                    encrypted_content: None,
                    status,
                }
            }
            Body::Message(parts) => {
                let n = parts.len();
                if let Some(last) = parts.last_mut() {
                    close_part(out, &item_id, output_index, n - 1, last, fallback);
                }
                Item::Message {
                    content: Content::Parts(parts.iter().map(final_part).collect()),
                    role: Role::Assistant,
                    id: Some(id),
                    status,
                }
            }
            Body::Call(call) => {
                call.shape
                    .close_item(out, call, &item_id, id, output_index, status)
            }
        };
        out.close(output_index, item);
    }

    /// The inference stream (or the one completion) is over: every segment still pending or open is
    /// announced and closed in order; the last one ends as `ending` says.
    pub fn finish(
        &mut self,
        out: &mut Output,
        catalog: &impl Classify,
        ending: Ending,
    ) -> RoundResult {
        // A call whose name never came has nothing to run: it goes back to the client as it is; one
        // whose id never came gets one.
        for seg in &mut self.segs {
            if let Body::Call(call) = &mut seg.body {
                if call.kind.is_none() {
                    call.kind = Some(if call.name.is_empty() {
                        CallKind::Function
                    } else {
                        call.shape = catalog.client_shape(&call.name);
                        catalog.classify(&call.name)
                    });
                }
                if call.call_id.is_empty() {
                    call.call_id = new_id("call_");
                }
            }
        }
        let last = self.segs.len().saturating_sub(1);
        for i in self.live..self.segs.len() {
            if self.segs[i].wire == Wire::Pending {
                self.open(out, i);
            }
            let end = if i == last { ending } else { Ending::Completed };
            self.close(out, i, end);
        }
        self.live = self.segs.len();
        let mut result = RoundResult::default();
        let cut_off = ending == Ending::Incomplete;
        for (i, seg) in std::mem::take(&mut self.segs).into_iter().enumerate() {
            match seg.body {
                Body::Reasoning(text) => append(&mut result.reasoning, &text),
                Body::Message(parts) => {
                    for part in parts.iter().filter(|p| p.kind == DeltaKind::OutputText) {
                        append(&mut result.text, &part.text);
                    }
                }
                Body::Call(call) => result.calls.push(FinishedCall {
                    kind: call.kind.unwrap_or(CallKind::Function),
                    call_id: call.call_id,
                    name: call.name,
                    arguments: call.arguments,
                    incomplete: cut_off && i == last,
                }),
            }
        }
        result
    }
}

fn append(slot: &mut Option<String>, text: &str) {
    match slot {
        Some(s) => s.push_str(text),
        None => *slot = Some(text.to_owned()),
    }
}

fn with_id(mut item: Item, new: &str) -> Item {
    match &mut item {
        Item::Message { id, .. }
        | Item::FunctionCall { id, .. }
        | Item::CustomToolCall { id, .. }
        | Item::ToolSearchCall { id, .. } => *id = Some(new.to_owned()),
        Item::Reasoning { id, .. } => *id = new.to_owned(),
        _ => {}
    }
    item
}

fn empty_part(kind: DeltaKind) -> ContentPart {
    match kind {
        DeltaKind::Refusal => ContentPart::Refusal {
            refusal: String::new(),
        },
        DeltaKind::ReasoningText => ContentPart::ReasoningText {
            text: String::new(),
        },
        _ => ContentPart::OutputText {
            text: String::new(),
            annotations: Some(Vec::new()),
        },
    }
}

fn final_part(part: &Part) -> ContentPart {
    match part.kind {
        DeltaKind::Refusal => ContentPart::Refusal {
            refusal: part.text.clone(),
        },
        DeltaKind::ReasoningText => ContentPart::ReasoningText {
            text: part.text.clone(),
        },
        _ => ContentPart::OutputText {
            text: part.text.clone(),
            annotations: Some(part.annotations.clone()),
        },
    }
}

fn open_part(
    out: &mut Output,
    item_id: &ItemId,
    output_index: usize,
    index: usize,
    kind: DeltaKind,
) {
    out.emit(EventBody::ContentPart {
        done: false,
        item_id: item_id.to_string(),
        output_index,
        content_index: index,
        part: empty_part(kind),
    });
}

/// Close a content part. An output text that cites nothing gets the fallback citation first (at
/// its end), announced before the part's `done` events.
fn close_part(
    out: &mut Output,
    item_id: &ItemId,
    output_index: usize,
    index: usize,
    part: &mut Part,
    fallback: &Option<(String, String)>,
) {
    if let Some((file_id, filename)) = fallback {
        if part.kind == DeltaKind::OutputText
            && part.annotations.is_empty()
            && !part.text.trim().is_empty()
        {
            let annotation = file_citation(file_id, filename, part.text.chars().count());
            part.annotations.push(annotation);
            replay_annotations(out, item_id, output_index, index, &part.annotations);
        }
    }
    out.emit(EventBody::Done {
        kind: part.kind,
        item_id: item_id.to_string(),
        output_index,
        content_index: index,
        text: part.text.clone(),
    });
    out.emit(EventBody::ContentPart {
        done: true,
        item_id: item_id.to_string(),
        output_index,
        content_index: index,
        part: final_part(part),
    });
}

/// The annotations of a part that went live, each announced.
fn replay_annotations(
    out: &mut Output,
    item_id: &ItemId,
    output_index: usize,
    index: usize,
    annotations: &[Value],
) {
    for (annotation_index, annotation) in annotations.iter().enumerate() {
        out.emit(EventBody::AnnotationAdded {
            item_id: item_id.to_string(),
            output_index,
            content_index: index,
            annotation_index,
            annotation: annotation.clone(),
        });
    }
}

/// What a segment buffered before it went live, as one delta.
fn replay(
    out: &mut Output,
    item_id: &ItemId,
    output_index: usize,
    index: usize,
    kind: DeltaKind,
    text: &str,
) {
    if !text.is_empty() {
        out.emit(EventBody::Delta {
            kind,
            item_id: item_id.clone(),
            output_index,
            content_index: index,
            delta: text.to_owned(),
        });
    }
}
