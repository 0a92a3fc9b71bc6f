use super::*;
use crate::core::items::{parse_input, parse_tools, Tool};
use serde_json::json;

/// What `Response` serialised to before this module existed (captured from the old struct), for a
/// response with nothing set...
const TODAY_PLAIN: &str = r#"{"created_at":1700000000,"error":null,"id":"resp-1","model":"m","object":"response","output":[],"parallel_tool_calls":false,"previous_response_id":null,"status":"completed","temperature":null,"top_p":null,"truncation":null,"user":null}"#;
/// ...and for one with every field it had set and one output item of each kind.
const TODAY_RICH: &str = r#"{"created_at":1700000000,"error":{"code":"server_error","message":"x"},"id":"resp-1","model":"m","object":"response","output":[{"type":"message","content":[{"type":"output_text","text":"hi"}],"role":"assistant","id":"msg_1","status":"completed"},{"type":"function_call","arguments":"{}","call_id":"c","name":"f","id":"fc_1","status":"completed"},{"type":"mcp_call","id":"mcp_1","arguments":"{}","name":"t","server_label":"s","error":"boom","output":null},{"type":"file_search_call","id":"fs_1","queries":["q"],"status":"completed","results":[{"text":"t"}]},{"type":"web_search_call","id":"ws_1","status":"completed"},{"type":"mcp_list_tools","id":"mcpl_1","server_label":"s","tools":[{"description":null,"input_schema":{},"name":"t"}]}],"parallel_tool_calls":false,"previous_response_id":"resp-0","status":"completed","temperature":0.5,"text":{"format":{"type":"json_object"}},"top_p":null,"truncation":null,"user":null,"instructions":"be brief"}"#;

fn plain() -> Response {
    let mut r = Response::minimal("resp-1".into(), 1_700_000_000, "m".into());
    r.status = status::COMPLETED;
    r
}

fn rich_output() -> Vec<Item> {
    vec![
        Item::Message {
            content: Content::Parts(vec![ContentPart::OutputText {
                text: "hi".into(),
                annotations: None,
            }]),
            role: Role::Assistant,
            id: Some("msg_1".into()),
            status: Some("completed".into()),
        },
        Item::FunctionCall {
            arguments: "{}".into(),
            call_id: "c".into(),
            name: "f".into(),
            id: Some("fc_1".into()),
            status: Some("completed".into()),
            namespace: None,
        },
        Item::McpCall {
            id: "mcp_1".into(),
            arguments: "{}".into(),
            name: "t".into(),
            server_label: "s".into(),
            error: Some("boom".into()),
            output: None,
            status: None,
            approval_request_id: None,
        },
        Item::FileSearchCall {
            id: "fs_1".into(),
            queries: vec!["q".into()],
            status: "completed".into(),
            results: Some(vec![json!({"text": "t"})]),
        },
        Item::WebSearchCall {
            id: "ws_1".into(),
            status: "completed".into(),
            action: Some(json!({"type": "search", "query": "q"})),
        },
        Item::McpListTools {
            id: "mcpl_1".into(),
            server_label: "s".into(),
            tools: vec![json!({"name": "t", "input_schema": {}, "description": null})],
            error: None,
        },
    ]
}

fn rich() -> Response {
    let mut r = plain();
    r.temperature = Some(0.5);
    r.text = Some(json!({"format": {"type": "json_object"}}));
    r.instructions = Some("be brief".into());
    r.previous_response_id = Some("resp-0".into());
    r.error = Some(ResponseError {
        code: "server_error".into(),
        message: "x".into(),
    });
    r.output = rich_output();
    r
}

#[test]
fn legacy_shapes_are_byte_identical_to_todays_records() {
    assert_eq!(plain().to_json(Shape::LlamaStack0212), TODAY_PLAIN);
    assert_eq!(plain().to_json(Shape::LlamaStack027), TODAY_PLAIN);
    assert_eq!(rich().to_json(Shape::LlamaStack0212), TODAY_RICH);
    // 0.2.7 has no `text`.
    let mut today_027: Value = serde_json::from_str(TODAY_RICH).unwrap();
    today_027.as_object_mut().unwrap().remove("text");
    assert_eq!(
        serde_json::from_str::<Value>(&rich().to_json(Shape::LlamaStack027)).unwrap(),
        today_027
    );
}

