//! Surrogate pairs split across the pieces of a tool call's `function.arguments` (`feed_sse`).

use super::*;
use crate::core::request::RequestOptions;
use crate::core::response::Shape;
use crate::core::sse::write_event;
use crate::core::turn::{Action, TurnConfig};
use serde_json::json;

fn turn() -> Turn {
    let options = RequestOptions::parse(&json!({"model": "m", "store": true})).expect("options");
    let cfg = TurnConfig {
        emit_events: true,
        max_rounds: 10,
        stream_inference: true,
        send_response_format: true,
        extended_tools: true,
        split_think: false,
        options,
        record_shape: Shape::Full,
        file_search_citations: false,
        developer_as_system: false,
        compaction_trigger: false,
    };
    let tools = json!([
        {"type": "function", "name": "f", "parameters": {"type": "object"}},
        {"type": "function", "name": "g", "parameters": {"type": "object"}}
    ]);
    let mut turn = Turn::new(cfg, &json!("hi"), &tools).expect("turn");
    assert!(matches!(turn.next_action(), Ok(Action::Infer { .. })));
    turn
}

/// An SSE body of one chunk per tool-call delta `(index, id and name on the first, arguments)`;
/// `arguments` is the JSON string's escaped text, as the wire has it.
fn body(deltas: &[(i64, &str)]) -> String {
    let mut body = String::new();
    let mut seen = Vec::new();
    for &(index, arguments) in deltas {
        let head = if seen.contains(&index) {
            String::new()
        } else {
            seen.push(index);
            let name = if index == 0 { "f" } else { "g" };
            format!(r#""id":"call_{index}","type":"function","#)
                + &format!(r#""function":{{"name":"{name}","arguments":""}}}},{{"index":{index},"#)
        };
        body += &format!(
            "data: {{\"choices\":[{{\"delta\":{{\"tool_calls\":[{{\"index\":{index},{head}\"function\":{{\"arguments\":\"{arguments}\"}}}}]}}}}]}}\n\n"
        );
    }
    body + "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n"
}

/// Feed `body` in `step`-byte reads, end the inference (flushing the carry), and give each call's
/// concatenated argument deltas and the final response's `function_call` items' arguments.
fn run(body: &str, step: usize) -> (Vec<String>, Vec<String>) {
    let mut t = turn();
    let mut reader = SseReader::new();
    let mut carry = Carry::default();
    for piece in body.as_bytes().chunks(step) {
        feed_sse(&mut reader, &mut t, &mut carry, piece).expect("feed");
    }
    end_carry(&mut t, &mut carry).expect("end carry");
    assert!(carry.is_empty());
    t.end_inference().expect("end");
    let mut out = Vec::new();
    while let Some(event) = t.pop_event() {
        write_event(&event, &mut out);
    }
    let sse = String::from_utf8(out).expect("utf-8");
    let events: Vec<Value> = sse
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).expect("event JSON"))
        .collect();
    let mut items: Vec<(String, String)> = Vec::new();
    for e in &events {
        if e["type"] == "response.output_item.added" {
            items.push((
                e["item"]["id"].as_str().expect("id").to_owned(),
                String::new(),
            ));
        }
        if e["type"] == "response.function_call_arguments.delta" {
            let item = items
                .iter_mut()
                .find(|(id, _)| e["item_id"] == id.as_str())
                .expect("delta of an added item");
            item.1 += e["delta"].as_str().expect("delta");
        }
    }
    let mut done = Vec::new();
    for e in &events {
        if e["type"] == "response.output_item.done" {
            let item = &e["item"];
            let streamed = items.iter().find(|(id, _)| item["id"] == id.as_str());
            assert_eq!(
                item["arguments"].as_str(),
                streamed.map(|(_, s)| s.as_str()),
                "the item's arguments are its deltas"
            );
            done.push(item["arguments"].as_str().expect("arguments").to_owned());
        }
    }
    let deltas = items.into_iter().map(|(_, s)| s).collect();
    (deltas, done)
}

#[test]
fn a_pair_split_across_two_argument_pieces_is_one_character() {
    let body = body(&[(0, r#"{\"mood\":\"\ud83d"#), (0, r#"\ude00\"}"#)]);
    for step in [1, 7, body.len()] {
        let (deltas, done) = run(&body, step);
        assert_eq!(deltas, ["{\"mood\":\"\u{1F600}\"}"]);
        assert_eq!(done, deltas);
    }
}

#[test]
fn interleaved_parallel_calls_each_hold_their_own_half() {
    let body = body(&[
        (0, r#"{\"a\":\"x\ud83d"#),
        (1, r#"{\"b\":\"\uD83C"#),
        (0, r#"\ude00\"}"#),
        (1, r#"\uDF89 y\"}"#),
    ]);
    let (deltas, done) = run(&body, 5);
    assert_eq!(
        deltas,
        ["{\"a\":\"x\u{1F600}\"}", "{\"b\":\"\u{1F389} y\"}"]
    );
    assert_eq!(done, deltas);
}

#[test]
fn a_half_that_never_meets_its_other_half_is_replaced() {
    // Call 0's next piece does not begin with the low half; call 1's arguments end on a high half
    // (the end of the round flushes it); a lone low half anywhere is U+FFFD at once.
    let body = body(&[
        (0, r#"{\"a\":\"\ud83d"#),
        (1, r#"{\"b\":\"\udc00 \ud83d\ude01"#),
        (0, r#"z\"}"#),
        (1, r#"\ud83d"#),
    ]);
    let (deltas, done) = run(&body, 3);
    assert_eq!(
        deltas,
        [
            "{\"a\":\"\u{FFFD}z\"}",
            "{\"b\":\"\u{FFFD} \u{1F601}\u{FFFD}"
        ]
    );
    assert_eq!(done, deltas);
}

#[test]
fn text_halves_and_call_halves_are_held_apart() {
    let mut carry = Carry::default();
    assert_eq!(carry.arguments(3, "\u{10F83D}", true), "");
    assert!(carry.holds_calls() && !carry.is_empty());
    // Text, and another call, do not meet call 3's half.
    assert_eq!(
        carry.text(DeltaKind::OutputText, "\u{10FE00}", true),
        "\u{FFFD}"
    );
    assert_eq!(carry.arguments(4, "\u{10FE00}", true), "\u{FFFD}");
    assert_eq!(carry.arguments(3, "\u{10FE00}!", true), "\u{1F600}!");
    assert!(carry.is_empty());
    // A plain piece while nothing is held is borrowed, unchanged.
    assert!(matches!(
        carry.arguments(3, "{}", false),
        Cow::Borrowed("{}")
    ));
    carry.arguments(7, "\u{10F83D}", true);
    carry.arguments(2, "\u{10F83D}", true);
    assert_eq!(carry.take_calls(), vec![7, 2]);
    assert!(carry.is_empty());
}
