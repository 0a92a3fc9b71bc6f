//! Server-side tool calls: web search, file search and MCP calls the model asked for, run one after
//! another once its round has ended. Each gets its item when it starts (so items stay strictly
//! nested), asks the driver for the I/O, and is closed with what came of it. A tool that fails — bad
//! arguments, an error result, an exception in the driver — fails only its own call: the item ends
//! `failed` and the model is told, so it can go on.

use serde_json::{json, Value};

use super::chat::ChatMessage;
use super::citations::ogx_search_text;
use super::error::{CoreError, Result};
use super::events::{DeltaKind, EventBody, Marker};
use super::ids::new_id;
use super::items::{Item, Tool};
use super::round::CallKind;
use super::turn::{Action, Phase, Turn};
use super::web_search::{shape_results, WebSearchOptions};

#[derive(Debug)]
pub(super) struct Execution {
    pub kind: CallKind,
    pub call_id: String,
    pub name: String,
    pub arguments: String,
    pub output_index: Option<usize>,
    pub item_id: String,
    /// A web search's `action` (its query), for the item.
    pub action: Option<Value>,
    /// The `mcp_approval_request` an approved MCP call runs on.
    pub approval_request_id: Option<String>,
}

/// The text of a tool invocation result: `content` may be a string, a content item or a list of them.
pub(super) fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .map(content_text)
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Object(obj) => match obj.get("text") {
            Some(Value::String(t)) => t.clone(),
            _ => serde_json::to_string(content).unwrap_or_default(),
        },
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Parse tool-call arguments: empty means none; anything else must be a JSON object.
fn parse_arguments(arguments: &str) -> std::result::Result<Value, String> {
    if arguments.trim().is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err("the tool arguments must be a JSON object".to_owned()),
        Err(e) => Err(format!("the tool arguments are not valid JSON ({e})")),
    }
}