#[test]
fn legacy_shapes_ignore_what_llama_stack_does_not_write() {
    // Options llama-stack never records stay out of (or null in) its records, whatever was asked.
    let opts = RequestOptions::parse(&json!({"model": "m", "truncation": "auto", "user": "u",
        "parallel_tool_calls": true, "top_p": 0.3, "metadata": {"k": "v"}, "store": true,
        "tool_choice": "required", "max_output_tokens": 50}))
    .unwrap();
    let mut r = Response::new(
        "resp-1".into(),
        1_700_000_000,
        &opts,
        vec![json!({"type": "web_search"})],
    );
    r.complete(1_700_000_005);
    r.add_chat_usage(&json!({"prompt_tokens": 1, "completion_tokens": 2}));
    let v = r.to_value(Shape::LlamaStack0212);
    assert_eq!(v["parallel_tool_calls"], false);
    assert_eq!(v["truncation"], Value::Null);
    assert_eq!(v["user"], Value::Null);
    assert_eq!(v["top_p"], 0.3);
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        vec![
            "created_at",
            "error",
            "id",
            "model",
            "object",
            "output",
            "parallel_tool_calls",
            "previous_response_id",
            "status",
            "temperature",
            "top_p",
            "truncation",
            "user"
        ]
    );
}

#[test]
fn legacy_items_are_what_llama_stack_validates() {
    let mut r = plain();
    r.output = parse_input(&json!([
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "s"}]},
        {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
         "content": [{"type": "output_text", "text": "partial"}, {"type": "refusal", "refusal": "no"}]},
        {"type": "message", "role": "assistant", "id": "msg_2", "status": "completed",
         "content": [{"type": "refusal", "refusal": "I can't help with that."}]},
        {"type": "mcp_call", "id": "mcp_1", "name": "t", "server_label": "s", "arguments": "{}",
         "error": {"type": "mcp_tool_execution_error", "content": "boom"}, "status": "failed"},
    ]))
    .unwrap();
    let v = r.to_value(Shape::LlamaStack0212);
    assert_eq!(
        v["output"],
        json!([
            {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
             "content": [{"type": "output_text", "text": "partial"}]},
            {"type": "message", "id": "msg_2", "status": "completed", "role": "assistant",
             "content": [{"type": "output_text", "text": "I can't help with that."}]},
            {"type": "mcp_call", "id": "mcp_1", "name": "t", "server_label": "s", "arguments": "{}",
             "error": "boom", "output": null},
        ])
    );
    assert_eq!(r.to_value(Shape::LlamaStack027)["output"], v["output"]);
}

#[test]
fn full_items_are_openai_shaped() {
    let mut r = plain();
    r.output = rich_output();
    r.output.push(Item::Reasoning {
        id: "rs_1".into(),
        summary: vec![json!({"type": "summary_text", "text": "s"})],
        content: vec![ContentPart::ReasoningText { text: "t".into() }],
        encrypted_content: None,
        status: None,
    });
    r.output.push(Item::Message {
        content: Content::Parts(vec![ContentPart::Refusal {
            refusal: "no".into(),
        }]),
        role: Role::Assistant,
        id: Some("msg_2".into()),
        status: Some("completed".into()),
    });
    r.output.push(Item::Message {
        content: Content::Text("plain".into()),
        role: Role::Assistant,
        id: Some("msg_3".into()),
        status: Some("completed".into()),
    });
    r.output.push(Item::McpCall {
        id: "mcp_2".into(),
        arguments: "{}".into(),
        name: "t".into(),
        server_label: "s".into(),
        error: None,
        output: Some("ok".into()),
        status: None,
        approval_request_id: None,
    });
    r.output.push(Item::McpCall {
        id: "mcp_3".into(),
        arguments: "{}".into(),
        name: "t".into(),
        server_label: "s".into(),
        error: Some("HTTP 502 Bad Gateway".into()),
        output: None,
        status: Some("failed".into()),
        approval_request_id: None,
    });
    let v = serde_json::to_value(&r).unwrap();
    let out = &v["output"];
    assert_eq!(
        out[0]["content"],
        json!([{"type": "output_text", "text": "hi", "annotations": [], "logprobs": []}])
    );
    assert_eq!(
        out[2],
        json!({"type": "mcp_call", "id": "mcp_1", "arguments": "{}", "name": "t", "server_label": "s",
            "error": {"type": "mcp_tool_execution_error", "content": "boom"}, "output": null,
            "status": "failed"})
    );
    assert_eq!(
        out[6],
        json!({"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "s"}],
            "content": [{"type": "reasoning_text", "text": "t"}]})
    );
    assert_eq!(
        out[7]["content"],
        json!([{"type": "refusal", "refusal": "no"}])
    );
    assert_eq!(
        out[8]["content"],
        json!([{"type": "output_text", "text": "plain", "annotations": [], "logprobs": []}])
    );
    assert_eq!(out[9]["status"], "completed");
    assert_eq!(
        out[10]["error"],
        json!({"type": "http_error", "code": 502, "message": "HTTP 502 Bad Gateway"})
    );
    // Annotations that were set are written as they are.
    let part = ContentPart::OutputText {
        text: "x".into(),
        annotations: Some(vec![json!({"type": "url_citation"})]),
    };
    assert_eq!(
        serde_json::to_value(FullPart(&part)).unwrap()["annotations"],
        json!([{"type": "url_citation"}])
    );
    // The full shape is what `to_json(Shape::Full)` writes too.
    assert_eq!(r.to_json(Shape::Full), serde_json::to_string(&r).unwrap());
}

