//! Streaming events (OpenAI Responses wire shapes) and the response object they carry.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use super::items::{ContentPart, Item};

use super::response::Shape;
pub use super::response::{Response, ResponseError};

/// The shape a response and its items are written in inside events: OpenAI's, on every host (a
/// host's stored record may be narrower, see `response::Shape`).
pub const EVENT_RESPONSE_SHAPE: Shape = Shape::Full;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseEventKind {
    Created,
    /// A background response's, between `Created` and `InProgress` (openai-python's `ResponseQueuedEvent`).
    Queued,
    InProgress,
    Completed,
    Incomplete,
    Failed,
}

/// Progress markers that carry only `item_id` and `output_index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    WebSearchInProgress,
    WebSearchSearching,
    WebSearchCompleted,
    FileSearchInProgress,
    FileSearchSearching,
    FileSearchCompleted,
    McpListToolsInProgress,
    McpListToolsCompleted,
    McpListToolsFailed,
    McpCallInProgress,
    McpCallCompleted,
    McpCallFailed,
    /// A piece of a compaction's summary was sampled (`compaction_trigger.rs`).
    CompactionCompacting,
}

impl Marker {
    pub fn type_name(self) -> &'static str {
        match self {
            Marker::WebSearchInProgress => "response.web_search_call.in_progress",
            Marker::WebSearchSearching => "response.web_search_call.searching",
            Marker::WebSearchCompleted => "response.web_search_call.completed",
            Marker::FileSearchInProgress => "response.file_search_call.in_progress",
            Marker::FileSearchSearching => "response.file_search_call.searching",
            Marker::FileSearchCompleted => "response.file_search_call.completed",
            Marker::McpListToolsInProgress => "response.mcp_list_tools.in_progress",
            Marker::McpListToolsCompleted => "response.mcp_list_tools.completed",
            Marker::McpListToolsFailed => "response.mcp_list_tools.failed",
            Marker::McpCallInProgress => "response.mcp_call.in_progress",
            Marker::McpCallCompleted => "response.mcp_call.completed",
            Marker::McpCallFailed => "response.mcp_call.failed",
            Marker::CompactionCompacting => "response.compaction.compacting",
        }
    }
}

/// What a streamed piece of text belongs to: a content part (output text, refusal, reasoning text)
/// or a call's arguments. Each kind has its own `*.delta` / `*.done` event pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeltaKind {
    OutputText,
    Refusal,
    ReasoningText,
    FunctionArguments,
    McpArguments,
    /// A custom tool call's free-form input.
    CustomToolInput,
}

