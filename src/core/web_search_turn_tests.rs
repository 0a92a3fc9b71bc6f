//! The hosted web_search tool's options through a turn: what the driver is asked, what the model
//! reads, and the `sources` of the call (only when `include` asks for them, in the answer and the record).

use serde_json::{json, Value};

use super::*;
use crate::core::web_search;

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

/// A turn whose model searched once and is now asked for its answer; and the tool message it read.
fn searched(include: bool, emit: bool) -> (Turn, Log, String) {
    let mut config = cfg_with(emit, request(include));
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
    (turn, log, tool_message)
}

/// The model answers `pieces`; (full response, stored record).
fn answer(turn: &mut Turn, log: &mut Log, pieces: &[&str]) -> (Value, Value) {
    for piece in pieces {
        turn.text_delta(piece).unwrap();
    }
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
    log.take(turn);
    if !log.events.is_empty() {
        log.check_invariants();
    }
    let full: Value =
        serde_json::from_str(&turn.final_response().unwrap().to_json(Shape::Full)).unwrap();
    (full, record)
}

/// Runs a turn whose model searches once, then answers; (full output, stored record, events, tool message).
fn run(include: bool) -> (Value, Value, Log, String) {
    let (mut turn, mut log, tool_message) = searched(include, true);
    let (full, record) = answer(&mut turn, &mut log, &["Done."]);
    (full, record, log, tool_message)
}

#[test]
fn the_model_reads_only_allowed_results_as_many_as_the_context_size_allows() {
    let (full, _, _, tool_message) = run(false);
    let read: Value = serde_json::from_str(&tool_message).unwrap();
    assert_eq!(
        read,
        json!({"query": "rust", "instructions": web_search::CITE_INSTRUCTION, "results": [
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

/// The characters `start..end` of `text`.
fn chars(text: &str, start: u64, end: u64) -> String {
    text.chars()
        .skip(start as usize)
        .take((end - start) as usize)
        .collect()
}

#[test]
fn links_to_results_become_url_citations_streamed_and_not() {
    let pieces = [
        "Rüst is fast ([T2](https://docs.exa",
        "mple.org/2)). Not [x](https://elsewhere.net/1) nor [y](https://docs.example.org/8), but [T4](",
        "https://docs.example.org/4).",
    ];
    let text: String = pieces.concat();
    for emit in [true, false] {
        let (mut turn, mut log, _) = searched(false, emit);
        let (full, record) = answer(&mut turn, &mut log, &pieces);
        let part = &full["output"][1]["content"][0];
        assert_eq!(part["text"], text.as_str());
        let annotations = part["annotations"].as_array().unwrap();
        assert_eq!(annotations.len(), 2, "{annotations:?}");
        let cited: Vec<(String, &str, &str)> = annotations
            .iter()
            .map(|a| {
                assert_eq!(a["type"], "url_citation");
                let (start, end) = (
                    a["start_index"].as_u64().unwrap(),
                    a["end_index"].as_u64().unwrap(),
                );
                (
                    chars(&text, start, end),
                    a["url"].as_str().unwrap(),
                    a["title"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            cited,
            [
                (
                    "[T2](https://docs.example.org/2)".to_owned(),
                    "https://docs.example.org/2",
                    "T2"
                ),
                (
                    "[T4](https://docs.example.org/4)".to_owned(),
                    "https://docs.example.org/4",
                    "T4"
                ),
            ]
        );
        assert_eq!(
            record["output"][1]["content"][0]["annotations"],
            part["annotations"]
        );
        if !emit {
            assert!(log.events.is_empty());
            continue;
        }
        // Each annotation is announced inside the open part, right after the delta that completed its
        // link, and before the part's `done`.
        let types = log.types();
        let added: Vec<usize> = (0..types.len())
            .filter(|i| types[*i] == "response.output_text.annotation.added")
            .collect();
        assert_eq!(added.len(), 2);
        for (n, i) in added.iter().enumerate() {
            let event = &log.events[*i];
            assert_eq!(event["annotation_index"], n);
            assert_eq!(event["content_index"], 0);
            assert_eq!(event["output_index"], 1);
            assert_eq!(event["annotation"], annotations[n]);
            assert_eq!(types[i - 1], "response.output_text.delta");
            assert!(log.events[i - 1]["delta"].as_str().unwrap().ends_with(')'));
        }
        let done = types
            .iter()
            .position(|t| *t == "response.output_text.done")
            .unwrap();
        assert!(added[1] < done);
        assert!(log.events[done + 1]["part"]["annotations"] == part["annotations"]);
    }
}

#[test]
fn a_round_before_any_search_cites_nothing() {
    let mut turn = Turn::new(cfg_with(true, request(false)), &json!("q"), &tool()).unwrap();
    let mut log = Log::default();
    turn.next_action().unwrap();
    turn.provide_tool_def(&web_search_def()).unwrap();
    infer(&mut turn, &mut log);
    let (full, _) = answer(
        &mut turn,
        &mut log,
        &["See [T2](https://docs.example.org/2)."],
    );
    assert_eq!(full["output"][0]["content"][0]["annotations"], json!([]));
}