#[test]
fn full_defaults_are_openais() {
    let v = serde_json::to_value(plain()).unwrap();
    let expect = json!({
        "id": "resp-1", "object": "response", "created_at": 1_700_000_000, "completed_at": null,
        "status": "completed", "incomplete_details": null, "model": "m",
        "previous_response_id": null, "instructions": null, "output": [], "error": null,
        "tools": [], "tool_choice": "auto", "truncation": "disabled", "parallel_tool_calls": true,
        "text": {"format": {"type": "text"}}, "top_p": 1.0, "presence_penalty": 0.0,
        "frequency_penalty": 0.0, "top_logprobs": 0, "temperature": 1.0,
        "reasoning": {"effort": null, "summary": null}, "usage": null,
        "max_output_tokens": null, "max_tool_calls": null, "store": true, "background": false,
        "service_tier": "default", "metadata": {}, "safety_identifier": null,
        "prompt_cache_key": null, "user": null,
    });
    assert_eq!(v, expect);
}

#[test]
fn full_echoes_the_request() {
    let request = json!({"model": "m", "instructions": "i", "temperature": 0.2, "top_p": 0.4,
        "presence_penalty": 0.5, "frequency_penalty": -0.5, "top_logprobs": 4,
        "max_output_tokens": 99, "max_tool_calls": 3,
        "tool_choice": {"type": "function", "name": "f"}, "parallel_tool_calls": false,
        "metadata": {"k": "v"}, "truncation": "auto", "user": "u", "safety_identifier": "sid",
        "prompt_cache_key": "pck", "service_tier": "flex", "store": false,
        "text": {"format": {"type": "json_schema", "name": "n", "schema": {"type": "object"}, "strict": null},
                 "verbosity": "high"},
        "reasoning": {"effort": "low", "generate_summary": "concise"},
        "previous_response_id": "resp-0"});
    let opts = RequestOptions::parse(&request).unwrap();
    let tools = parse_tools(&json!([{"type": "function", "name": "f"}])).unwrap();
    let echo: Vec<Value> = tools.iter().map(Tool::echo).collect();
    let mut r = Response::new("resp-1".into(), 10, &opts, echo);
    assert_eq!(r.status, status::IN_PROGRESS);
    r.add_chat_usage(&json!({"prompt_tokens": 10, "completion_tokens": 5,
        "prompt_tokens_details": {"cached_tokens": 4}}));
    r.add_chat_usage(
        &json!({"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 30,
        "completion_tokens_details": {"reasoning_tokens": 3}}),
    );
    r.complete(12);
    let v = serde_json::to_value(&r).unwrap();
    let expect = json!({
        "id": "resp-1", "object": "response", "created_at": 10, "completed_at": 12,
        "status": "completed", "incomplete_details": null, "model": "m",
        "previous_response_id": "resp-0", "instructions": "i", "output": [], "error": null,
        "tools": [{"type": "function", "name": "f", "description": null, "parameters": null, "strict": null}],
        "tool_choice": {"type": "function", "name": "f"}, "truncation": "auto",
        "parallel_tool_calls": false,
        "text": {"format": {"type": "json_schema", "name": "n", "schema": {"type": "object"},
            "description": null, "strict": false},
                 "verbosity": "high"},
        "top_p": 0.4, "presence_penalty": 0.5, "frequency_penalty": -0.5, "top_logprobs": 4,
        "temperature": 0.2, "reasoning": {"effort": "low", "summary": "concise"},
        "usage": {"input_tokens": 30, "input_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
                  "output_tokens": 12, "output_tokens_details": {"reasoning_tokens": 3},
                  "total_tokens": 45},
        "max_output_tokens": 99, "max_tool_calls": 3, "store": false, "background": false,
        "service_tier": "flex", "metadata": {"k": "v"}, "safety_identifier": "sid",
        "prompt_cache_key": "pck", "user": "u",
    });
    assert_eq!(v, expect);
    // "auto" reports the tier actually used.
    r.service_tier = Some("auto".into());
    assert_eq!(serde_json::to_value(&r).unwrap()["service_tier"], "default");
}

