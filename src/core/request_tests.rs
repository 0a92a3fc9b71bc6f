use super::*;
use crate::core::items::parse_tools;
use serde_json::json;

fn parse(v: Value) -> Result<RequestOptions> {
    RequestOptions::parse(&v)
}

fn err(v: Value) -> String {
    match parse(v) {
        Ok(o) => panic!("expected an error, parsed {o:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn defaults_when_only_model_given() {
    let o = parse(json!({"model": "m", "input": "ignored", "tools": "ignored too"})).unwrap();
    assert_eq!(o.model, "m");
    assert_eq!(o.max_infer_iters, DEFAULT_MAX_INFER_ITERS);
    assert_eq!(o.tool_choice, ToolChoice::Auto);
    assert!(o.parallel_tool_calls());
    assert_eq!(o.parallel_tool_calls, None);
    assert!(o.store);
    assert!(!o.background);
    assert!(!o.stream);
    assert!(o.metadata.is_empty());
    assert_eq!(o.temperature, None);
    assert_eq!(o.text_echo(), json!({"format": {"type": "text"}}));
    assert_eq!(o.response_format().unwrap(), json!({"type": "text"}));
    assert!(o.chat_params(true).is_empty());
}

#[test]
fn null_means_not_given() {
    let o = parse(
        json!({"model": "m", "temperature": null, "store": null, "metadata": null,
        "tool_choice": null, "text": null, "reasoning": null, "include": null}),
    )
    .unwrap();
    assert_eq!(o.temperature, None);
    assert!(o.store);
    assert_eq!(o.tool_choice, ToolChoice::Auto);
}

#[test]
fn every_field_parses() {
    let o = parse(json!({
        "model": "m", "instructions": "be brief", "temperature": 0.5, "top_p": 0.9,
        "presence_penalty": -1, "frequency_penalty": 1.5, "top_logprobs": 3,
        "max_output_tokens": 100, "max_tool_calls": 2, "max_infer_iters": 4,
        "tool_choice": "required", "parallel_tool_calls": false,
        "metadata": {"k": "v"}, "truncation": "auto", "user": "u", "safety_identifier": "s",
        "prompt_cache_key": "p", "service_tier": "flex", "store": false, "background": false,
        "stream": true, "text": {"format": {"type": "json_object"}, "verbosity": "low"},
        "reasoning": {"effort": "high", "summary": "auto"}, "include": ["reasoning.encrypted_content"],
        "previous_response_id": "resp-1", "prompt": {"id": "pmpt_1"},
        "context_management": [{"type": "compaction"}], "client_metadata": {"a": 1},
        "stream_options": {"include_obfuscation": false},
    }))
    .unwrap();
    assert_eq!(o.instructions.as_deref(), Some("be brief"));
    assert_eq!(o.temperature, Some(0.5));
    assert_eq!(o.top_p, Some(0.9));
    assert_eq!(o.presence_penalty, Some(-1.0));
    assert_eq!(o.top_logprobs, Some(3));
    assert_eq!(o.max_output_tokens, Some(100));
    assert_eq!(o.max_tool_calls, Some(2));
    assert_eq!(o.max_infer_iters, 4);
    assert_eq!(o.tool_choice, ToolChoice::Required);
    assert!(!o.parallel_tool_calls());
    assert_eq!(o.truncation, Some("auto"));
    assert_eq!(o.service_tier, Some("flex"));
    assert!(!o.store && o.stream);
    assert_eq!(
        o.reasoning,
        Some(Reasoning {
            effort: Some("high"),
            summary: Some("auto"),
            generate_summary: None
        })
    );
    assert_eq!(o.include, vec!["reasoning.encrypted_content".to_owned()]);
    assert_eq!(o.previous_response_id.as_deref(), Some("resp-1"));
    assert_eq!(o.prompt, Some(json!({"id": "pmpt_1"})));
    assert_eq!(
        o.text_echo(),
        json!({"format": {"type": "json_object"}, "verbosity": "low"})
    );
    assert_eq!(o.response_format().unwrap(), json!({"type": "json_object"}));
}

#[test]
fn errors_name_the_field() {
    let cases = [
        (json!({}), "model: is required"),
        (json!({"model": null}), "model: is required"),
        (json!({"model": 3}), "model: must be a string, got a number"),
        (json!({"model": "m", "temperature": "hot"}), "temperature: must be a number, got a string"),
        (json!({"model": "m", "temperature": 2.5}), "temperature: must be between 0 and 2, got 2.5"),
        (json!({"model": "m", "temperature": -0.1}), "temperature: must be between 0 and 2, got -0.1"),
        (json!({"model": "m", "top_p": 1.5}), "top_p: must be between 0 and 1, got 1.5"),
        (json!({"model": "m", "presence_penalty": 3}), "presence_penalty: must be between -2 and 2, got 3"),
        (json!({"model": "m", "frequency_penalty": -2.5}), "frequency_penalty: must be between -2 and 2, got -2.5"),
        (json!({"model": "m", "top_logprobs": 21}), "top_logprobs: must be between 0 and 20, got 21"),
        (json!({"model": "m", "top_logprobs": 1.5}), "top_logprobs: must be an integer, got 1.5"),
        (json!({"model": "m", "max_output_tokens": 0}), "max_output_tokens: must be a positive integer, got 0"),
        (json!({"model": "m", "max_output_tokens": "10"}), "max_output_tokens: must be an integer, got a string"),
        (json!({"model": "m", "max_tool_calls": -1}), "max_tool_calls: must be a positive integer, got -1"),
        (json!({"model": "m", "max_infer_iters": 0}), "max_infer_iters: must be a positive integer, got 0"),
        (json!({"model": "m", "max_infer_iters": 5_000_000_000_i64}), "max_infer_iters: is too large"),
        (json!({"model": "m", "parallel_tool_calls": "yes"}), "parallel_tool_calls: must be a boolean, got a string"),
        (json!({"model": "m", "store": 1}), "store: must be a boolean, got a number"),
        (json!({"model": "m", "stream": "true"}), "stream: must be a boolean, got a string"),
        (json!({"model": "m", "instructions": ["a"]}), "instructions: must be a string, got a list"),
        (json!({"model": "m", "truncation": "middle"}), "truncation: unknown truncation 'middle' (expected auto, disabled)"),
        (json!({"model": "m", "service_tier": "gold"}), "service_tier: unknown service tier 'gold' (expected auto, default, flex, scale, priority, fast, ultrafast)"),
        (json!({"model": "m", "user": 1}), "user: must be a string, got a number"),
        (json!({"model": "m", "previous_response_id": 1}), "previous_response_id: must be a string, got a number"),
        (json!({"model": "m", "text": "json"}), "text: must be an object, got a string"),
        (json!({"model": "m", "text": {"format": "json"}}), "text.format: must be an object, got a string"),
        (json!({"model": "m", "text": {"format": {"type": "x"}}}), "text.format.type: unknown text format 'x' (expected text, json_object, json_schema)"),
        (json!({"model": "m", "text": {"format": {"type": "json_schema", "schema": {}}}}), "text.format.name: is required for json_schema"),
        (json!({"model": "m", "text": {"format": {"type": "json_schema", "name": "n"}}}), "text.format.schema: is required for json_schema"),
        (json!({"model": "m", "text": {"format": {"type": "json_schema", "name": "n", "schema": []}}}), "text.format.schema: must be an object, got a list"),
        (json!({"model": "m", "text": {"format": {"type": "json_schema", "name": "n", "schema": {}, "strict": "yes"}}}), "text.format.strict: must be a boolean, got a string"),
        (json!({"model": "m", "text": {"verbosity": "loud"}}), "text.verbosity: unknown verbosity 'loud' (expected low, medium, high)"),
        (json!({"model": "m", "reasoning": "high"}), "reasoning: must be an object, got a string"),
        (json!({"model": "m", "reasoning": {"effort": "extreme"}}), "reasoning.effort: unknown reasoning effort 'extreme' (expected none, minimal, low, medium, high, xhigh, max)"),
        (json!({"model": "m", "reasoning": {"summary": "long"}}), "reasoning.summary: unknown reasoning summary 'long' (expected auto, concise, detailed)"),
        (json!({"model": "m", "include": "x"}), "include: must be a list of strings, got a string"),
        (json!({"model": "m", "include": ["a", 2]}), "include[1]: must be a string, got a number"),
        (json!({"model": "m", "metadata": []}), "metadata: must be an object, got a list"),
        (json!({"model": "m", "metadata": {"k": 1}}), "metadata.k: must be a string, got a number"),
        (json!({"model": "m", "conversation": 1}), "conversation: must be a string or an object, got a number"),
        (json!({"model": "m", "prompt": "p"}), "prompt: must be an object, got a string"),
        (json!({"model": "m", "context_management": {}}), "context_management: must be a list, got an object"),
        (json!({"model": "m", "client_metadata": []}), "client_metadata: must be an object, got a list"),
        (json!({"model": "m", "stream_options": true}), "stream_options: must be an object, got a boolean"),
        (json!({"model": "m", "conversation": "conv_1", "previous_response_id": "resp-1"}), "conversation: cannot be used together with previous_response_id"),
        (json!({"model": "m", "background": true, "store": false}), "background: requires store to be true (a background response must be stored to be retrieved)"),
        (json!({"model": "m", "safety_identifier": "x".repeat(65)}), "safety_identifier: at most 64 characters, got 65"),
        (json!({"model": "m", "prompt_cache_key": "x".repeat(65)}), "prompt_cache_key: at most 64 characters, got 65"),
        (json!("m"), "request: must be an object, got a string"),
    ];
    for (request, expected) in cases {
        assert_eq!(err(request.clone()), expected, "{request}");
    }
}

#[test]
fn metadata_limits() {
    let mut m = Map::new();
    for i in 0..16 {
        m.insert(format!("k{i}"), Value::from("v"));
    }
    assert_eq!(
        parse(json!({"model": "m", "metadata": m.clone()}))
            .unwrap()
            .metadata
            .len(),
        16
    );
    m.insert("k16".into(), Value::from("v"));
    assert_eq!(
        err(json!({"model": "m", "metadata": m})),
        "metadata: at most 16 keys, got 17"
    );
    let long_key = "k".repeat(65);
    assert_eq!(
        err(json!({"model": "m", "metadata": {long_key.clone(): "v"}})),
        format!("metadata: keys are at most 64 characters, '{long_key}' has 65")
    );
    assert!(parse(json!({"model": "m", "metadata": {"k".repeat(64): "v".repeat(512)}})).is_ok());
    assert_eq!(
        err(json!({"model": "m", "metadata": {"k": "é".repeat(513)}})),
        "metadata.k: at most 512 characters, got 513"
    );
}

#[test]
fn response_format_output_is_unchanged() {
    // The function moved from turn.rs keeps its exact output.
    assert_eq!(response_format(None).unwrap(), json!({"type": "text"}));
    assert_eq!(
        response_format(Some(&json!({"format": null}))).unwrap(),
        json!({"type": "text"})
    );
    assert_eq!(
        response_format(Some(&json!({"format": {"type": "json_schema", "name": "n",
            "schema": {"type": "object"}, "description": null, "strict": true}})))
        .unwrap(),
        json!({"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}, "strict": true}})
    );
    let o = parse(
        json!({"model": "m", "text": {"format": {"type": "json_schema", "name": "n",
        "schema": {"type": "object"}, "description": "d", "strict": null}}}),
    )
    .unwrap();
    assert_eq!(
        o.response_format().unwrap(),
        json!({"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object"}, "description": "d"}})
    );
    assert_eq!(
        o.text_echo(),
        json!({"format": {"type": "json_schema", "name": "n", "schema": {"type": "object"}, "description": "d", "strict": false}})
    );
}

#[test]
fn chat_params_only_what_was_given() {
    let o = parse(
        json!({"model": "m", "temperature": 0.2, "top_p": 0.5, "presence_penalty": 0.1,
        "frequency_penalty": 0.3, "max_output_tokens": 64, "parallel_tool_calls": false,
        "safety_identifier": "sid", "top_logprobs": 2, "reasoning": {"effort": "low"}}),
    )
    .unwrap();
    let params = Value::Object(o.chat_params(true));
    assert_eq!(
        params,
        json!({"temperature": 0.2, "top_p": 0.5, "presence_penalty": 0.1, "frequency_penalty": 0.3,
            "max_tokens": 64, "parallel_tool_calls": false, "user": "sid", "logprobs": true,
            "top_logprobs": 2, "reasoning_effort": "low"})
    );
    // No tools offered: no parallel_tool_calls.
    assert!(!o.chat_params(false).contains_key("parallel_tool_calls"));
    // `user` wins over `safety_identifier`.
    let o = parse(json!({"model": "m", "user": "u", "safety_identifier": "s"})).unwrap();
    assert_eq!(o.chat_params(false)["user"], "u");
    // top_logprobs 0 alone asks for nothing; the logprobs include asks for logprobs.
    let o = parse(json!({"model": "m", "top_logprobs": 0})).unwrap();
    assert!(o.chat_params(false).is_empty());
    let o = parse(json!({"model": "m", "top_logprobs": 0,
        "include": ["message.output_text.logprobs"]}))
    .unwrap();
    assert_eq!(
        Value::Object(o.chat_params(false)),
        json!({"logprobs": true, "top_logprobs": 0})
    );
}

// ---------------------------------------------------------------------------------------------
// tool_choice

fn choice(v: Value) -> Result<ToolChoice> {
    parse(json!({"model": "m", "tool_choice": v})).map(|o| o.tool_choice)
}

#[test]
fn tool_choice_parses_and_echoes() {
    let cases = [
        (json!("none"), ToolChoice::None, json!("none")),
        (json!("auto"), ToolChoice::Auto, json!("auto")),
        (json!("required"), ToolChoice::Required, json!("required")),
        (
            json!({"type": "function", "name": "f"}),
            ToolChoice::Function { name: "f".into() },
            json!({"type": "function", "name": "f"}),
        ),
        (
            json!({"type": "web_search_preview"}),
            ToolChoice::Hosted(HostedTool::WebSearch("web_search_preview".into())),
            json!({"type": "web_search_preview"}),
        ),
        (
            json!({"type": "file_search"}),
            ToolChoice::Hosted(HostedTool::FileSearch),
            json!({"type": "file_search"}),
        ),
        (
            json!({"type": "mcp", "server_label": "s"}),
            ToolChoice::Mcp {
                server_label: "s".into(),
                name: None,
            },
            json!({"type": "mcp", "server_label": "s"}),
        ),
        (
            json!({"type": "mcp", "server_label": "s", "name": "t"}),
            ToolChoice::Mcp {
                server_label: "s".into(),
                name: Some("t".into()),
            },
            json!({"type": "mcp", "server_label": "s", "name": "t"}),
        ),
        (
            json!({"type": "allowed_tools", "mode": "required", "tools": [
                {"type": "function", "name": "f"}, {"type": "mcp", "server_label": "s"},
                {"type": "web_search"}, {"type": "file_search"}]}),
            ToolChoice::AllowedTools {
                mode: AllowedMode::Required,
                tools: vec![
                    AllowedTool::Function { name: "f".into() },
                    AllowedTool::Mcp {
                        server_label: "s".into(),
                        name: None,
                    },
                    AllowedTool::Hosted(HostedTool::WebSearch("web_search".into())),
                    AllowedTool::Hosted(HostedTool::FileSearch),
                ],
            },
            json!({"type": "allowed_tools", "mode": "required", "tools": [
                {"type": "function", "name": "f"}, {"type": "mcp", "server_label": "s"},
                {"type": "web_search"}, {"type": "file_search"}]}),
        ),
    ];
    for (value, parsed, echo) in cases {
        let got = choice(value.clone()).unwrap();
        assert_eq!(got, parsed, "{value}");
        assert_eq!(got.echo(), echo, "{value}");
    }
    assert_eq!(ToolChoice::default().echo(), json!("auto"));
}

#[test]
fn tool_choice_errors_name_the_field() {
    let cases = [
        (json!("sometimes"), "tool_choice: unknown tool choice 'sometimes' (expected none, auto, required or an object)"),
        (json!(1), "tool_choice: must be a string or an object, got a number"),
        (json!({}), "tool_choice.type: is required"),
        (json!({"type": "function"}), "tool_choice.name: is required"),
        (json!({"type": "function", "name": 1}), "tool_choice.name: must be a string, got a number"),
        (json!({"type": "mcp"}), "tool_choice.server_label: is required"),
        (json!({"type": "code_interpreter"}), "tool_choice.type: unsupported tool choice type 'code_interpreter' (expected function, mcp, allowed_tools, web_search, web_search_preview or file_search)"),
        (json!({"type": "allowed_tools", "tools": [{"type": "function", "name": "f"}]}), "tool_choice.mode: is required"),
        (json!({"type": "allowed_tools", "mode": "none", "tools": []}), "tool_choice.mode: unknown mode 'none' (expected auto, required)"),
        (json!({"type": "allowed_tools", "mode": "auto", "tools": []}), "tool_choice.tools: must list at least one tool"),
        (json!({"type": "allowed_tools", "mode": "auto"}), "tool_choice.tools: is required"),
        (json!({"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function"}]}), "tool_choice.tools[0].name: is required"),
        (json!({"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "f"}, {"type": "shell"}]}), "tool_choice.tools[1].type: unsupported tool type 'shell' (expected function, mcp, web_search, web_search_preview or file_search)"),
    ];
    for (value, expected) in cases {
        assert_eq!(
            choice(value.clone()).unwrap_err().to_string(),
            expected,
            "{value}"
        );
    }
}

fn tools() -> Vec<Tool> {
    parse_tools(&json!([
        {"type": "function", "name": "f"},
        {"type": "web_search"},
        {"type": "file_search", "vector_store_ids": ["vs"]},
        {"type": "mcp", "server_label": "s", "server_url": "http://s"},
        {"type": "function", "name": "g"},
        {"type": "mcp", "server_label": "limited", "server_url": "http://l", "allowed_tools": ["x"]},
    ]))
    .unwrap()
}

fn names() -> Vec<Vec<String>> {
    let v = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    vec![
        v(&["f"]),
        v(&["web_search"]),
        v(&["knowledge_search"]),
        v(&["s1", "s2"]),
        v(&["g"]),
        v(&["x"]),
    ]
}

fn apply(v: Value) -> Result<ToolSelection> {
    choice(v).unwrap().apply(&tools(), &names())
}

fn forced(name: &str) -> Option<Value> {
    Some(json!({"type": "function", "function": {"name": name}}))
}

#[test]
fn tool_choice_apply() {
    // Flattened order: f, web_search, knowledge_search, s1, s2, g, x
    let all = vec![true; 7];
    let cases: Vec<(Value, Vec<bool>, Option<Value>)> = vec![
        (json!("none"), vec![false; 7], None),
        (json!("auto"), all.clone(), None),
        (json!("required"), all.clone(), Some(json!("required"))),
        (
            json!({"type": "function", "name": "g"}),
            all.clone(),
            forced("g"),
        ),
        (
            json!({"type": "web_search"}),
            all.clone(),
            forced("web_search"),
        ),
        (
            json!({"type": "file_search"}),
            all.clone(),
            forced("knowledge_search"),
        ),
        (
            json!({"type": "mcp", "server_label": "s"}),
            vec![false, false, false, true, true, false, false],
            Some(json!("required")),
        ),
        (
            json!({"type": "mcp", "server_label": "s", "name": "s2"}),
            vec![false, false, false, true, true, false, false],
            forced("s2"),
        ),
        (
            json!({"type": "allowed_tools", "mode": "auto", "tools": [
                {"type": "function", "name": "g"}, {"type": "mcp", "server_label": "s", "name": "s1"}]}),
            vec![false, false, false, true, false, true, false],
            None,
        ),
        (
            json!({"type": "allowed_tools", "mode": "required", "tools": [
                {"type": "file_search"}, {"type": "mcp", "server_label": "limited"}]}),
            vec![false, false, true, false, false, false, true],
            Some(json!("required")),
        ),
    ];
    for (value, offered, chat) in cases {
        let sel = apply(value.clone()).unwrap();
        assert_eq!(sel.offered, offered, "{value}");
        assert_eq!(sel.chat_tool_choice, chat, "{value}");
    }
    let sel = apply(json!({"type": "mcp", "server_label": "s"})).unwrap();
    let flat: Vec<String> = names().into_iter().flatten().collect();
    assert_eq!(
        sel.filter(flat.iter().map(String::as_str)),
        vec!["s1", "s2"]
    );
}

#[test]
fn tool_choice_static_and_dynamic_errors() {
    let t = tools();
    let static_cases = [
        (
            json!({"type": "function", "name": "nope"}),
            "tool_choice.name: no function tool named 'nope' in tools",
        ),
        (
            json!({"type": "mcp", "server_label": "other"}),
            "tool_choice.server_label: no mcp tool with server_label 'other' in tools",
        ),
        (
            json!({"type": "mcp", "server_label": "limited", "name": "y"}),
            "tool_choice.name: 'y' is not in the allowed_tools of MCP server 'limited'",
        ),
        (
            json!({"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "f"}, {"type": "function", "name": "h"}]}),
            "tool_choice.tools[1]: no function tool named 'h' in tools",
        ),
        (
            json!({"type": "allowed_tools", "mode": "auto", "tools": [{"type": "mcp", "server_label": "zzz"}]}),
            "tool_choice.tools[0].server_label: no mcp tool with server_label 'zzz' in tools",
        ),
    ];
    for (value, expected) in static_cases {
        let c = choice(value.clone()).unwrap();
        assert_eq!(
            c.check_static(&t).unwrap_err().to_string(),
            expected,
            "{value}"
        );
        // apply runs the same checks.
        assert_eq!(
            c.apply(&t, &names()).unwrap_err().to_string(),
            expected,
            "{value}"
        );
    }
    let only_function = parse_tools(&json!([{"type": "function", "name": "f"}])).unwrap();
    for (value, expected) in [
        (
            json!({"type": "web_search_preview"}),
            "tool_choice.type: no web_search tool in tools",
        ),
        (
            json!({"type": "file_search"}),
            "tool_choice.type: no file_search tool in tools",
        ),
        (
            json!({"type": "allowed_tools", "mode": "auto", "tools": [{"type": "file_search"}]}),
            "tool_choice.tools[0]: no file_search tool in tools",
        ),
    ] {
        let c = choice(value.clone()).unwrap();
        assert_eq!(
            c.check_static(&only_function).unwrap_err().to_string(),
            expected
        );
    }
    assert_eq!(
        ToolChoice::Required
            .check_static(&[])
            .unwrap_err()
            .to_string(),
        "tool_choice: is 'required' but the request has no tools"
    );
    // Known only after the listing: the server does not list the tool, or lists nothing.
    assert_eq!(
        apply(json!({"type": "mcp", "server_label": "s", "name": "s9"}))
            .unwrap_err()
            .to_string(),
        "tool_choice.name: MCP server 's' lists no tool named 's9'"
    );
    assert_eq!(
        apply(json!({"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "f"},
            {"type": "mcp", "server_label": "s", "name": "s9"}]}))
        .unwrap_err()
        .to_string(),
        "tool_choice.tools[1]: MCP server 's' lists no tool named 's9'"
    );
    let mut empty = names();
    empty[3].clear();
    assert_eq!(
        choice(json!({"type": "mcp", "server_label": "s"}))
            .unwrap()
            .apply(&t, &empty)
            .unwrap_err()
            .to_string(),
        "tool_choice.server_label: MCP server 's' listed no tools to choose from"
    );
    // Only an MCP server that listed nothing: "required" has nothing to call.
    let mcp_only =
        parse_tools(&json!([{"type": "mcp", "server_label": "s", "server_url": "http://s"}]))
            .unwrap();
    assert_eq!(
        ToolChoice::Required
            .apply(&mcp_only, &[vec![]])
            .unwrap_err()
            .to_string(),
        "tool_choice: requires a tool call but no tools are available"
    );
    // The names must line up with the tools: a driver bug, not the user's.
    assert!(matches!(
        ToolChoice::Auto.apply(&t, &[]),
        Err(CoreError::Protocol(_))
    ));
}
