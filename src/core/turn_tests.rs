//! The state machine driven by hand, the way the Python driver drives it, with no Python at all.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::*;
use crate::core::events::ArgumentsOf;

fn cfg(emit_events: bool) -> TurnConfig {
    TurnConfig {
        model: "m".into(),
        temperature: Some(0.5),
        emit_events,
        store: true,
        instructions: None,
        text: None,
        previous_response_id: None,
        max_rounds: 10,
        stream_inference: true,
        send_response_format: false,
        extended_tools: true,
    }
}

/// Collects every event and checks the stream invariants the issue lists.
#[derive(Default)]
struct Log {
    events: Vec<Value>,
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
        assert_eq!(types.get(1), Some(&"response.in_progress"));
        let terminal = types
            .iter()
            .filter(|t| matches!(**t, "response.completed" | "response.failed"))
            .count();
        assert_eq!(terminal, 1, "exactly one terminal event");
        assert!(matches!(
            *types.last().unwrap_or(&""),
            "response.completed" | "response.failed"
        ));
        let mut open: HashMap<u64, String> = HashMap::new();
        let mut text: HashMap<String, String> = HashMap::new();
        let mut args: HashMap<String, String> = HashMap::new();
        let final_output = self
            .events
            .last()
            .map(|e| e["response"]["output"].clone())
            .unwrap_or_default();
        for e in &self.events {
            let idx = e["output_index"].as_u64();
            match e["type"].as_str().unwrap_or("") {
                "response.output_item.added" => {
                    let id = e["item"]["id"].as_str().unwrap_or("").to_owned();
                    assert!(
                        open.insert(idx.unwrap_or(0), id).is_none(),
                        "item added twice"
                    );
                }
                "response.output_item.done" => {
                    let id = open.remove(&idx.unwrap_or(0)).expect("done without added");
                    assert_eq!(e["item"]["id"].as_str(), Some(id.as_str()));
                    assert_eq!(
                        final_output[idx.unwrap_or(0) as usize]["id"],
                        e["item"]["id"],
                        "final ids equal"
                    );
                }
                "response.output_text.delta" => {
                    let id = e["item_id"].as_str().unwrap_or("").to_owned();
                    assert_eq!(
                        open.get(&idx.unwrap_or(0)),
                        Some(&id),
                        "delta outside its item"
                    );
                    text.entry(id)
                        .or_default()
                        .push_str(e["delta"].as_str().unwrap_or(""));
                }
                "response.output_text.done" => {
                    let id = e["item_id"].as_str().unwrap_or("");
                    assert_eq!(
                        text.get(id).map(String::as_str).unwrap_or(""),
                        e["text"].as_str().unwrap_or("")
                    );
                }
                "response.function_call_arguments.delta" | "response.mcp_call.arguments.delta" => {
                    let id = e["item_id"].as_str().unwrap_or("").to_owned();
                    assert_eq!(
                        open.get(&idx.unwrap_or(0)),
                        Some(&id),
                        "delta outside its item"
                    );
                    args.entry(id)
                        .or_default()
                        .push_str(e["delta"].as_str().unwrap_or(""));
                }
                "response.function_call_arguments.done" | "response.mcp_call.arguments.done" => {
                    let id = e["item_id"].as_str().unwrap_or("");
                    assert_eq!(
                        args.get(id).map(String::as_str).unwrap_or(""),
                        e["arguments"].as_str().unwrap_or("")
                    );
                }
                _ => {}
            }
        }
        assert!(open.is_empty(), "items left open: {open:?}");
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
        Action::InvokeTool { name, arguments } => {
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
    let mut config = cfg(false);
    config.store = false;
    let mut turn = Turn::new(config, &json!("x"), &Value::Null).unwrap();
    let mut log = Log::default();
    infer(&mut turn, &mut log);
    turn.text_delta("y").unwrap();
    turn.end_inference().unwrap();
    assert_eq!(turn.next_action().unwrap(), Action::Done);
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
    let mut config = cfg(false);
    config.instructions = Some("Be terse.".into());
    config.send_response_format = true;
    config.text = Some(
        json!({"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}, "strict": true}}),
    );
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
    let mut bad = cfg(false);
    bad.send_response_format = true;
    bad.text = Some(json!({"format": {"type": "xml"}}));
    let err = Turn::new(bad, &json!("x"), &Value::Null).err().unwrap();
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
    assert!(log.types().contains(&"response.mcp_call.arguments.delta"));
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

#[test]
fn any_chunking_of_text_and_parallel_calls_gives_the_same_response() {
    let text = "Grüße — the weather: ☀️ in Paris, 🌧 in Oslo.";
    let args = [
        "{\"city\": \"Paris\", \"unit\": \"°C\"}",
        "{\"city\": \"Oslo\"}",
    ];
    let tools = json!([{"type": "function", "name": "w", "parameters": {"type": "object"}}]);
    for seed in 1..200u64 {
        let mut rng = XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut turn = Turn::new(cfg(true), &json!("x"), &tools).unwrap();
        let mut log = Log::default();
        infer(&mut turn, &mut log);
        // Three queues (the text, call 0, call 1), drained in a random interleaving.
        let mut queues: Vec<Vec<String>> = vec![random_pieces(&mut rng, text)];
        queues.extend(args.iter().map(|a| random_pieces(&mut rng, a)));
        let mut started = [false, false];
        while queues.iter().any(|q| !q.is_empty()) {
            let which = rng.below(3);
            if queues[which].is_empty() {
                continue;
            }
            let piece = queues[which].remove(0);
            if which == 0 {
                turn.text_delta(&piece).unwrap();
            } else {
                let i = which - 1;
                let first = !started[i];
                started[i] = true;
                let (id, name) = if first {
                    (Some(["a", "b"][i]), Some("w"))
                } else {
                    (None, None)
                };
                // Some servers send `None` instead of an empty piece.
                let piece = if piece.is_empty() && rng.below(2) == 0 {
                    None
                } else {
                    Some(piece.as_str())
                };
                turn.tool_call_delta(i as u32, id, name, piece).unwrap();
            }
        }
        turn.end_inference().unwrap();
        let response = finish(&mut turn, &mut log);
        log.check_invariants();
        let output = response["output"].as_array().unwrap();
        let message = output.iter().find(|o| o["type"] == "message").unwrap();
        assert_eq!(message["content"][0]["text"], text, "seed {seed}");
        for (call_id, expected) in [("a", args[0]), ("b", args[1])] {
            let call = output.iter().find(|o| o["call_id"] == call_id).unwrap();
            assert_eq!(call["arguments"], expected, "seed {seed}");
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
    assert_eq!(direct.of, None);
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
    assert_eq!(args.of, Some(ArgumentsOf::Function));
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
    assert_eq!(response["output"][0]["content"][0]["text"], "Hello!");
    assert_eq!(response["output"][1]["arguments"], "{} ");
}