#[test]
fn status_transitions() {
    let mut r = plain();
    r.incomplete("max_output_tokens");
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["status"], "incomplete");
    assert_eq!(
        v["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
    r.fail("server_error", "boom");
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["status"], "failed");
    assert_eq!(
        v["error"],
        json!({"code": "server_error", "message": "boom"})
    );
    assert_eq!(v["completed_at"], Value::Null);
}

#[test]
fn usage_sums_chat_usage() {
    let mut u = Usage::default();
    u.add_chat_usage(&json!({}));
    assert_eq!(u, Usage::default());
    u.add_chat_usage(&json!({"prompt_tokens": 3, "completion_tokens": 4}));
    assert_eq!(u.total_tokens, 7);
    u.add_chat_usage(&json!({"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 5,
        "prompt_tokens_details": {"cached_tokens": 1}, "completion_tokens_details": {"reasoning_tokens": 1}}));
    assert_eq!(
        u,
        Usage {
            input_tokens: 4,
            cached_tokens: 1,
            output_tokens: 5,
            reasoning_tokens: 1,
            total_tokens: 12,
        }
    );
    // Nulls and junk count 0, and a null total is computed.
    u.add_chat_usage(
        &json!({"prompt_tokens": null, "completion_tokens": "2", "total_tokens": null,
        "prompt_tokens_details": null}),
    );
    assert_eq!(u.total_tokens, 12);
    assert_eq!(
        serde_json::to_value(u).unwrap(),
        json!({"input_tokens": 4, "input_tokens_details": {"cached_tokens": 1, "cache_write_tokens": 0},
            "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 1}, "total_tokens": 12})
    );
    let mut r = plain();
    assert_eq!(serde_json::to_value(&r).unwrap()["usage"], Value::Null);
    r.add_chat_usage(&json!({"prompt_tokens": 2}));
    assert_eq!(
        serde_json::to_value(&r).unwrap()["usage"]["input_tokens"],
        2
    );
}

/// The full shape has every field the Open Responses spec's `ResponseResource` requires (and
/// nothing it does not know, but `user`), and its `Usage` every required usage field.
#[test]
fn full_shape_matches_the_spec_required_lists() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/spec/open-responses-openapi-2026-04-24.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        eprintln!(
            "SKIPPED full_shape_matches_the_spec_required_lists: no spec at {}",
            path.display()
        );
        return;
    };
    let spec: Value = serde_json::from_str(&text).unwrap();
    let schemas = &spec["components"]["schemas"];
    let names = |schema: &Value, key: &str| -> Vec<String> {
        schema[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_else(|| {
                schema[key]
                    .as_object()
                    .map(|o| o.keys().cloned().collect())
                    .unwrap_or_default()
            })
    };
    let mut r = plain();
    r.add_chat_usage(&json!({"prompt_tokens": 1}));
    let v = serde_json::to_value(&r).unwrap();
    let obj = v.as_object().unwrap();
    let required = names(&schemas["ResponseResource"], "required");
    assert_eq!(required.len(), 31, "{required:?}");
    for field in &required {
        assert!(obj.contains_key(field), "missing required field {field}");
    }
    let known = names(&schemas["ResponseResource"], "properties");
    for key in obj.keys() {
        assert!(
            known.contains(key) || key == "user",
            "{key} is not a ResponseResource property"
        );
    }
    let usage = v["usage"].as_object().unwrap();
    for field in names(&schemas["Usage"], "required") {
        assert!(usage.contains_key(&field), "usage lacks {field}");
    }
    for (detail, schema) in [
        ("input_tokens_details", "InputTokensDetails"),
        ("output_tokens_details", "OutputTokensDetails"),
    ] {
        for field in names(&schemas[schema], "required") {
            assert!(
                usage[detail].get(&field).is_some(),
                "{detail} lacks {field}"
            );
        }
    }
    for field in names(&schemas["Reasoning"], "required") {
        assert!(
            v["reasoning"].get(&field).is_some(),
            "reasoning lacks {field}"
        );
    }
    for field in names(&schemas["OutputTextContent"], "required") {
        let mut with_text = plain();
        with_text.output = rich_output();
        let v = serde_json::to_value(&with_text).unwrap();
        assert!(
            v["output"][0]["content"][0].get(&field).is_some(),
            "output_text lacks {field}"
        );
    }
}

#[test]
fn web_search_calls_carry_their_action_in_full_only() {
    let items = rich_output();
    let full = serde_json::to_value(FullItems(&items)).unwrap();
    let legacy = serde_json::to_value(LegacyItems(&items)).unwrap();
    let ws = |v: &Value| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|i| i["type"] == "web_search_call")
            .cloned()
            .unwrap()
    };
    assert_eq!(ws(&full)["action"], json!({"type": "search", "query": "q"}));
    assert!(ws(&legacy).get("action").is_none());
}
