//! The hosted web_search tool's options through a turn: what the driver is asked, what the model
//! reads, and the `sources` of the call (only when `include` asks for them, in the answer and the record).

use serde_json::{json, Value};

use super::*;

const ALLOWED: &str = "docs.example.org";

fn request(include: bool) -> Value {
    let mut request = json!({"model": "m"});
    if include {
        request["include"] = json!(["web_search_call.action.sources"]);
    }
    request
}

fn tool() -> Value {
    json!([{"type": "web_search", "filters": {"allowed_domains": ["example.org"]},
            "search_context_size": "low", "user_location": {"type": "approximate", "country": "de"}}])
}

/// The backend's answer: eight results, every other one from `docs.example.org`.
fn backend_answer() -> Value {
    let results: Vec<Value> = (1..=8)
        .map(|i| {
            let host = if i % 2 == 0 { ALLOWED } else { "elsewhere.net" };
            json!({"title": format!("T{i}"), "url": format!("https://{host}/{i}"), "content": format!("c{i}")})
        })
        .collect();
    json!({"content": json!({"query": "rust", "results": results}).to_string()})
}

/// Runs a turn whose model searches once, then answers; (full output, stored record, events, tool message).
fn run(include: bool) -> (Value, Value, Log, String) {
    let mut config = cfg_with(true, request(include));
    config.record_shape = Shape::Full;
    let mut turn = Turn::new(config, &json!("q"), &tool()).unwrap();
    let mut log = Log::default();
    turn.next_action().unwrap();
    turn.provide_tool_def(&web_search_def()).unwrap();
    infer(&mut turn, &mut log);
    turn.tool_call_delta(
        0,
        Some("c1"),
        Some("web_search"),
        Some(r#"{"query": "rust"}"#),
    )
    .unwrap();
    turn.end_inference().unwrap();
    match turn.next_action().unwrap() {
        Action::InvokeTool { search_options, .. } => assert_eq!(
            search_options,
            Some(json!({
                "allowed_domains": ["example.org"],
                "search_context_size": "low",
                "max_results": 3,
                "user_location": {"type": "approximate", "city": null, "country": "DE",
                                  "region": null, "timezone": null},
            }))
        ),
        other => panic!("expected InvokeTool, got {other:?}"),
    }
    turn.tool_result(&backend_answer()).unwrap();
    let (messages, _) = infer(&mut turn, &mut log);
    let tool_message = messages[2]["content"].as_str().unwrap().to_owned();
    turn.text_delta("Done.").unwrap();
    turn.end_inference().unwrap();
    let mut record = Value::Null;
    loop {
        match turn.next_action().unwrap() {
            Action::Store { response, .. } => {
                record = serde_json::from_str(&response).unwrap();
                turn.stored().unwrap();
            }
            Action::Done => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    log.take(&mut turn);
    log.check_invariants();
    let full: Value =
        serde_json::from_str(&turn.final_response().unwrap().to_json(Shape::Full)).unwrap();
    (full, record, log, tool_message)
}

#[test]
fn the_model_reads_only_allowed_results_as_many_as_the_context_size_allows() {
    let (full, _, _, tool_message) = run(false);
    let read: Value = serde_json::from_str(&tool_message).unwrap();
    assert_eq!(
        read,
        json!({"query": "rust", "results": [
            {"title": "T2", "url": "https://docs.example.org/2", "content": "c2"},
            {"title": "T4", "url": "https://docs.example.org/4", "content": "c4"},
            {"title": "T6", "url": "https://docs.example.org/6", "content": "c6"},
        ]})
    );
    // The tool is echoed with its options.
    assert_eq!(
        full["tools"][0],
        json!({"type": "web_search", "filters": {"allowed_domains": ["example.org"]},
               "search_context_size": "low",
               "user_location": {"type": "approximate", "city": null, "country": "DE",
                                 "region": null, "timezone": null}})
    );
}

#[test]
fn sources_only_when_include_asks_in_the_answer_the_stream_and_the_record() {
    let sources = json!([
        {"type": "url", "url": "https://docs.example.org/2"},
        {"type": "url", "url": "https://docs.example.org/4"},
        {"type": "url", "url": "https://docs.example.org/6"},
    ]);
    let (full, record, log, _) = run(true);
    let action = json!({"type": "search", "query": "rust", "sources": sources});
    assert_eq!(full["output"][0]["action"], action);
    assert_eq!(record["output"][0]["action"], action);
    let done: Vec<&Value> = log
        .events
        .iter()
        .filter(|e| {
            e["type"] == "response.output_item.done" && e["item"]["type"] == "web_search_call"
        })
        .collect();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0]["item"]["action"], action);

    let (full, record, log, _) = run(false);
    let action = json!({"type": "search", "query": "rust"});
    assert_eq!(full["output"][0]["action"], action);
    // The record is what GET /v1/responses/{id} answers: it keeps what the answer showed.
    assert_eq!(record["output"][0]["action"], action);
    assert!(!serde_json::to_string(&log.events)
        .unwrap()
        .contains("sources"));
}
