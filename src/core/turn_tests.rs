//! The state machine driven by hand, the way the Python driver drives it, with no Python at all.

use serde_json::{json, Value};

use super::*;
use crate::core::events::DeltaKind;

fn cfg(emit_events: bool) -> TurnConfig {
    cfg_with(emit_events, json!({"model": "m", "temperature": 0.5}))
}

/// A config for a request with these options (`model` and the rest as a create request spells them).
fn cfg_with(emit_events: bool, request: Value) -> TurnConfig {
    TurnConfig {
        emit_events,
        max_rounds: 10,
        stream_inference: true,
        send_response_format: false,
        extended_tools: true,
        split_think: false,
        options: RequestOptions::parse(&request).unwrap(),
        record_shape: Shape::LlamaStack0212,
        file_search_citations: false,
        developer_as_system: false,
        compaction_trigger: false,
    }
}

/// Collects every event and checks the stream invariants: contiguous numbering, one terminal event,
/// strictly nested items and parts, deltas that concatenate to their `done` and to the final output.
#[derive(Default)]
struct Log {
    events: Vec<Value>,
}

/// The part type each delta kind streams into, and the field its `done` event carries.
fn delta_target(kind: &str) -> Option<(&'static str, &'static str)> {
    Some(match kind {
        "response.output_text" => ("output_text", "text"),
        "response.refusal" => ("refusal", "refusal"),
        "response.reasoning_text" => ("reasoning_text", "text"),
        "response.function_call_arguments" => ("", "arguments"),
        "response.mcp_call_arguments" => ("", "arguments"),
        "response.custom_tool_call_input" => ("", "input"),
        _ => return None,
    })
}

impl Log {
    fn take(&mut self, turn: &mut Turn) {
        self.events.extend(turn.drain_events().map(|e| e.to_json()));
    }

    fn types(&self) -> Vec<&str> {
        self.events
            .iter()
            .map(|e| e["type"].as_str().unwrap_or(""))
            .collect()
    }

    fn check_invariants(&self) {
        for (i, e) in self.events.iter().enumerate() {
            assert_eq!(
                e["sequence_number"],
                json!(i),
                "sequence_number must be contiguous: {e}"
            );
        }
        let types = self.types();
        assert_eq!(types.first(), Some(&"response.created"));
        let terminals = [
            "response.completed",
            "response.failed",
            "response.incomplete",
        ];
        let terminal = types.iter().filter(|t| terminals.contains(t)).count();
        assert_eq!(terminal, 1, "exactly one terminal event: {types:?}");
        assert!(terminals.contains(types.last().unwrap_or(&"")));
        // A background response: `response.queued` after `response.created`, both `queued`.
        let queued = types.get(1) == Some(&"response.queued");
        if queued {
            assert_eq!(self.events[0]["response"]["status"], "queued");
            assert_eq!(self.events[1]["response"]["status"], "queued");
        }
        assert_eq!(
            types.iter().filter(|t| **t == "response.queued").count(),
            usize::from(queued)
        );
        let start = 1 + usize::from(queued);
        if types.len() > start + 1 {
            assert_eq!(types.get(start), Some(&"response.in_progress"));
            assert_eq!(self.events[start]["response"]["status"], "in_progress");
        }
        let final_output = self
            .events
            .last()
            .map(|e| e["response"]["output"].clone())
            .unwrap_or_default();
        // The one open item: (output_index, id); its open part: (content_index, type, text so far).
        let mut open: Option<(u64, String)> = None;
        let mut part: Option<(u64, String, String)> = None;
        let mut args = String::new();
        let mut added = 0u64;
        let mut done_items = Vec::new();
        for e in &self.events {
            let t = e["type"].as_str().unwrap_or("");
            let idx = e["output_index"].as_u64();
            if t.starts_with("response.") && e.get("item_id").is_some() {
                let (oi, id) = open
                    .clone()
                    .unwrap_or_else(|| panic!("{t} with no open item: {e}"));
                assert_eq!(
                    (idx, e["item_id"].as_str()),
                    (Some(oi), Some(id.as_str())),
                    "{t} outside its item: {e}"
                );
            }
            match t {
                "response.output_item.added" => {
                    assert!(open.is_none(), "item added while {open:?} is open: {e}");
                    assert_eq!(idx, Some(added), "output_index is the item's position");
                    added += 1;
                    let item = &e["item"];
                    if item["type"] == "function_call" {
                        assert!(
                            item["call_id"].as_str().is_some_and(|c| !c.is_empty()),
                            "added call has its call_id: {e}"
                        );
                    }
                    open = Some((
                        idx.unwrap_or(0),
                        item["id"].as_str().unwrap_or("").to_owned(),
                    ));
                    args.clear();
                }
                "response.output_item.done" => {
                    let (oi, id) = open.take().expect("done without added");
                    assert!(part.is_none(), "item done with a part open: {e}");
                    assert_eq!(
                        (idx, e["item"]["id"].as_str()),
                        (Some(oi), Some(id.as_str()))
                    );
                    done_items.push(e["item"].clone());
                }
                "response.content_part.added" => {
                    assert!(part.is_none(), "part added while another is open: {e}");
                    let ptype = e["part"]["type"].as_str().unwrap_or("").to_owned();
                    if ptype == "output_text" {
                        assert_eq!(e["part"]["annotations"], json!([]));
                    }
                    part = Some((
                        e["content_index"].as_u64().unwrap_or(0),
                        ptype,
                        String::new(),
                    ));
                }
                "response.content_part.done" => {
                    let (ci, ptype, text) = part.take().expect("part done without added");
                    assert_eq!(e["content_index"].as_u64(), Some(ci));
                    assert_eq!(e["part"]["type"].as_str(), Some(ptype.as_str()));
                    let key = if ptype == "refusal" {
                        "refusal"
                    } else {
                        "text"
                    };
                    assert_eq!(
                        e["part"][key].as_str(),
                        Some(text.as_str()),
                        "part done text: {e}"
                    );
                }
                _ => {
                    let Some((stem, suffix)) = t.rsplit_once('.') else {
                        continue;
                    };
                    let Some((ptype, field)) = delta_target(stem) else {
                        continue;
                    };
                    if ptype.is_empty() {
                        match suffix {
                            "delta" => args.push_str(e["delta"].as_str().unwrap_or("")),
                            "done" => assert_eq!(
                                e[field].as_str(),
                                Some(args.as_str()),
                                "arguments done: {e}"
                            ),
                            _ => {}
                        }
                        continue;
                    }
                    let (ci, open_type, text) = part
                        .as_mut()
                        .unwrap_or_else(|| panic!("{t} with no open part"));
                    assert_eq!(e["content_index"].as_u64(), Some(*ci));
                    assert_eq!(open_type, ptype, "{t} in a {open_type} part");
                    match suffix {
                        "delta" => text.push_str(e["delta"].as_str().unwrap_or("")),
                        "done" => assert_eq!(e[field].as_str(), Some(text.as_str()), "{t}: {e}"),
                        _ => {}
                    }
                }
            }
        }
        let failed = types.last() == Some(&"response.failed");
        if !failed {
            assert!(open.is_none(), "item left open: {open:?}");
            assert_eq!(
                final_output.as_array().map(Vec::len),
                Some(done_items.len())
            );
        }
        for (i, item) in done_items.iter().enumerate() {
            assert_eq!(&final_output[i], item, "final output[{i}] is the done item");
        }
    }
}

fn infer(turn: &mut Turn, log: &mut Log) -> (Vec<Value>, Option<Value>) {
    match turn.next_action().unwrap() {
        Action::Infer {
            messages, tools, ..
        } => {
            log.take(turn);
            (
                serde_json::from_str(&messages).unwrap(),
                tools.map(|t| serde_json::from_str(&t).unwrap()),
            )
        }
        other => panic!("expected Infer, got {other:?}"),
    }
}

