//! The `compaction` item (parsing, chat conversion, stored shape) and the compaction steps.

use serde_json::{json, Value};

use super::*;
use crate::core::items::parse_input;

fn completion(text: Value, usage: Value) -> Value {
    json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "m",
           "choices": [{"index": 0, "finish_reason": "stop",
                        "message": {"role": "assistant", "content": text}}],
           "usage": usage})
}

#[test]
fn compaction_items_parse_and_round_trip_in_the_stored_shape() {
    let items = parse_input(&json!([
        {"type": "compaction", "id": "cmp_1", "encrypted_content": "summary"},
        {"type": "compaction", "encrypted_content": "no id", "created_by": "someone"},
    ]))
    .unwrap();
    assert_eq!(
        items,
        vec![
            Item::Compaction {
                encrypted_content: "summary".into(),
                id: Some("cmp_1".into())
            },
            Item::Compaction {
                encrypted_content: "no id".into(),
                id: None
            },
        ]
    );
    assert_eq!(items[0].id(), Some("cmp_1"));
    // The stored shape is OGX's `OpenAIResponseCompaction` dump, and it parses back.
    let stored = serde_json::to_value(&items).unwrap();
    assert_eq!(
        stored,
        json!([
            {"type": "compaction", "encrypted_content": "summary", "id": "cmp_1"},
            {"type": "compaction", "encrypted_content": "no id", "id": null},
        ])
    );
    assert_eq!(parse_input(&stored).unwrap(), items);
    // The OpenAI shape is the same item.
    assert_eq!(
        serde_json::to_value(FullItems(&items[..1])).unwrap(),
        json!([{"type": "compaction", "encrypted_content": "summary", "id": "cmp_1"}])
    );
}

#[test]
fn compaction_errors_name_the_field() {
    let err = parse_input(&json!([{"role": "user", "content": "x"}, {"type": "compaction"}]))
        .unwrap_err();
    assert_eq!(err.to_string(), "input[1].encrypted_content: is required");
    let err = parse_input(&json!([{"type": "compaction", "encrypted_content": 3}])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "input[0].encrypted_content: must be a string, got a number"
    );
    let err = parse_input(&json!([{"type": "compaction", "encrypted_content": "s", "id": []}]))
        .unwrap_err();
    assert_eq!(err.to_string(), "input[0].id: must be a string, got a list");
}

#[test]
fn a_compaction_item_reaches_the_model_as_an_assistant_message() {
    let items = parse_input(&json!([
        {"role": "user", "content": "first question"},
        {"type": "compaction", "id": "cmp_1", "encrypted_content": "PREFIX\nthe summary"},
        {"role": "user", "content": "next question"},
    ]))
    .unwrap();
    let messages = serde_json::to_value(chat::items_to_messages(&items).unwrap()).unwrap();
    assert_eq!(
        messages,
        json!([
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "PREFIX\nthe summary"},
            {"role": "user", "content": "next question"},
        ])
    );
}

#[test]
fn the_summarization_call_is_the_history_then_the_prompt() {
    let history = json!([
        {"role": "user", "content": "q1"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "a1"}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "42"},
    ]);
    let plain = Compaction::new(&history, None, "SUMMARIZE").unwrap();
    let messages: Value = serde_json::from_str(&plain.messages_json().unwrap()).unwrap();
    let roles: Vec<&str> = messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "assistant", "tool", "user"]);
    assert_eq!(messages[4]["content"], "SUMMARIZE");
    // Instructions go before the prompt, in the same user message.
    let with = Compaction::new(&json!("hello"), Some("Keep names."), "SUMMARIZE").unwrap();
    let messages: Value = serde_json::from_str(&with.messages_json().unwrap()).unwrap();
    // A string history is one user message with that string (as OGX sends it).
    assert_eq!(
        messages,
        json!([{"role": "user", "content": "hello"},
               {"role": "user", "content": "Keep names.\n\nSUMMARIZE"}])
    );
    // A bad item is refused naming its field.
    let err = Compaction::new(&json!([{"role": "robot", "content": "x"}]), None, "p").unwrap_err();
    assert!(err.to_string().starts_with("input[0].role"), "{err}");
}

