//! Streaming events (OpenAI Responses wire shapes) and the response object they carry.

use std::sync::Arc;

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::items::{ContentPart, Item};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResponseError {
    pub code: String,
    pub message: String,
}

/// The response object. Field order and names follow llama-stack's `OpenAIResponseObject`, so the
/// JSON we store is the JSON llama-stack stores; `instructions` and `text` only appear when set,
/// because llama-stack 0.2.7 has neither.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Response {
    pub created_at: i64,
    pub error: Option<ResponseError>,
    pub id: String,
    pub model: String,
    pub object: &'static str,
    pub output: Vec<Item>,
    pub parallel_tool_calls: bool,
    pub previous_response_id: Option<String>,
    pub status: &'static str,
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<Value>,
    pub top_p: Option<f64>,
    pub truncation: Option<String>,
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
}

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
        response: Response,
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

    /// The event as a JSON object in the OpenAI wire shape.
    pub fn to_json(&self) -> Value {
        let mut obj = Map::new();
        match &self.body {
            EventBody::Response { response, .. } => {
                obj.insert("response".into(), json!(response));
            }
            EventBody::OutputItem {
                output_index,
                item,
                response_id,
                ..
            } => {
                obj.insert("item".into(), json!(item));
                obj.insert("output_index".into(), json!(output_index));
                obj.insert("response_id".into(), json!(response_id));
            }
            EventBody::ContentPart {
                item_id,
                output_index,
                content_index,
                part,
                ..
            } => {
                obj.insert("content_index".into(), json!(content_index));
                obj.insert("item_id".into(), json!(item_id));
                obj.insert("output_index".into(), json!(output_index));
                obj.insert("part".into(), json!(part));
            }
            EventBody::TextDelta {
                item_id,
                output_index,
                content_index,
                delta,
            } => {
                obj.insert("content_index".into(), json!(content_index));
                obj.insert("delta".into(), json!(delta));
                obj.insert("item_id".into(), json!(item_id));
                obj.insert("output_index".into(), json!(output_index));
                obj.insert("logprobs".into(), json!([]));
            }
            EventBody::TextDone {
                item_id,
                output_index,
                content_index,
                text,
            } => {
                obj.insert("content_index".into(), json!(content_index));
                obj.insert("item_id".into(), json!(item_id));
                obj.insert("output_index".into(), json!(output_index));
                obj.insert("text".into(), json!(text));
                obj.insert("logprobs".into(), json!([]));
            }
            EventBody::ArgumentsDelta {
                item_id,
                output_index,
                delta,
                ..
            } => {
                obj.insert("delta".into(), json!(delta));
                obj.insert("item_id".into(), json!(item_id));
                obj.insert("output_index".into(), json!(output_index));
            }
            EventBody::ArgumentsDone {
                item_id,
                output_index,
                arguments,
                ..
            } => {
                obj.insert("arguments".into(), json!(arguments));
                obj.insert("item_id".into(), json!(item_id));
                obj.insert("output_index".into(), json!(output_index));
            }
            EventBody::Marker {
                item_id,
                output_index,
                ..
            } => {
                obj.insert("item_id".into(), json!(item_id));
                obj.insert("output_index".into(), json!(output_index));
            }
        }
        obj.insert("sequence_number".into(), json!(self.sequence_number));
        obj.insert("type".into(), json!(self.type_name()));
        Value::Object(obj)
    }
}