fn finish(turn: &mut Turn, log: &mut Log) -> Value {
    loop {
        match turn.next_action().unwrap() {
            Action::Store { response, input } => {
                let _: Value = serde_json::from_str(&input).unwrap();
                let _: Value = serde_json::from_str(&response).unwrap();
                turn.stored().unwrap();
            }
            Action::Done => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    log.take(turn);
    serde_json::to_value(turn.final_response().unwrap()).unwrap()
}

#[test]
fn text_stream_emits_the_openai_sequence() {
    let mut turn = Turn::new(cfg(true), &json!("hello"), &Value::Null).unwrap();
    let mut log = Log::default();
    let (messages, tools) = infer(&mut turn, &mut log);
    assert_eq!(
        Value::Array(messages),
        json!([{"role": "user", "content": "hello"}])
    );
    assert_eq!(tools, None);
    for piece in ["Hel", "", "lo ", "wörld"] {
        turn.text_delta(piece).unwrap();
    }
    turn.end_inference().unwrap();
    let response = finish(&mut turn, &mut log);
    log.check_invariants();
    assert_eq!(
        log.types(),
        vec![
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(response["output"][0]["content"][0]["text"], "Hello wörld");
    assert_eq!(response["status"], "completed");
    assert_eq!(response["temperature"], 0.5);
}

#[test]
fn tool_calls_aggregate_by_index_with_gaps_and_interleaving() {
    let tools =
        json!([{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]);
    let mut turn = Turn::new(cfg(true), &json!("weather?"), &tools).unwrap();
    let mut log = Log::default();
    let (_, chat_tools) = infer(&mut turn, &mut log);
    assert_eq!(chat_tools.unwrap()[0]["function"]["name"], "get_weather");
    turn.tool_call_delta(1, Some("call_b"), Some("get_weather"), None)
        .unwrap();
    turn.tool_call_delta(0, Some("call_a"), Some("get_weather"), Some(""))
        .unwrap();
    turn.tool_call_delta(0, None, None, Some("{\"city\":"))
        .unwrap();
    turn.tool_call_delta(1, None, None, Some("{\"city\": \"Oslo\"}"))
        .unwrap();
    turn.tool_call_delta(0, None, None, None).unwrap();
    turn.tool_call_delta(0, None, None, Some("\"Paris\"}"))
        .unwrap();
    turn.end_inference().unwrap();
    let response = finish(&mut turn, &mut log);
    log.check_invariants();
    let output = response["output"].as_array().unwrap();
    assert_eq!(output.len(), 2);
    // Items are numbered in order of appearance; both are complete function calls.
    assert_eq!(output[0]["call_id"], "call_b");
    assert_eq!(output[0]["arguments"], "{\"city\": \"Oslo\"}");
    assert_eq!(output[1]["call_id"], "call_a");
    assert_eq!(output[1]["arguments"], "{\"city\":\"Paris\"}");
    assert!(output
        .iter()
        .all(|o| o["type"] == "function_call" && o["status"] == "completed"));
}

#[test]
fn arguments_before_the_name_are_not_lost() {
    let tools = json!([{"type": "function", "name": "f", "parameters": null}]);
    let mut turn = Turn::new(cfg(true), &json!("x"), &tools).unwrap();
    let mut log = Log::default();
    infer(&mut turn, &mut log);
    turn.tool_call_delta(0, Some("c"), None, Some("{\"a\""))
        .unwrap();
    turn.tool_call_delta(0, None, Some("f"), Some(": 1}"))
        .unwrap();
    turn.end_inference().unwrap();
    let response = finish(&mut turn, &mut log);
    log.check_invariants();
    assert_eq!(response["output"][0]["arguments"], "{\"a\": 1}");
}

fn web_search_def() -> Value {
    json!({"name": "web_search", "description": "Search the web", "parameters": [
        {"name": "query", "parameter_type": "string", "description": "what", "required": true}]})
}

/// A turn with the web_search tool whose first round ended with one web_search call (`arguments`).
fn model_called_web_search(emit_events: bool, arguments: &str) -> (Turn, Log) {
    let mut turn = Turn::new(
        cfg(emit_events),
        &json!("q"),
        &json!([{"type": "web_search"}]),
    )
    .unwrap();
    let mut log = Log::default();
    turn.next_action().unwrap();
    turn.provide_tool_def(&web_search_def()).unwrap();
    infer(&mut turn, &mut log);
    turn.tool_call_delta(0, Some("c1"), Some("web_search"), Some(arguments))
        .unwrap();
    turn.end_inference().unwrap();
    (turn, log)
}

#[test]
fn web_search_runs_and_the_model_gets_the_result() {
    let mut turn = Turn::new(cfg(true), &json!("news?"), &json!([{"type": "web_search"}])).unwrap();
    let mut log = Log::default();
    assert_eq!(
        turn.next_action().unwrap(),
        Action::GetToolDef {
            name: "web_search".into()
        }
    );
    turn.provide_tool_def(&web_search_def()).unwrap();
    let (_, tools) = infer(&mut turn, &mut log);
    assert_eq!(
        tools.unwrap()[0]["function"]["parameters"]["required"],
        json!(["query"])
    );
    turn.tool_call_delta(
        0,
        Some("call_1"),
        Some("web_search"),
        Some("{\"query\": \"rust\"}"),
    )
    .unwrap();
    turn.end_inference().unwrap();
    match turn.next_action().unwrap() {
        Action::InvokeTool {
            name, arguments, ..
        } => {
            assert_eq!(name, "web_search");
            assert_eq!(arguments, json!({"query": "rust"}));
        }
        other => panic!("expected InvokeTool, got {other:?}"),
    }
    turn.tool_result(&json!({"content": "Rust 2.0 released", "error_message": null}))
        .unwrap();
    let (messages, _) = infer(&mut turn, &mut log);
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(messages[1]["tool_calls"][0]["id"], "call_1");
    assert_eq!(
        messages[2],
        json!({"role": "tool", "content": "Rust 2.0 released", "tool_call_id": "call_1"})
    );
    turn.text_delta("Rust 2.0 is out.").unwrap();
    turn.end_inference().unwrap();
    let response = finish(&mut turn, &mut log);
    log.check_invariants();
    assert_eq!(response["output"][0]["type"], "web_search_call");
    assert_eq!(response["output"][0]["status"], "completed");
    assert_eq!(response["output"][1]["type"], "message");
    let types = log.types();
    let pos = |t: &str| types.iter().position(|x| *x == t).unwrap();
    assert!(
        pos("response.web_search_call.in_progress") < pos("response.web_search_call.searching")
    );
    assert!(pos("response.web_search_call.searching") < pos("response.web_search_call.completed"));
}

#[test]
fn malformed_arguments_fail_the_call_visibly_and_tell_the_model() {
    let (mut turn, mut log) = model_called_web_search(true, "{not json");
    // No tool invocation: straight to the next round, which hears about the error.
    let (messages, _) = infer(&mut turn, &mut log);
    let tool_msg = &messages[2];
    assert_eq!(tool_msg["role"], "tool");
    assert!(tool_msg["content"]
        .as_str()
        .unwrap()
        .starts_with("Error: the tool arguments are not valid JSON"));
    turn.text_delta("sorry").unwrap();
    turn.end_inference().unwrap();
    let response = finish(&mut turn, &mut log);
    log.check_invariants();
    assert_eq!(response["output"][0]["status"], "failed");
}

#[test]
fn tool_error_results_mark_the_call_failed() {
    let (mut turn, mut log) = model_called_web_search(false, "{}");
    assert!(matches!(
        turn.next_action().unwrap(),
        Action::InvokeTool { .. }
    ));
    turn.tool_result(&json!({"content": null, "error_message": "quota exceeded"}))
        .unwrap();
    let (messages, _) = infer(&mut turn, &mut log);
    assert_eq!(messages[2]["content"], "Error: quota exceeded");
    turn.end_inference().unwrap();
    let response = finish(&mut turn, &mut log);
    assert_eq!(response["output"][0]["status"], "failed");
    assert!(log.events.is_empty(), "no events when not streaming");
}

#[test]
fn server_tool_loop_stops_after_max_rounds() {
    let mut config = cfg(true);
    config.max_rounds = 3;
    let mut turn = Turn::new(config, &json!("q"), &json!([{"type": "web_search"}])).unwrap();
    let mut log = Log::default();
    turn.next_action().unwrap();
    turn.provide_tool_def(&web_search_def()).unwrap();
    let mut inferences = 0;
    loop {
        match turn.next_action().unwrap() {
            Action::Infer { .. } => {
                inferences += 1;
                turn.tool_call_delta(
                    0,
                    Some("c"),
                    Some("web_search"),
                    Some("{\"query\": \"again\"}"),
                )
                .unwrap();
                turn.end_inference().unwrap();
            }
            Action::InvokeTool { .. } => turn.tool_result(&json!({"content": "more"})).unwrap(),
            Action::Store { .. } => turn.stored().unwrap(),
            Action::Done => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    log.take(&mut turn);
    log.check_invariants();
    assert_eq!(inferences, 3);
}

#[test]
fn failure_mid_stream_closes_items_and_stores_nothing() {
    let tools = json!([{"type": "function", "name": "f", "parameters": {}}]);
    let mut turn = Turn::new(cfg(true), &json!("x"), &tools).unwrap();
    let mut log = Log::default();
    infer(&mut turn, &mut log);
    turn.text_delta("partial").unwrap();
    turn.tool_call_delta(0, Some("c"), Some("f"), Some("{\"a\""))
        .unwrap();
    turn.fail("inference died");
    log.take(&mut turn);
    log.check_invariants();
    assert_eq!(
        turn.next_action().unwrap(),
        Action::Done,
        "no Store after a failure"
    );
    let last = log.events.last().unwrap();
    assert_eq!(last["type"], "response.failed");
    assert_eq!(last["response"]["status"], "failed");
    assert_eq!(last["response"]["error"]["message"], "inference died");
}

#[test]
fn store_false_never_asks_to_store() {
    let config = cfg_with(false, json!({"model": "m", "store": false}));
    let mut turn = Turn::new(config, &json!("x"), &Value::Null).unwrap();
    let mut log = Log::default();
    infer(&mut turn, &mut log);
    turn.text_delta("y").unwrap();
    turn.end_inference().unwrap();
    assert_eq!(turn.next_action().unwrap(), Action::Done);
}

#[test]
fn a_background_record_written_before_the_end_has_the_final_input_and_id() {
    let config = cfg_with(
        false,
        json!({"model": "m", "background": true, "metadata": {"k": "v"}}),
    );
    let mut turn = Turn::new(config, &json!("hi"), &Value::Null).unwrap();
    let queued: Value = serde_json::from_str(&turn.snapshot_json("queued").unwrap()).unwrap();
    assert_eq!(queued["status"], "queued");
    assert_eq!(queued["background"], true);
    assert_eq!(queued["metadata"], json!({"k": "v"}));
    assert_eq!(queued["output"], json!([]));
    let early_input = turn.stored_input_json().unwrap();
    assert!(
        early_input.contains("\"hi\"") && early_input.contains("msg_"),
        "{early_input}"
    );

    let mut log = Log::default();
    infer(&mut turn, &mut log);
    turn.text_delta("yo").unwrap();
    turn.end_inference().unwrap();
    match turn.next_action().unwrap() {
        Action::Store { response, input } => {
            assert_eq!(input, early_input);
            let response: Value = serde_json::from_str(&response).unwrap();
            assert_eq!(response["id"], queued["id"]);
            assert_eq!(response["created_at"], queued["created_at"]);
        }
        other => panic!("expected Store, got {other:?}"),
    }
}

#[test]
fn string_input_is_stored_with_an_id_and_sent_as_text() {
    let mut turn = Turn::new(cfg(false), &json!("hi"), &Value::Null).unwrap();
    let mut log = Log::default();
    infer(&mut turn, &mut log);
    turn.text_delta("yo").unwrap();
    turn.end_inference().unwrap();
    match turn.next_action().unwrap() {
        Action::Store { input, .. } => {
            let input: Value = serde_json::from_str(&input).unwrap();
            assert_eq!(
                input[0]["content"],
                json!([{"type": "input_text", "text": "hi"}])
            );
            assert!(input[0]["id"].as_str().unwrap().starts_with("msg_"));
        }
        other => panic!("expected Store, got {other:?}"),
    }
}

#[test]
fn instructions_and_response_format() {
    let mut config = cfg_with(
        false,
        json!({"model": "m", "instructions": "Be terse.", "text": {"format": {"type": "json_schema",
            "name": "w", "schema": {"type": "object"}, "strict": true}}}),
    );
    config.send_response_format = true;
    let mut turn = Turn::new(config, &json!("x"), &Value::Null).unwrap();
    match turn.next_action().unwrap() {
        Action::Infer {
            messages,
            response_format,
            ..
        } => {
            let messages: Value = serde_json::from_str(&messages).unwrap();
            assert_eq!(
                messages[0],
                json!({"role": "system", "content": "Be terse."})
            );
            assert_eq!(
                response_format,
                Some(
                    json!({"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}, "strict": true}})
                )
            );
        }
        other => panic!("expected Infer, got {other:?}"),
    }
    // A bad format is refused when the request is read, before any I/O.
    let err = RequestOptions::parse(&json!({"model": "m", "text": {"format": {"type": "xml"}}}))
        .err()
        .unwrap();
    assert!(err.to_string().starts_with("text.format.type"));
}

#[test]
fn every_mcp_server_is_listed_and_allowed_tools_apply() {
    let tools = json!([
        {"type": "mcp", "server_label": "a", "server_url": "http://a/sse", "allowed_tools": ["add"]},
        {"type": "mcp", "server_label": "b", "server_url": "http://b/sse"},
    ]);
    let mut turn = Turn::new(cfg(true), &json!("x"), &tools).unwrap();
    let mut log = Log::default();
    for (url, listing) in [
        (
            "http://a/sse",
            json!({"data": [{"name": "add", "description": "sum", "parameters": [{"name": "a", "parameter_type": "integer"}]}, {"name": "rm", "parameters": []}]}),
        ),
        (
            "http://b/sse",
            json!([{"name": "echo", "input_schema": {"type": "object", "properties": {"s": {"type": "string"}}}}]),
        ),
    ] {
        match turn.next_action().unwrap() {
            Action::ListMcpTools { server_url, .. } => assert_eq!(server_url, url),
            other => panic!("expected ListMcpTools, got {other:?}"),
        }
        turn.provide_mcp_tools(&listing).unwrap();
    }
    let (_, chat_tools) = infer(&mut turn, &mut log);
    let names: Vec<_> = chat_tools
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("add"), json!("echo")]);
    turn.tool_call_delta(0, Some("c1"), Some("echo"), Some("{\"s\": "))
        .unwrap();
    turn.tool_call_delta(0, None, None, Some("\"hi\"}"))
        .unwrap();
    turn.end_inference().unwrap();
    match turn.next_action().unwrap() {
        Action::InvokeMcp {
            server_url,
            name,
            arguments,
            ..
        } => {
            assert_eq!(
                (server_url.as_str(), name.as_str()),
                ("http://b/sse", "echo")
            );
            assert_eq!(arguments, json!({"s": "hi"}));
        }
        other => panic!("expected InvokeMcp, got {other:?}"),
    }
    turn.tool_result(&json!({"content": [{"type": "text", "text": "hi"}]}))
        .unwrap();
    infer(&mut turn, &mut log);
    turn.text_delta("done").unwrap();
    turn.end_inference().unwrap();
    let response = finish(&mut turn, &mut log);
    log.check_invariants();
    let kinds: Vec<_> = response["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["type"].clone())
        .collect();
    assert_eq!(
        kinds,
        vec![
            json!("mcp_list_tools"),
            json!("mcp_list_tools"),
            json!("mcp_call"),
            json!("message")
        ]
    );
    assert_eq!(response["output"][0]["tools"].as_array().unwrap().len(), 1);
    assert_eq!(response["output"][2]["output"], "hi");
    assert_eq!(response["output"][2]["server_label"], "b");
    assert!(log.types().contains(&"response.mcp_call_arguments.delta"));
    assert_eq!(response["output"][2]["status"], "completed");
    assert!(log.types().contains(&"response.mcp_call.completed"));
}

#[test]
fn file_search_returns_results_and_text() {
    let tools = json!([{"type": "file_search", "vector_store_ids": ["vs_1", "vs_2"], "max_num_results": 3}]);
    let mut turn = Turn::new(cfg(true), &json!("x"), &tools).unwrap();
    let mut log = Log::default();
    assert_eq!(
        turn.next_action().unwrap(),
        Action::GetToolDef {
            name: "knowledge_search".into()
        }
    );
    turn.provide_tool_def(&json!({"name": "knowledge_search", "parameters": [{"name": "query", "parameter_type": "string"}]}))
        .unwrap();
    infer(&mut turn, &mut log);
    turn.tool_call_delta(
        0,
        Some("c1"),
        Some("knowledge_search"),
        Some("{\"query\": \"llamas\"}"),
    )
    .unwrap();
    turn.end_inference().unwrap();
    match turn.next_action().unwrap() {
        Action::FileSearch {
            query,
            vector_store_ids,
            max_num_results,
            ..
        } => {
            assert_eq!(query, "llamas");
            assert_eq!(
                vector_store_ids,
                vec!["vs_1".to_string(), "vs_2".to_string()]
            );
            assert_eq!(max_num_results, Some(3));
        }
        other => panic!("expected FileSearch, got {other:?}"),
    }
    let pages = json!([
        {"data": [{"file_id": "f1", "filename": "a.txt", "score": 0.9, "attributes": {}, "content": [{"type": "text", "text": "Llamas hum."}]}]},
        {"data": []}
    ]);
    turn.tool_result(&pages).unwrap();
    let (messages, _) = infer(&mut turn, &mut log);
    assert!(messages[2]["content"]
        .as_str()
        .unwrap()
        .contains("Llamas hum."));
    turn.text_delta("They hum.").unwrap();
    turn.end_inference().unwrap();
    let response = finish(&mut turn, &mut log);
    log.check_invariants();
    assert_eq!(response["output"][0]["type"], "file_search_call");
    assert_eq!(response["output"][0]["queries"], json!(["llamas"]));
    assert_eq!(response["output"][0]["results"][0]["text"], "Llamas hum.");
}

#[test]
fn out_of_order_calls_are_protocol_errors_not_panics() {
    let mut turn = Turn::new(cfg(true), &json!("x"), &Value::Null).unwrap();
    assert!(matches!(
        turn.text_delta("early"),
        Err(CoreError::Protocol(_))
    ));
    assert!(matches!(turn.stored(), Err(CoreError::Protocol(_))));
    assert!(matches!(turn.next_action(), Ok(Action::Infer { .. })));
    assert!(matches!(turn.next_action(), Err(CoreError::Protocol(_))));
}

#[test]
fn the_027_contract_refuses_tools_it_cannot_run() {
    let mut config = cfg(false);
    config.extended_tools = false;
    let tools = json!([{"type": "function", "name": "f", "parameters": {}}, {"type": "mcp", "server_label": "s", "server_url": "u"}]);
    let err = Turn::new(config, &json!("x"), &tools).err().unwrap();
    assert!(err.to_string().starts_with("tools[1].type"), "{err}");
}

#[test]
fn a_positive_error_code_fails_the_call_even_without_a_message() {
    let (mut turn, mut log) = model_called_web_search(false, "{}");
    turn.next_action().unwrap();
    turn.tool_result(
        &json!({"content": [{"type": "text", "text": "no such city"}], "error_code": 1}),
    )
    .unwrap();
    let (messages, _) = infer(&mut turn, &mut log);
    assert_eq!(messages[2]["content"], "Error (code 1): no such city");
    turn.end_inference().unwrap();
    let response = finish(&mut turn, &mut log);
    assert_eq!(response["output"][0]["status"], "failed");
}

/// A small deterministic generator, so the randomised test below needs no crate and always replays.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

/// Split `s` into pieces at random char boundaries (empty pieces included, as servers send them).
fn random_pieces(rng: &mut XorShift, s: &str) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    let mut pieces = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let n = rng.below(5);
        pieces.push(chars[i..(i + n).min(chars.len())].iter().collect());
        i += n;
    }
    pieces
}

/// One scripted model turn: reasoning, then text or a refusal, then tool calls, each split into random
/// pieces and fed in one of three orders.
struct Plan {
    reasoning: String,
    text: String,
    refusal: bool,
    calls: Vec<(String, String)>,
    /// Where each call's id arrives: in its first piece (0) or a later one.
    id_at: Vec<usize>,
}

fn feed_plan(turn: &mut Turn, rng: &mut XorShift, plan: &Plan, mode: usize) {
    let mut reasoning = random_pieces(rng, &plan.reasoning);
    let mut text = random_pieces(rng, &plan.text);
    let mut calls: Vec<Vec<String>> = plan
        .calls
        .iter()
        .map(|(_, args)| {
            let mut pieces = random_pieces(rng, args);
            pieces.insert(0, String::new()); // the first delta: name (and maybe id), no arguments
            pieces
        })
        .collect();
    let mut sent = vec![0usize; calls.len()];
    let id_at: Vec<usize> = (0..calls.len())
        .map(|i| plan.id_at[i].min(calls[i].len() - 1))
        .collect();
    let mut send_call = |turn: &mut Turn, rng: &mut XorShift, i: usize, piece: String| {
        let n = sent[i];
        sent[i] += 1;
        let id = (n == id_at[i]).then(|| plan.calls[i].0.as_str());
        let name = (n == 0).then_some("w");
        // Some servers send `None` instead of an empty piece.
        let piece = (!piece.is_empty() || rng.below(2) == 0).then_some(piece.as_str());
        // Tool-call indexes are only keys: any integer, negative or huge.
        let key = [-3, 0, 1 << 40, 7][i];
        turn.tool_call_delta(key, id, name, piece).unwrap();
    };
    let text_piece = |turn: &mut Turn, piece: &str| {
        if plan.refusal {
            turn.refusal_delta(piece).unwrap()
        } else {
            turn.text_delta(piece).unwrap()
        }
    };
    match mode {
        // Sequential: reasoning, text, then each call in turn (how OpenAI and vLLM stream).
        0 => {
            for p in reasoning.drain(..) {
                turn.reasoning_delta(&p).unwrap();
            }
            for p in text.drain(..) {
                text_piece(turn, &p);
            }
            for (i, pieces) in calls.iter_mut().enumerate() {
                for p in pieces.drain(..) {
                    send_call(turn, rng, i, p);
                }
            }
        }
        // Calls interleaved by index.
        1 => {
            for p in reasoning.drain(..) {
                turn.reasoning_delta(&p).unwrap();
            }
            for p in text.drain(..) {
                text_piece(turn, &p);
            }
            while calls.iter().any(|q| !q.is_empty()) {
                let i = rng.below(calls.len());
                if !calls[i].is_empty() {
                    let p = calls[i].remove(0);
                    send_call(turn, rng, i, p);
                }
            }
        }
        // Everything interleaved: text may come back after a call started.
        _ => loop {
            let which = rng.below(calls.len() + 2);
            if which == 0 && !reasoning.is_empty() {
                turn.reasoning_delta(&reasoning.remove(0)).unwrap();
            } else if which == 1 && !text.is_empty() {
                text_piece(turn, &text.remove(0));
            } else if which >= 2 && !calls[which - 2].is_empty() {
                let p = calls[which - 2].remove(0);
                send_call(turn, rng, which - 2, p);
            } else if reasoning.is_empty() && text.is_empty() && calls.iter().all(Vec::is_empty) {
                break;
            }
        },
    }
}

fn text_of_parts(output: &[Value], item_type: &str, part_type: &str) -> String {
    let key = if part_type == "refusal" {
        "refusal"
    } else {
        "text"
    };
    output
        .iter()
        .filter(|o| o["type"] == item_type)
        .flat_map(|o| o["content"].as_array().cloned().unwrap_or_default())
        .filter(|p| p["type"] == part_type)
        .map(|p| p[key].as_str().unwrap_or("").to_owned())
        .collect()
}

#[test]
fn any_chunking_of_text_reasoning_refusals_and_calls_gives_the_same_response() {
    let texts = ["Grüße — the weather: ☀️ in Paris, 🌧 in Oslo.", ""];
    let all_args = [
        "{\"city\": \"Paris\", \"unit\": \"°C\"}",
        "{\"city\": \"Oslo\"}",
        "{}",
        "{\"q\": [1, {\"nested\": \"}\"}]}",
    ];
    let tools = json!([{"type": "function", "name": "w", "parameters": {"type": "object"}}]);
    for seed in 1..400u64 {
        let mut rng = XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let ncalls = rng.below(5);
        let plan = Plan {
            reasoning: if rng.below(2) == 0 {
                "Think: 🤔 hmm".into()
            } else {
                String::new()
            },
            text: texts[rng.below(2)].to_owned(),
            refusal: rng.below(5) == 0,
            calls: (0..ncalls)
                .map(|i| (format!("call-{i}"), all_args[i].to_owned()))
                .collect(),
            id_at: (0..ncalls).map(|_| rng.below(3)).collect(),
        };
        let mode = rng.below(3);
        let mut turn = Turn::new(cfg(true), &json!("x"), &tools).unwrap();
        let mut log = Log::default();
        infer(&mut turn, &mut log);
        feed_plan(&mut turn, &mut rng, &plan, mode);
        log.take(&mut turn);
        turn.end_inference().unwrap();
        let response = finish(&mut turn, &mut log);
        log.check_invariants();
        let output = response["output"].as_array().unwrap();
        let why = format!("seed {seed}, mode {mode}");
        assert_eq!(
            text_of_parts(output, "reasoning", "reasoning_text"),
            plan.reasoning,
            "{why}"
        );
        let (part, other) = if plan.refusal {
            ("refusal", "output_text")
        } else {
            ("output_text", "refusal")
        };
        assert_eq!(text_of_parts(output, "message", part), plan.text, "{why}");
        assert_eq!(text_of_parts(output, "message", other), "", "{why}");
        let calls: Vec<_> = output
            .iter()
            .filter(|o| o["type"] == "function_call")
            .collect();
        assert_eq!(calls.len(), ncalls, "{why}");
        for (call_id, args) in &plan.calls {
            let call = calls
                .iter()
                .find(|o| o["call_id"] == call_id.as_str())
                .unwrap();
            assert_eq!(call["arguments"], args.as_str(), "{why}");
            assert_eq!(call["status"], "completed", "{why}");
        }
        if mode == 0 && !plan.reasoning.is_empty() {
            assert_eq!(
                output[0]["type"], "reasoning",
                "{why}: reasoning comes first"
            );
        }
        if mode < 2 {
            // Without interleaved text there is at most one message, and every call follows it.
            let messages = output.iter().filter(|o| o["type"] == "message").count();
            assert!(messages <= 1, "{why}");
        }
    }
}

#[test]
fn direct_deltas_share_the_sequence_with_queued_events() {
    let tools = json!([{"type": "function", "name": "f", "parameters": {}}]);
    let mut turn = Turn::new(cfg(true), &json!("x"), &tools).unwrap();
    let mut log = Log::default();
    infer(&mut turn, &mut log);
    let mut seqs: Vec<u64> = log
        .events
        .iter()
        .map(|e| e["sequence_number"].as_u64().unwrap())
        .collect();
    // The first piece opens the message: queued, not direct.
    assert_eq!(turn.text_delta_direct("Hel").unwrap(), None);
    seqs.extend(turn.drain_events().map(|e| e.sequence_number));
    let direct = turn
        .text_delta_direct("lo")
        .unwrap()
        .expect("open message: direct");
    assert_eq!(direct.kind, DeltaKind::OutputText);
    seqs.push(direct.sequence_number);
    // A call's first piece opens its item (queued); later pieces are direct.
    assert_eq!(
        turn.tool_call_delta_direct(0, Some("c"), Some("f"), Some("{"))
            .unwrap(),
        None
    );
    seqs.extend(turn.drain_events().map(|e| e.sequence_number));
    let args = turn
        .tool_call_delta_direct(0, None, None, Some("}"))
        .unwrap()
        .expect("open call: direct");
    assert_eq!(args.kind, DeltaKind::FunctionArguments);
    seqs.push(args.sequence_number);
    // Nothing is handed back while queued events wait (their order would break).
    turn.text_delta("!").unwrap();
    assert_eq!(
        turn.tool_call_delta_direct(0, None, None, Some(" "))
            .unwrap(),
        None
    );
    seqs.extend(turn.drain_events().map(|e| e.sequence_number));
    turn.end_inference().unwrap();
    let response = finish(&mut turn, &mut log);
    seqs.extend(
        log.events
            .iter()
            .skip(2)
            .map(|e| e["sequence_number"].as_u64().unwrap()),
    );
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
    // Text after a call opens a new message; the call closed when that happened.
    assert_eq!(response["output"][0]["content"][0]["text"], "Hello");
    assert_eq!(response["output"][1]["arguments"], "{}");
    assert_eq!(response["output"][2]["content"][0]["text"], "!");
}

fn function_tools() -> Value {
    json!([{"type": "function", "name": "w", "parameters": {"type": "object"}}])
}

fn drained_types(turn: &mut Turn, log: &mut Log) -> Vec<String> {
    let before = log.events.len();
    log.take(turn);
    log.events[before..]
        .iter()
        .map(|e| e["type"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[test]
fn text_then_call_closes_the_message_before_the_call_opens() {
    let mut turn = Turn::new(cfg(true), &json!("x"), &function_tools()).unwrap();
    let mut log = Log::default();
    infer(&mut turn, &mut log);
    turn.text_delta("Let me check.").unwrap();
    log.take(&mut turn);
    turn.tool_call_delta(0, Some("c0"), Some("w"), Some(""))
        .unwrap();
    let types = drained_types(&mut turn, &mut log);
    assert_eq!(
        types,
        [
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added"
        ]
    );
    turn.tool_call_delta(0, None, None, Some("{}")).unwrap();
    turn.end_inference().unwrap();
    let response = finish(&mut turn, &mut log);
    log.check_invariants();
    assert_eq!(response["output"][1]["call_id"], "c0");
}

#[test]
fn sequential_calls_close_as_the_next_one_starts() {
    let mut turn = Turn::new(cfg(true), &json!("x"), &function_tools()).unwrap();
    let mut log = Log::default();
    infer(&mut turn, &mut log);
    for i in 0..3i64 {
        let id = format!("c{i}");
        turn.tool_call_delta(i, Some(&id), Some("w"), Some(""))
            .unwrap();
        let types = drained_types(&mut turn, &mut log);
        if i > 0 {
            // The previous call is complete: it closes, this one opens, live.
            assert_eq!(
                types,
                [
                    "response.function_call_arguments.done",
                    "response.output_item.done",
                    "response.output_item.added"
                ]
            );
        }
        turn.tool_call_delta(i, None, None, Some("{\"n\": "))
            .unwrap();
        turn.tool_call_delta(i, None, None, Some(&format!("{i}}}")))
            .unwrap();
        let types = drained_types(&mut turn, &mut log);
        assert_eq!(types.len(), 2, "argument deltas stream live: {types:?}");
    }
    turn.end_inference().unwrap();
    let response = finish(&mut turn, &mut log);
    log.check_invariants();
    let ids: Vec<_> = (0..3)
        .map(|i| response["output"][i]["call_id"].clone())
        .collect();
    assert_eq!(ids, [json!("c0"), json!("c1"), json!("c2")]);
}

#[test]
fn interleaved_calls_stream_the_first_and_replay_the_others() {
    let mut turn = Turn::new(cfg(true), &json!("x"), &function_tools()).unwrap();
    let mut log = Log::default();
    infer(&mut turn, &mut log);
    for i in 0..3i64 {
        turn.tool_call_delta(i, Some(&format!("c{i}")), Some("w"), Some(""))
            .unwrap();
    }
    for piece in ["{\"a\"", ": 1}"] {
        for i in 0..3i64 {
            turn.tool_call_delta(i, None, None, Some(piece)).unwrap();
        }
    }
    turn.end_inference().unwrap();
    let response = finish(&mut turn, &mut log);
    log.check_invariants();
    let types = log.types();
    let added = types
        .iter()
        .filter(|t| **t == "response.output_item.added")
        .count();
    assert_eq!(added, 3);
    for i in 0..3 {
        assert_eq!(response["output"][i]["arguments"], "{\"a\": 1}");
        assert_eq!(response["output"][i]["call_id"], format!("c{i}"));
    }
}

#[test]
fn a_call_opens_only_once_its_id_is_known() {
    let mut turn = Turn::new(cfg(true), &json!("x"), &function_tools()).unwrap();
    let mut log = Log::default();
    infer(&mut turn, &mut log);
    turn.tool_call_delta(5, None, Some("w"), Some("{\"a\""))
        .unwrap();
    assert!(drained_types(&mut turn, &mut log).is_empty());
    turn.tool_call_delta(5, Some("late-id"), None, Some(": 1}"))
        .unwrap();
    let added = log.events.len();
    log.take(&mut turn);
    assert_eq!(log.events[added]["type"], "response.output_item.added");
    assert_eq!(log.events[added]["item"]["call_id"], "late-id");
    turn.end_inference().unwrap();
    let response = finish(&mut turn, &mut log);
    log.check_invariants();
    assert_eq!(response["output"][0]["arguments"], "{\"a\": 1}");
}

#[test]
fn reasoning_becomes_an_item_before_the_message() {
    let mut turn = Turn::new(cfg(true), &json!("x"), &Value::Null).unwrap();
    let mut log = Log::default();
    let (first, _) = infer(&mut turn, &mut log);
    turn.reasoning_delta("Let me ").unwrap();
    turn.reasoning_delta("think.").unwrap();
    turn.text_delta("42").unwrap();
    turn.end_inference().unwrap();
    let response = finish(&mut turn, &mut log);
    log.check_invariants();
    assert!(log.types().contains(&"response.reasoning_text.delta"));
    assert_eq!(response["output"][0]["type"], "reasoning");
    assert!(response["output"][0]["id"]
        .as_str()
        .unwrap()
        .starts_with("rs_"));
    assert_eq!(
        response["output"][0]["content"],
        json!([{"type": "reasoning_text", "text": "Let me think."}])
    );
    assert_eq!(response["output"][1]["content"][0]["text"], "42");
    assert_eq!(first.len(), 1);
}

#[test]
fn refusals_are_their_own_content_part() {
    let mut turn = Turn::new(cfg(true), &json!("x"), &Value::Null).unwrap();
    let mut log = Log::default();
    infer(&mut turn, &mut log);
    turn.refusal_delta("I can't ").unwrap();
    turn.refusal_delta("help with that.").unwrap();
    turn.end_inference().unwrap();
    let response = finish(&mut turn, &mut log);
    log.check_invariants();
    assert!(log.types().contains(&"response.refusal.done"));
    assert_eq!(
        response["output"][0]["content"],
        json!([{"type": "refusal", "refusal": "I can't help with that."}])
    );
}

#[test]
fn length_and_content_filter_end_the_response_incomplete() {
    for (reason, expected) in [
        ("length", "max_output_tokens"),
        ("content_filter", "content_filter"),
    ] {
        let tools = json!([{"type": "web_search"}]);
        let mut turn = Turn::new(cfg(true), &json!("x"), &tools).unwrap();
        let mut log = Log::default();
        assert!(matches!(
            turn.next_action().unwrap(),
            Action::GetToolDef { .. }
        ));
        turn.provide_tool_def(&web_search_def()).unwrap();
        infer(&mut turn, &mut log);
        turn.text_delta("The answer is").unwrap();
        turn.finish_reason(reason).unwrap();
        turn.end_inference().unwrap();
        let response = finish(&mut turn, &mut log);
        log.check_invariants();
        assert_eq!(log.types().last(), Some(&"response.incomplete"));
        assert_eq!(response["status"], "incomplete");
        assert_eq!(response["output"][0]["status"], "incomplete");
        assert_eq!(
            turn.incomplete.map(IncompleteReason::as_str),
            Some(expected)
        );
    }
}

#[test]
fn a_cut_off_server_call_is_not_run() {
    let tools = json!([{"type": "web_search"}]);
    let mut turn = Turn::new(cfg(true), &json!("x"), &tools).unwrap();
    let mut log = Log::default();
    turn.next_action().unwrap();
    turn.provide_tool_def(&web_search_def()).unwrap();
    infer(&mut turn, &mut log);
    turn.tool_call_delta(0, Some("c"), Some("web_search"), Some("{\"query\": \"x"))
        .unwrap();
    turn.finish_reason("length").unwrap();
    turn.end_inference().unwrap();
    let response = finish(&mut turn, &mut log);
    log.check_invariants();
    assert_eq!(response["status"], "incomplete");
    assert_eq!(response["output"], json!([]));
}

#[test]
fn a_tool_that_raises_fails_only_its_call() {
    let (mut turn, mut log) = model_called_web_search(true, "{\"query\": \"x\"}");
    assert!(matches!(
        turn.next_action().unwrap(),
        Action::InvokeTool { .. }
    ));
    turn.tool_failed("ConnectionError: search backend down")
        .unwrap();
    let (messages, _) = infer(&mut turn, &mut log);
    let last = messages.last().unwrap();
    assert_eq!(last["role"], "tool");
    assert!(last["content"]
        .as_str()
        .unwrap()
        .contains("search backend down"));
    turn.text_delta("Sorry, search is down.").unwrap();
    turn.end_inference().unwrap();
    let response = finish(&mut turn, &mut log);
    log.check_invariants();
    assert_eq!(response["status"], "completed");
    assert_eq!(response["output"][0]["status"], "failed");
    assert_eq!(response["output"][1]["type"], "message");
}

#[test]
fn a_tool_the_host_cannot_serve_is_left_out_with_a_warning() {
    let tools = json!([{"type": "web_search"}, {"type": "function", "name": "w"}]);
    let mut turn = Turn::new(cfg(true), &json!("x"), &tools).unwrap();
    let mut log = Log::default();
    assert!(matches!(
        turn.next_action().unwrap(),
        Action::GetToolDef { .. }
    ));
    turn.tool_failed("ValueError: Tool web_search not found")
        .unwrap();
    let (_, chat_tools) = infer(&mut turn, &mut log);
    let names: Vec<_> = chat_tools
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].clone())
        .collect();
    assert_eq!(names, [json!("w")]);
    let warnings = turn.take_warnings();
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].contains("web_search"));
    assert!(turn.take_warnings().is_empty());
}

#[test]
fn a_failed_mcp_listing_fails_its_item_and_the_response_goes_on() {
    let tools = json!([{"type": "mcp", "server_label": "down", "server_url": "http://down/sse"}]);
    let mut turn = Turn::new(cfg(true), &json!("x"), &tools).unwrap();
    let mut log = Log::default();
    assert!(matches!(
        turn.next_action().unwrap(),
        Action::ListMcpTools { .. }
    ));
    turn.tool_failed("ConnectError: refused").unwrap();
    let (_, chat_tools) = infer(&mut turn, &mut log);
    assert_eq!(chat_tools, None);
    turn.text_delta("hi").unwrap();
    turn.end_inference().unwrap();
    let response = finish(&mut turn, &mut log);
    log.check_invariants();
    assert!(log.types().contains(&"response.mcp_list_tools.failed"));
    assert_eq!(response["status"], "completed");
}

#[test]
fn a_leading_think_block_becomes_reasoning_when_asked() {
    let mut config = cfg(true);
    config.split_think = true;
    let mut turn = Turn::new(config, &json!("x"), &Value::Null).unwrap();
    let mut log = Log::default();
    infer(&mut turn, &mut log);
    for piece in ["<thi", "nk>Two", " plus two.</th", "ink>\n\nFour", "."] {
        assert_eq!(
            turn.text_delta_direct(piece).unwrap(),
            None,
            "no direct path while splitting"
        );
    }
    turn.end_inference().unwrap();
    let response = finish(&mut turn, &mut log);
    log.check_invariants();
    assert_eq!(response["output"][0]["content"][0]["text"], "Two plus two.");
    assert_eq!(response["output"][1]["content"][0]["text"], "Four.");
    // Off (the default), the text is left as the model wrote it.
    let mut turn = Turn::new(cfg(false), &json!("x"), &Value::Null).unwrap();
    infer(&mut turn, &mut Log::default());
    turn.text_delta("<think>a</think>b").unwrap();
    turn.end_inference().unwrap();
    let response = finish(&mut turn, &mut Log::default());
    assert_eq!(
        response["output"][0]["content"][0]["text"],
        "<think>a</think>b"
    );
}

// ---------------------------------------------------------------------------------------------
// OGX's file_search: the fixed tool, citations and `include: ["file_search_call.results"]`

/// A streamed OGX file_search turn: the model searches, then answers in `answer` pieces. Returns the
/// events, the final response and the record stored.
fn ogx_file_search(include: bool, answer: &[&str]) -> (Log, Value, Value) {
    let mut request = json!({"model": "m"});
    if include {
        request["include"] = json!(["file_search_call.results"]);
    }
    let mut config = cfg_with(true, request);
    config.file_search_citations = true;
    let tools = json!([{"type": "file_search", "vector_store_ids": ["vs_1"]}]);
    let mut turn = Turn::new(config, &json!("llamas?"), &tools).unwrap();
    let mut log = Log::default();
    // No tool-group lookup: the fixed `file_search` tool is offered at once.
    let (_, offered) = infer(&mut turn, &mut log);
    assert_eq!(offered.unwrap()[0]["function"]["name"], "file_search");
    turn.tool_call_delta(
        0,
        Some("c1"),
        Some("file_search"),
        Some("{\"query\": \"llamas\"}"),
    )
    .unwrap();
    turn.end_inference().unwrap();
    assert!(matches!(
        turn.next_action().unwrap(),
        Action::FileSearch { .. }
    ));
    let hit = |file: &str, name: &str, score: f64, text: &str| {
        json!({"file_id": file, "filename": name, "score": score, "attributes": {},
               "content": [{"type": "text", "text": text}]})
    };
    turn.tool_result(&json!([{"data": [
        hit("file-b", "b.txt", 0.4, "Alpacas spit."),
        hit("file-a", "a.txt", 0.9, "Llamas hum."),
    ]}]))
    .unwrap();
    let (messages, _) = infer(&mut turn, &mut log);
    let told = messages[2]["content"].as_str().unwrap();
    assert!(
        told.contains("[2] document_id: file-a, score: 0.9 cite as <|file-a|>\nLlamas hum.\n"),
        "{told}"
    );
    for piece in answer {
        turn.text_delta(piece).unwrap();
    }
    turn.end_inference().unwrap();
    let mut stored = Value::Null;
    loop {
        match turn.next_action().unwrap() {
            Action::Store { response, .. } => {
                stored = serde_json::from_str(&response).unwrap();
                turn.stored().unwrap();
            }
            Action::Done => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    log.take(&mut turn);
    log.check_invariants();
    let response = serde_json::to_value(turn.final_response().unwrap()).unwrap();
    (log, response, stored)
}

/// Each `annotation.added` comes inside its open output_text part, in `annotation_index` order,
/// after the deltas of the text before it; the list equals the part's final annotations.
fn check_annotation_events(log: &Log, response: &Value) {
    let part = &response["output"][1]["content"][0];
    let mut text = String::new();
    let mut seen = Vec::new();
    for e in &log.events {
        match e["type"].as_str().unwrap_or("") {
            "response.content_part.added" => text.clear(),
            "response.output_text.delta" => text.push_str(e["delta"].as_str().unwrap()),
            "response.output_text.annotation.added" => {
                assert_eq!(e["annotation_index"], json!(seen.len()));
                assert_eq!(e["output_index"], 1);
                assert_eq!(e["content_index"], 0);
                assert_eq!(e["item_id"], response["output"][1]["id"]);
                assert_eq!(e["annotation"]["index"], json!(text.chars().count()), "{e}");
                seen.push(e["annotation"].clone());
            }
            _ => {}
        }
    }
    assert_eq!(Value::Array(seen), part["annotations"]);
}

#[test]
fn ogx_file_search_citations_become_annotations_wherever_the_stream_splits() {
    let answer = "Llamas hum <|file-a|>. Alpacas spit [file-b]! Not (file-zz).";
    let mut rng = XorShift(0x5eed);
    for round in 0..200 {
        let pieces = random_pieces(&mut rng, answer);
        let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
        let (log, response, _) = ogx_file_search(round % 2 == 0, &pieces);
        let part = &response["output"][1]["content"][0];
        assert_eq!(part["text"], "Llamas hum. Alpacas spit! Not (file-zz).");
        assert_eq!(
            part["annotations"],
            json!([
                {"type": "file_citation", "file_id": "file-a", "filename": "a.txt", "index": 10},
                {"type": "file_citation", "file_id": "file-b", "filename": "b.txt", "index": 24},
            ])
        );
        check_annotation_events(&log, &response);
    }
}

#[test]
fn ogx_file_search_results_show_only_when_included_and_are_always_stored() {
    let (log, response, stored) = ogx_file_search(false, &["Hi <|file-a|>."]);
    assert_eq!(response["output"][0]["type"], "file_search_call");
    assert_eq!(response["output"][0]["results"], Value::Null);
    let done = log
        .events
        .iter()
        .find(|e| e["type"] == "response.output_item.done")
        .unwrap();
    assert_eq!(done["item"]["results"], Value::Null);
    let results = &stored["output"][0]["results"];
    assert_eq!(results[1]["file_id"], "file-a");
    assert_eq!(results[1]["text"], "Llamas hum.");

    let (_, response, stored) = ogx_file_search(true, &["Hi <|file-a|>."]);
    assert_eq!(
        response["output"][0]["results"],
        stored["output"][0]["results"]
    );
    assert_eq!(response["output"][0]["results"][0]["filename"], "b.txt");
}

#[test]
fn ogx_file_search_text_that_cites_nothing_is_attributed_to_the_best_file() {
    let (log, response, _) = ogx_file_search(false, &["Llamas ", "hum."]);
    let part = &response["output"][1]["content"][0];
    assert_eq!(part["text"], "Llamas hum.");
    assert_eq!(
        part["annotations"],
        json!([{"type": "file_citation", "file_id": "file-a", "filename": "a.txt", "index": 11}])
    );
    check_annotation_events(&log, &response);
    let types = log.types();
    let at = |t: &str| types.iter().position(|x| *x == t).unwrap();
    assert!(at("response.output_text.annotation.added") < at("response.output_text.done"));
}

#[test]
fn llama_stack_file_search_has_no_citations() {
    let tools = json!([{"type": "file_search", "vector_store_ids": ["vs_1"]}]);
    let mut turn = Turn::new(cfg(false), &json!("x"), &tools).unwrap();
    assert!(matches!(
        turn.next_action().unwrap(),
        Action::GetToolDef { .. }
    ));
    turn.provide_tool_def(&json!({"name": "knowledge_search", "parameters": []}))
        .unwrap();
    let mut log = Log::default();
    infer(&mut turn, &mut log);
    turn.tool_call_delta(
        0,
        Some("c1"),
        Some("knowledge_search"),
        Some("{\"query\": \"q\"}"),
    )
    .unwrap();
    turn.end_inference().unwrap();
    turn.next_action().unwrap();
    turn.tool_result(
        &json!([{"data": [{"file_id": "file-a", "filename": "a", "score": 1.0,
        "content": [{"type": "text", "text": "t"}]}]}]),
    )
    .unwrap();
    infer(&mut turn, &mut log);
    turn.text_delta("Cited <|file-a|>.").unwrap();
    turn.end_inference().unwrap();
    let response = finish(&mut turn, &mut log);
    assert_eq!(
        response["output"][1]["content"][0]["text"],
        "Cited <|file-a|>."
    );
    assert_eq!(
        response["output"][1]["content"][0]["annotations"],
        json!([])
    );
    assert_eq!(response["output"][0]["results"][0]["file_id"], "file-a");
}

#[test]
fn a_search_hit_names_the_file_of_its_attributes() {
    // OGX's stores give the chunk's document id as `file_id`, the file's own id in the attributes.
    let hit = json!({"file_id": "0b1c-doc", "filename": "", "score": 1.0,
        "attributes": {"file_id": "file-real", "document_id": "0b1c-doc", "filename": "real.txt"},
        "content": [{"type": "text", "text": "t"}]});
    let (results, text) =
        super::super::tool_calls::file_search_results(&json!([{"data": [hit]}]), "q");
    assert_eq!(results[0]["file_id"], "file-real");
    assert_eq!(results[0]["filename"], "real.txt");
    assert!(text.contains("document_id: file-real"));
    let old =
        json!({"file_id": "", "score": 1.0, "attributes": {"document_id": "doc-1"}, "content": []});
    let (results, _) = super::super::tool_calls::file_search_results(&json!({"data": [old]}), "q");
    assert_eq!(results[0]["file_id"], "doc-1");
    assert_eq!(results[0]["filename"], Value::Null);
}

#[path = "codex_tools_tests.rs"]
mod codex_tools;

#[path = "web_search_turn_tests.rs"]
mod web_search_turn;

#[test]
fn a_hosts_system_messages_and_response_field() {
    let mut cfg = cfg_with(false, json!({"model": "m", "instructions": "Be brief."}));
    cfg.record_shape = Shape::Full;
    let input = json!([
        {"type": "message", "role": "developer", "content": "dev"},
        {"type": "message", "role": "user", "content": "hi"}
    ]);
    let mut turn = Turn::new(cfg, &input, &Value::Null).unwrap();
    turn.insert_system("skills", Some(1)).unwrap();
    turn.insert_system("memory", None).unwrap();
    turn.insert_system("far", Some(99)).unwrap();
    turn.echo_field("skills", json!(["a"])).unwrap();
    turn.echo_field("skills", json!(["b"])).unwrap();
    let Action::Infer { messages, .. } = turn.next_action().unwrap() else {
        panic!("expected an inference call")
    };
    let messages: Vec<Value> = serde_json::from_str(&messages).unwrap();
    let sent: Vec<(&str, &str)> = messages
        .iter()
        .map(|m| (m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
        .collect();
    assert_eq!(
        sent,
        [
            ("system", "Be brief."),
            ("system", "skills"),
            ("developer", "dev"),
            ("system", "memory"),
            ("user", "hi"),
            ("system", "far"),
        ]
    );
    let snapshot: Value =
        serde_json::from_str(&turn.snapshot_json("in_progress").unwrap()).unwrap();
    assert_eq!(snapshot["skills"], json!(["b"]));
    // Only before the turn starts.
    assert!(turn.insert_system("late", None).is_err());
    assert!(turn.echo_field("late", json!(1)).is_err());
}

#[test]
fn response_ids_begin_as_the_host_spells_them() {
    let llama_stack = Turn::new(cfg(false), &json!("hi"), &Value::Null).unwrap();
    assert!(
        llama_stack.response_id().starts_with("resp-"),
        "{}",
        llama_stack.response_id()
    );
    let mut full = cfg(false);
    full.record_shape = Shape::Full;
    let openai = Turn::new(full, &json!("hi"), &Value::Null).unwrap();
    assert!(
        openai.response_id().starts_with("resp_"),
        "{}",
        openai.response_id()
    );
}

#[test]
fn a_background_stream_starts_queued() {
    let mut turn = Turn::new(
        cfg_with(
            true,
            json!({"model": "m", "background": true, "store": true}),
        ),
        &json!("x"),
        &Value::Null,
    )
    .unwrap();
    let mut log = Log::default();
    infer(&mut turn, &mut log);
    turn.text_delta("hi").unwrap();
    turn.end_inference().unwrap();
    let response = finish(&mut turn, &mut log);
    log.check_invariants();
    assert_eq!(
        log.types()[..3],
        [
            "response.created",
            "response.queued",
            "response.in_progress"
        ]
    );
    let statuses: Vec<&Value> = log.events[..3]
        .iter()
        .map(|e| &e["response"]["status"])
        .collect();
    assert_eq!(
        statuses,
        [&json!("queued"), &json!("queued"), &json!("in_progress")]
    );
    assert_eq!(log.events[1]["response"]["background"], true);
    assert_eq!(response["status"], "completed");
    // Not a background one: no `response.queued`.
    let mut turn = Turn::new(cfg(true), &json!("x"), &Value::Null).unwrap();
    let mut log = Log::default();
    infer(&mut turn, &mut log);
    assert_eq!(log.types(), ["response.created", "response.in_progress"]);
    assert_eq!(log.events[0]["response"]["status"], "in_progress");
}

#[test]
fn a_turn_failed_before_its_first_action_still_begins_with_response_created() {
    let mut turn = Turn::new(cfg(true), &json!("hi"), &Value::Null).unwrap();
    turn.fail("cancelled before it started");
    let mut log = Log::default();
    log.take(&mut turn);
    assert_eq!(log.types(), ["response.created", "response.failed"]);
    log.check_invariants();
    assert_eq!(turn.next_action().unwrap(), Action::Done);
    let background = cfg_with(true, json!({"model": "m", "background": true}));
    let mut turn = Turn::new(background, &json!("hi"), &Value::Null).unwrap();
    turn.fail("cancelled before it started");
    let mut log = Log::default();
    log.take(&mut turn);
    assert_eq!(
        log.types(),
        ["response.created", "response.queued", "response.failed"]
    );
    assert_eq!(log.events[0]["response"]["status"], "queued");
}