#[test]
fn the_window_is_the_user_messages_then_one_compaction_item() {
    let history = json!([
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "q1", "id": "msg_old"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "a1"}]},
        {"type": "compaction", "id": "cmp_old", "encrypted_content": "older summary"},
        {"role": "user", "content": [{"type": "input_text", "text": "q2"},
            {"type": "input_image", "image_url": "http://i/x.png", "detail": "low"}]},
    ]);
    let compaction = Compaction::new(&history, None, "SUMMARIZE").unwrap();
    let usage = json!({"prompt_tokens": 30, "completion_tokens": 5, "total_tokens": 35,
                       "prompt_tokens_details": {"cached_tokens": 2}});
    let done = compaction.finish(&completion(json!("the summary"), usage), "PREFIX");
    assert_eq!(done.output.len(), 3);
    let texts: Vec<Option<&str>> = done
        .output
        .iter()
        .map(|item| match item {
            Item::Message {
                content: Content::Parts(parts),
                role: Role::User,
                status,
                ..
            } => {
                assert_eq!(status.as_deref(), Some("completed"));
                parts[0].text()
            }
            Item::Compaction {
                encrypted_content, ..
            } => Some(encrypted_content.as_str()),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(texts, [Some("q1"), Some("q2"), Some("PREFIX\nthe summary")]);
    // The image part is kept verbatim; every id is new, in OGX's form.
    assert!(
        matches!(&done.output[1], Item::Message { content: Content::Parts(p), .. } if p.len() == 2)
    );
    for (item, prefix) in done.output.iter().zip(["msg_", "msg_", "cmp_"]) {
        let id = item.id().unwrap();
        assert!(
            id.starts_with(prefix) && id.len() == prefix.len() + 24,
            "{id}"
        );
        assert!(
            id[prefix.len()..].chars().all(|c| c.is_ascii_hexdigit()),
            "{id}"
        );
    }
    assert_ne!(done.output[0].id(), Some("msg_old"));
    assert!(done.id.starts_with("resp_") && done.id.len() == 29);
    assert_eq!(
        (
            done.usage.input_tokens,
            done.usage.output_tokens,
            done.usage.total_tokens
        ),
        (30, 5, 35)
    );
    assert_eq!(done.usage.cached_tokens, 2);

    // The compacted object.
    let object: Value = serde_json::from_str(&done.to_json().unwrap()).unwrap();
    assert_eq!(object["object"], "response.compaction");
    assert_eq!(object["id"], json!(done.id));
    assert_eq!(object["created_at"], json!(done.created_at));
    assert_eq!(
        object["output"][0]["content"],
        json!([{"type": "input_text", "text": "q1"}])
    );
    assert_eq!(object["output"][0]["role"], "user");
    assert_eq!(object["output"][2]["type"], "compaction");
    assert_eq!(object["usage"]["total_tokens"], 35);
    assert_eq!(object["usage"]["input_tokens_details"]["cached_tokens"], 2);

    // The record: completed, no output, the compaction's usage, stored.
    let record: Value = serde_json::from_str(&done.record_json("m")).unwrap();
    assert_eq!(
        (
            &record["id"],
            &record["status"],
            &record["model"],
            &record["store"]
        ),
        (
            &json!(done.id),
            &json!("completed"),
            &json!("m"),
            &json!(true)
        )
    );
    assert_eq!(record["output"], json!([]));
    assert_eq!(record["usage"]["output_tokens"], 5);
    // Its input is the window, which parses back as it is.
    let input: Value = serde_json::from_str(&done.input_json().unwrap()).unwrap();
    assert_eq!(parse_input(&input).unwrap(), done.output);
    // Its messages are the window as chat messages: the users, then the summary as the assistant's.
    let messages: Value = serde_json::from_str(&done.messages_json().unwrap()).unwrap();
    assert_eq!(
        messages[0],
        json!({"role": "user", "content": [{"type": "text", "text": "q1"}]})
    );
    assert_eq!(
        messages[2],
        json!({"role": "assistant", "content": "PREFIX\nthe summary"})
    );
}

#[test]
fn an_empty_or_missing_summary_and_no_prefix() {
    let compaction = Compaction::new(&json!([]), None, "p").unwrap();
    let done = compaction.finish(&completion(Value::Null, Value::Null), "");
    assert_eq!(
        done.output,
        vec![Item::Compaction {
            encrypted_content: String::new(),
            id: done.output[0].id().map(str::to_owned),
        }]
    );
    assert_eq!(done.usage, Usage::default());
    // Content given as parts: their text.
    let done = compaction.finish(
        &completion(
            json!([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]),
            json!({}),
        ),
        "",
    );
    assert!(
        matches!(&done.output[0], Item::Compaction { encrypted_content, .. } if encrypted_content == "ab")
    );
    // No choices at all.
    let done = compaction.finish(&json!({"choices": []}), "P");
    assert!(
        matches!(&done.output[0], Item::Compaction { encrypted_content, .. } if encrypted_content == "P\n")
    );
}

#[test]
fn token_counting_reads_the_texts_ogx_counts() {
    let items = parse_input(&json!([
        {"role": "user", "content": "plain"},
        {"type": "message", "role": "assistant", "content": [
            {"type": "output_text", "text": "out"}, {"type": "refusal", "refusal": "no"}]},
        {"role": "user", "content": [{"type": "input_image", "image_url": "http://i"}]},
        {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{\"a\": 1}"},
        {"type": "function_call", "call_id": "d", "name": "f", "arguments": ""},
        {"type": "function_call_output", "call_id": "c", "output": "result"},
        {"type": "compaction", "encrypted_content": "summary"},
        {"type": "reasoning", "id": "rs", "summary": [{"type": "summary_text", "text": "hidden"}]},
        {"type": "web_search_call", "id": "ws", "status": "completed"},
    ]))
    .unwrap();
    assert_eq!(
        text_segments(&items),
        ["plain", "out", "{\"a\": 1}", "result", "summary"]
    );
}
