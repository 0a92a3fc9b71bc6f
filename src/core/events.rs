//! Streaming events (OpenAI Responses wire shapes) and the response object they carry.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use super::items::{ContentPart, Item};

use super::response::Shape;
pub use super::response::{Response, ResponseError};

/// The shape a response is written in inside `response.*` events: llama-stack 0.2.12's record
/// (what events carried before `response::Shape` existed; for 0.2.7 requests, which never set
/// `text`, it is the same bytes as 0.2.7's).
pub const EVENT_RESPONSE_SHAPE: Shape = Shape::LlamaStack0212;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseEventKind {
    Created,
    InProgress,
    Completed,
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
        }
    }
}

/// Which kind of call an arguments delta/done belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgumentsOf {
    Function,
    Mcp,
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
    TextDelta {
        /// Shared with the open item: a delta per chunk must not allocate its id again.
        item_id: Arc<str>,
        output_index: usize,
        content_index: usize,
        delta: String,
    },
    TextDone {
        item_id: String,
        output_index: usize,
        content_index: usize,
        text: String,
    },
    ArgumentsDelta {
        of: ArgumentsOf,
        item_id: Arc<str>,
        output_index: usize,
        delta: String,
    },
    ArgumentsDone {
        of: ArgumentsOf,
        item_id: String,
        output_index: usize,
        arguments: String,
    },
    Marker {
        marker: Marker,
        item_id: String,
        output_index: usize,
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
                ResponseEventKind::InProgress => "response.in_progress",
                ResponseEventKind::Completed => "response.completed",
                ResponseEventKind::Failed => "response.failed",
            },
            EventBody::OutputItem { done: false, .. } => "response.output_item.added",
            EventBody::OutputItem { done: true, .. } => "response.output_item.done",
            EventBody::ContentPart { done: false, .. } => "response.content_part.added",
            EventBody::ContentPart { done: true, .. } => "response.content_part.done",
            EventBody::TextDelta { .. } => "response.output_text.delta",
            EventBody::TextDone { .. } => "response.output_text.done",
            // llama-stack 0.2.12 (the contract served) spells the MCP ones with a dot.
            EventBody::ArgumentsDelta {
                of: ArgumentsOf::Function,
                ..
            } => "response.function_call_arguments.delta",
            EventBody::ArgumentsDelta {
                of: ArgumentsOf::Mcp,
                ..
            } => "response.mcp_call.arguments.delta",
            EventBody::ArgumentsDone {
                of: ArgumentsOf::Function,
                ..
            } => "response.function_call_arguments.done",
            EventBody::ArgumentsDone {
                of: ArgumentsOf::Mcp,
                ..
            } => "response.mcp_call.arguments.done",
            EventBody::Marker { marker, .. } => marker.type_name(),
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
                map.serialize_entry("item", item)?;
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
            EventBody::TextDelta {
                item_id,
                output_index,
                content_index,
                delta,
            } => {
                map.serialize_entry("content_index", content_index)?;
                map.serialize_entry("delta", delta)?;
                map.serialize_entry("item_id", item_id)?;
                map.serialize_entry("output_index", output_index)?;
                map.serialize_entry("logprobs", &[] as &[Value])?;
            }
            EventBody::TextDone {
                item_id,
                output_index,
                content_index,
                text,
            } => {
                map.serialize_entry("content_index", content_index)?;
                map.serialize_entry("item_id", item_id)?;
                map.serialize_entry("output_index", output_index)?;
                map.serialize_entry("text", text)?;
                map.serialize_entry("logprobs", &[] as &[Value])?;
            }
            EventBody::ArgumentsDelta {
                item_id,
                output_index,
                delta,
                ..
            } => {
                map.serialize_entry("delta", delta)?;
                map.serialize_entry("item_id", item_id)?;
                map.serialize_entry("output_index", output_index)?;
            }
            EventBody::ArgumentsDone {
                item_id,
                output_index,
                arguments,
                ..
            } => {
                map.serialize_entry("arguments", arguments)?;
                map.serialize_entry("item_id", item_id)?;
                map.serialize_entry("output_index", output_index)?;
            }
            EventBody::Marker {
                item_id,
                output_index,
                ..
            } => {
                map.serialize_entry("item_id", item_id)?;
                map.serialize_entry("output_index", output_index)?;
            }
        }
        map.serialize_entry("sequence_number", &self.sequence_number)?;
        map.serialize_entry("type", self.type_name())?;
        map.end()
    }
}