impl Turn {
    /// Announce a server-side call and ask for its I/O; `None` when it failed before any I/O
    /// (malformed arguments), in which case the model is told and the queue moves on.
    pub(super) fn start_execution(&mut self, mut exec: Execution) -> Option<Action> {
        let parsed = parse_arguments(&exec.arguments);
        let action = match exec.kind {
            CallKind::WebSearch => {
                let item_id = new_id("ws_");
                let action = parsed
                    .as_ref()
                    .ok()
                    .and_then(|a| a.get("query"))
                    .filter(|q| q.is_string())
                    .map(|q| json!({"type": "search", "query": q}));
                exec.action = action.clone();
                let output_index = self.out.open(Item::WebSearchCall {
                    id: item_id.clone(),
                    status: "in_progress".to_owned(),
                    action,
                });
                self.out
                    .marker(Marker::WebSearchInProgress, &item_id, output_index);
                exec.output_index = Some(output_index);
                exec.item_id = item_id;
                match &parsed {
                    Ok(args) => {
                        self.out
                            .marker(Marker::WebSearchSearching, &exec.item_id, output_index);
                        Some(Action::InvokeTool {
                            name: exec.name.clone(),
                            arguments: args.clone(),
                            search_options: Some(self.web_search_options().to_driver()),
                        })
                    }
                    Err(_) => None,
                }
            }
            CallKind::FileSearch(tool) => {
                let query = parsed
                    .as_ref()
                    .ok()
                    .and_then(|a| a.get("query"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let item_id = new_id("fs_");
                let output_index = self.out.open(Item::FileSearchCall {
                    id: item_id.clone(),
                    queries: query.iter().cloned().collect(),
                    status: "in_progress".to_owned(),
                    results: None,
                });
                self.out
                    .marker(Marker::FileSearchInProgress, &item_id, output_index);
                exec.output_index = Some(output_index);
                exec.item_id = item_id;
                match (query, self.tools.get(tool).cloned()) {
                    (
                        Some(query),
                        Some(Tool::FileSearch {
                            vector_store_ids,
                            filters,
                            max_num_results,
                            ranking_options,
                        }),
                    ) => {
                        self.out
                            .marker(Marker::FileSearchSearching, &exec.item_id, output_index);
                        Some(Action::FileSearch {
                            query,
                            vector_store_ids,
                            filters,
                            max_num_results,
                            ranking_options,
                        })
                    }
                    _ => None,
                }
            }
            CallKind::Mcp(server) => {
                let item_id = new_id("mcp_");
                let label = self.mcp_servers[server].label.clone();
                let output_index = self.out.open(Item::McpCall {
                    id: item_id.clone(),
                    arguments: String::new(),
                    name: exec.name.clone(),
                    server_label: label,
                    error: None,
                    output: None,
                    status: Some("in_progress".to_owned()),
                    approval_request_id: exec.approval_request_id.clone(),
                });
                if !exec.arguments.is_empty() {
                    self.out.emit(EventBody::Delta {
                        kind: DeltaKind::McpArguments,
                        item_id: item_id.as_str().into(),
                        output_index,
                        content_index: 0,
                        delta: exec.arguments.clone(),
                    });
                }
                self.out.emit(EventBody::Done {
                    kind: DeltaKind::McpArguments,
                    item_id: item_id.clone(),
                    output_index,
                    content_index: 0,
                    text: exec.arguments.clone(),
                });
                self.out
                    .marker(Marker::McpCallInProgress, &item_id, output_index);
                exec.output_index = Some(output_index);
                exec.item_id = item_id;
                match &parsed {
                    Ok(args) => {
                        let server = &self.mcp_servers[server];
                        Some(Action::InvokeMcp {
                            server_url: server.url.clone(),
                            headers: server.headers.clone(),
                            name: exec.name.clone(),
                            arguments: args.clone(),
                        })
                    }
                    Err(_) => None,
                }
            }
            CallKind::Function => None,
        };
        match action {
            Some(action) => {
                self.running = Some(exec);
                Some(action)
            }
            None => {
                let message = match parsed {
                    Err(e) => e,
                    Ok(_) => "the tool call has no 'query' argument".to_owned(),
                };
                self.finish_execution(exec, Err(message), None);
                None
            }
        }
    }

    /// The answer to `InvokeTool`, `InvokeMcp` (llama-stack's `ToolInvocationResult` as JSON) or
    /// `FileSearch` (the list of search pages, one per vector store).
    pub fn tool_result(&mut self, result: &Value) -> Result<()> {
        self.expect_phase(Phase::AwaitTool, "tool_result")?;
        let mut exec = self
            .running
            .take()
            .ok_or_else(|| CoreError::protocol("tool_result without a running call"))?;
        if let CallKind::FileSearch(_) = exec.kind {
            let query = match exec.output_index.and_then(|i| self.out.items.get(i)) {
                Some(Item::FileSearchCall { queries, .. }) => {
                    queries.first().cloned().unwrap_or_default()
                }
                _ => String::new(),
            };
            let (results, text) = file_search_results(result, &query);
            if self.cfg.file_search_citations {
                let text = ogx_search_text(&results, &query);
                self.remember_cited_files(&results);
                let shown = self
                    .cfg
                    .options
                    .include
                    .iter()
                    .any(|i| i == "file_search_call.results");
                if !shown {
                    if let Some(index) = exec.output_index {
                        self.hidden_results.push((index, results));
                    }
                    self.finish_execution(exec, Ok(text), None);
                } else {
                    self.finish_execution(exec, Ok(text), Some(results));
                }
            } else {
                self.finish_execution(exec, Ok(text), Some(results));
            }
        } else {
            // llama-stack's rule: a positive error_code or an error_message means the call failed.
            let message = result
                .get("error_message")
                .and_then(Value::as_str)
                .filter(|m| !m.is_empty());
            let code = result
                .get("error_code")
                .and_then(Value::as_i64)
                .filter(|c| *c > 0);
            let outcome = match (code, message) {
                (None, None) => {
                    let text = content_text(result.get("content").unwrap_or(&Value::Null));
                    match exec.kind {
                        CallKind::WebSearch => Ok(self.web_search_results(&mut exec, text)),
                        _ => Ok(text),
                    }
                }
                (None, Some(message)) => Err(message.to_owned()),
                (Some(code), message) => {
                    let detail = match message {
                        Some(m) => m.to_owned(),
                        // An MCP tool that reports isError puts its explanation in the content.
                        None => content_text(result.get("content").unwrap_or(&Value::Null)),
                    };
                    Err(format!("Error (code {code}): {detail}"))
                }
            };
            self.finish_execution(exec, outcome, None);
        }
        self.phase = Phase::Execute;
        Ok(())
    }

    /// The options of the request's (first) web_search tool.
    fn web_search_options(&self) -> WebSearchOptions {
        self.tools
            .iter()
            .find_map(|t| match t {
                Tool::WebSearch(options) => Some(options.clone()),
                _ => None,
            })
            .unwrap_or_default()
    }

    /// A web search's answer: what the model reads (the results from the allowed domains, as many
    /// and as long as `search_context_size` allows); the URLs become the search's `sources`, shown
    /// in its action when `include` asks for `web_search_call.action.sources`.
    fn web_search_results(&mut self, exec: &mut Execution, answer: String) -> String {
        let Some(shaped) = shape_results(&answer, &self.web_search_options()) else {
            return answer;
        };
        let shown = self
            .cfg
            .options
            .include
            .iter()
            .any(|i| i == "web_search_call.action.sources");
        if let (true, Some(Value::Object(action))) = (shown, exec.action.as_mut()) {
            let sources = shaped
                .sources
                .iter()
                .map(|s| json!({"type": "url", "url": s.url}))
                .collect();
            action.insert("sources".into(), Value::Array(sources));
        }
        for source in shaped.sources {
            if !self.web_sources.iter().any(|s| s.url == source.url) {
                self.web_sources.push(source);
            }
        }
        shaped.text
    }

    /// The files a search returned become citable, best score first (a file keeps its first place).
    fn remember_cited_files(&mut self, results: &[Value]) {
        let mut ranked: Vec<&Value> = results.iter().collect();
        let score = |r: &Value| r["score"].as_f64().unwrap_or(f64::NEG_INFINITY);
        ranked.sort_by(|a, b| score(b).total_cmp(&score(a)));
        for r in ranked {
            let file_id = r["file_id"].as_str().unwrap_or("");
            let filename = r["filename"].as_str().unwrap_or("unknown");
            self.citation_files.add(file_id, filename);
        }
    }

    /// Close a server-side call's item and tell the model what came of it.
    pub(super) fn finish_execution(
        &mut self,
        exec: Execution,
        outcome: std::result::Result<String, String>,
        results: Option<Vec<Value>>,
    ) {
        let ok = outcome.is_ok();
        let tool_message = match &outcome {
            Ok(text) => text.clone(),
            Err(message) if message.starts_with("Error") => message.clone(),
            Err(message) => format!("Error: {message}"),
        };
        if let Some(output_index) = exec.output_index {
            let item_id = exec.item_id.clone();
            let status = if ok { "completed" } else { "failed" };
            let item = match exec.kind {
                CallKind::WebSearch => {
                    if ok {
                        self.out
                            .marker(Marker::WebSearchCompleted, &item_id, output_index);
                    }
                    Item::WebSearchCall {
                        id: item_id,
                        status: status.to_owned(),
                        action: exec.action.clone(),
                    }
                }
                CallKind::FileSearch(_) => {
                    if ok {
                        self.out
                            .marker(Marker::FileSearchCompleted, &item_id, output_index);
                    }
                    let queries = match self.out.items.get(output_index) {
                        Some(Item::FileSearchCall { queries, .. }) => queries.clone(),
                        _ => Vec::new(),
                    };
                    Item::FileSearchCall {
                        id: item_id,
                        queries,
                        status: status.to_owned(),
                        results,
                    }
                }
                CallKind::Mcp(server) => {
                    let marker = if ok {
                        Marker::McpCallCompleted
                    } else {
                        Marker::McpCallFailed
                    };
                    self.out.marker(marker, &item_id, output_index);
                    let (output, error) = match outcome {
                        Ok(text) => (Some(text), None),
                        Err(message) => (None, Some(message)),
                    };
                    Item::McpCall {
                        id: item_id,
                        arguments: exec.arguments.clone(),
                        name: exec.name.clone(),
                        server_label: self.mcp_servers[server].label.clone(),
                        error,
                        output,
                        status: Some(status.to_owned()),
                        approval_request_id: exec.approval_request_id.clone(),
                    }
                }
                CallKind::Function => return,
            };
            self.out.close(output_index, item);
        }
        self.messages.push(ChatMessage::Tool {
            content: tool_message,
            tool_call_id: exec.call_id,
        });
    }
}

/// Turn vector-store search pages into the `file_search_call` results and the text the model reads
/// (the same text llama-stack 0.2.12 gives the model, so prompts tuned for it keep working).
pub(super) fn file_search_results(pages: &Value, query: &str) -> (Vec<Value>, String) {
    let mut results = Vec::new();
    let pages: Vec<&Value> = match pages {
        Value::Array(pages) => pages.iter().collect(),
        other => vec![other],
    };
    for page in pages {
        let data = page.get("data").and_then(Value::as_array);
        for hit in data.into_iter().flatten() {
            let text = content_text(hit.get("content").unwrap_or(&Value::Null));
            // OGX's vector stores answer with the chunk's document id as `file_id` and keep the file's own
            // id in `attributes.file_id`; an older store has the id only as `attributes.document_id`.
            let file_id = attribute(hit, "file_id")
                .or_else(|| nonempty(hit.get("file_id")))
                .or_else(|| attribute(hit, "document_id"));
            let filename = nonempty(hit.get("filename")).or_else(|| attribute(hit, "filename"));
            results.push(json!({
                "file_id": file_id.cloned().unwrap_or(Value::Null),
                "filename": filename.cloned().unwrap_or(Value::Null),
                "score": hit.get("score").cloned().unwrap_or(Value::Null),
                "attributes": hit.get("attributes").cloned().unwrap_or_else(|| json!({})),
                "text": text,
            }));
        }
    }
    let mut text = format!(
        "knowledge_search tool found {} chunks:\nBEGIN of knowledge_search tool results.\n",
        results.len()
    );
    for (i, r) in results.iter().enumerate() {
        text.push_str(&format!(
            "[{}] document_id: {}, score: {}",
            i + 1,
            r["file_id"].as_str().unwrap_or(""),
            r["score"]
        ));
        if r["attributes"].as_object().is_some_and(|a| !a.is_empty()) {
            text.push_str(&format!(", attributes: {}", r["attributes"]));
        }
        text.push_str(&format!("\n{}\n", r["text"].as_str().unwrap_or("")));
    }
    text.push_str("END of knowledge_search tool results.\n");
    text.push_str(&format!(
        "The above results were retrieved to help answer the user's query: \"{query}\". \
         Use them as supporting information only in answering this query.\n"
    ));
    (results, text)
}

/// `v` if it is a non-empty string.
fn nonempty(v: Option<&Value>) -> Option<&Value> {
    v.filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
}

/// A search hit's attribute `name`, if it is a non-empty string.
fn attribute<'a>(hit: &'a Value, name: &str) -> Option<&'a Value> {
    nonempty(hit.get("attributes").and_then(|a| a.get(name)))
}