impl DeltaKind {
    pub fn delta_type(self) -> &'static str {
        match self {
            DeltaKind::OutputText => "response.output_text.delta",
            DeltaKind::Refusal => "response.refusal.delta",
            DeltaKind::ReasoningText => "response.reasoning_text.delta",
            DeltaKind::FunctionArguments => "response.function_call_arguments.delta",
            DeltaKind::McpArguments => "response.mcp_call_arguments.delta",
            DeltaKind::CustomToolInput => "response.custom_tool_call_input.delta",
        }
    }

    pub fn done_type(self) -> &'static str {
        match self {
            DeltaKind::OutputText => "response.output_text.done",
            DeltaKind::Refusal => "response.refusal.done",
            DeltaKind::ReasoningText => "response.reasoning_text.done",
            DeltaKind::FunctionArguments => "response.function_call_arguments.done",
            DeltaKind::McpArguments => "response.mcp_call_arguments.done",
            DeltaKind::CustomToolInput => "response.custom_tool_call_input.done",
        }
    }

    /// Content parts carry `content_index`; arguments do not.
    pub fn in_content_part(self) -> bool {
        matches!(
            self,
            DeltaKind::OutputText | DeltaKind::Refusal | DeltaKind::ReasoningText
        )
    }

    /// The field of the `*.done` event that holds the whole text.
    fn done_field(self) -> &'static str {
        match self {
            DeltaKind::OutputText | DeltaKind::ReasoningText => "text",
            DeltaKind::Refusal => "refusal",
            DeltaKind::FunctionArguments | DeltaKind::McpArguments => "arguments",
            DeltaKind::CustomToolInput => "input",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum EventBody {
    Response {
        kind: ResponseEventKind,
        /// Boxed: the response is large, and every event (a text delta too) is as big as the
        /// largest variant.
        response: Box<Response>,
    },
    OutputItem {
        done: bool,
        output_index: usize,
        item: Item,
        response_id: String,
    },
    ContentPart {
        done: bool,
        item_id: String,
        output_index: usize,
        content_index: usize,
        part: ContentPart,
    },
    Delta {
        kind: DeltaKind,
        /// Shared with the open item: a delta per chunk must not allocate its id again.
        item_id: Arc<str>,
        output_index: usize,
        content_index: usize,
        delta: String,
    },
    Done {
        kind: DeltaKind,
        item_id: String,
        output_index: usize,
        content_index: usize,
        text: String,
    },
    Marker {
        marker: Marker,
        item_id: String,
        output_index: usize,
    },
    /// `response.output_text.annotation.added`: an annotation (a file citation) of an open
    /// `output_text` part; `annotation_index` is its place in the part's `annotations`.
    AnnotationAdded {
        item_id: String,
        output_index: usize,
        content_index: usize,
        annotation_index: usize,
        annotation: Value,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub sequence_number: u64,
    pub body: EventBody,
}

impl Event {
    pub fn type_name(&self) -> &'static str {
        match &self.body {
            EventBody::Response { kind, .. } => match kind {
                ResponseEventKind::Created => "response.created",
                ResponseEventKind::Queued => "response.queued",
                ResponseEventKind::InProgress => "response.in_progress",
                ResponseEventKind::Completed => "response.completed",
                ResponseEventKind::Incomplete => "response.incomplete",
                ResponseEventKind::Failed => "response.failed",
            },
            EventBody::OutputItem { done: false, .. } => "response.output_item.added",
            EventBody::OutputItem { done: true, .. } => "response.output_item.done",
            EventBody::ContentPart { done: false, .. } => "response.content_part.added",
            EventBody::ContentPart { done: true, .. } => "response.content_part.done",
            EventBody::Delta { kind, .. } => kind.delta_type(),
            EventBody::Done { kind, .. } => kind.done_type(),
            EventBody::Marker { marker, .. } => marker.type_name(),
            EventBody::AnnotationAdded { .. } => "response.output_text.annotation.added",
        }
    }

    /// Roughly how many bytes of text the event carries (what makes an event large: the closing
    /// events of a long message carry all of it), without serialising it.
    pub fn text_size(&self) -> usize {
        match &self.body {
            EventBody::Response { response, .. } => items_text_size(&response.output),
            EventBody::OutputItem { item, .. } => items_text_size(std::slice::from_ref(item)),
            EventBody::ContentPart { part, .. } => part.text().map_or(0, str::len),
            EventBody::Delta { delta, .. } => delta.len(),
            EventBody::Done { text, .. } => text.len(),
            EventBody::Marker { .. } | EventBody::AnnotationAdded { .. } => 0,
        }
    }

    /// The event as a JSON value in the OpenAI wire shape.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The event as JSON text, written straight from the event (no intermediate value tree: the
    /// events that carry a whole response are the large ones).
    pub fn to_json_string(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        match &self.body {
            EventBody::Response { response, .. } => {
                map.serialize_entry("response", &response.shaped(EVENT_RESPONSE_SHAPE))?;
            }
            EventBody::OutputItem {
                output_index,
                item,
                response_id,
                ..
            } => {
                map.serialize_entry("item", &super::response::FullItem(item))?;
                map.serialize_entry("output_index", output_index)?;
                map.serialize_entry("response_id", response_id)?;
            }
            EventBody::ContentPart {
                item_id,
                output_index,
                content_index,
                part,
                ..
            } => {
                map.serialize_entry("content_index", content_index)?;
                map.serialize_entry("item_id", item_id)?;
                map.serialize_entry("output_index", output_index)?;
                map.serialize_entry("part", part)?;
            }
            EventBody::Delta {
                kind,
                item_id,
                output_index,
                content_index,
                delta,
            } => {
                if kind.in_content_part() {
                    map.serialize_entry("content_index", content_index)?;
                }
                map.serialize_entry("delta", delta)?;
                map.serialize_entry("item_id", item_id)?;
                map.serialize_entry("output_index", output_index)?;
                if *kind == DeltaKind::OutputText {
                    map.serialize_entry("logprobs", &[] as &[Value])?;
                }
            }
            EventBody::Done {
                kind,
                item_id,
                output_index,
                content_index,
                text,
            } => {
                if kind.in_content_part() {
                    map.serialize_entry("content_index", content_index)?;
                }
                map.serialize_entry("item_id", item_id)?;
                map.serialize_entry("output_index", output_index)?;
                map.serialize_entry(kind.done_field(), text)?;
                if *kind == DeltaKind::OutputText {
                    map.serialize_entry("logprobs", &[] as &[Value])?;
                }
            }
            EventBody::Marker {
                item_id,
                output_index,
                ..
            } => {
                map.serialize_entry("item_id", item_id)?;
                map.serialize_entry("output_index", output_index)?;
            }
            EventBody::AnnotationAdded {
                item_id,
                output_index,
                content_index,
                annotation_index,
                annotation,
            } => {
                map.serialize_entry("annotation", annotation)?;
                map.serialize_entry("annotation_index", annotation_index)?;
                map.serialize_entry("content_index", content_index)?;
                map.serialize_entry("item_id", item_id)?;
                map.serialize_entry("output_index", output_index)?;
            }
        }
        map.serialize_entry("sequence_number", &self.sequence_number)?;
        map.serialize_entry("type", self.type_name())?;
        map.end()
    }
}

fn items_text_size(items: &[Item]) -> usize {
    use super::items::Content;
    items
        .iter()
        .map(|item| match item {
            Item::Message { content, .. } => match content {
                Content::Text(t) => t.len(),
                Content::Parts(parts) => parts
                    .iter()
                    .filter_map(ContentPart::text)
                    .map(str::len)
                    .sum(),
            },
            Item::Reasoning { content, .. } => content
                .iter()
                .filter_map(ContentPart::text)
                .map(str::len)
                .sum(),
            Item::FunctionCall { arguments, .. } | Item::McpCall { arguments, .. } => {
                arguments.len()
            }
            Item::CustomToolCall { input, .. } => input.len(),
            Item::FileSearchCall { results, .. } => results.as_ref().map_or(0, |r| r.len() * 256),
            Item::McpListTools { tools, .. } => tools.len() * 256,
            _ => 0,
        })
        .sum()
}
