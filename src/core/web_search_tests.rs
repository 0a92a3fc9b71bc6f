use serde_json::{json, Value};

use super::*;
use crate::core::CoreError;

fn parse(tool: Value) -> Result<WebSearchOptions> {
    parse_options(tool.as_object().unwrap(), "tools[2]")
}

fn refused(tool: Value) -> (String, String) {
    match parse(tool) {
        Err(CoreError::InvalidInput { field, message }) => (field, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn options_default_to_medium_and_no_filter() {
    let options = parse(json!({"type": "web_search"})).unwrap();
    assert_eq!(options, WebSearchOptions::default());
    assert_eq!(options.search_context_size, ContextSize::Medium);
    let nulls = json!({"type": "web_search", "filters": null, "user_location": null,
                       "search_context_size": null});
    assert_eq!(parse(nulls).unwrap(), WebSearchOptions::default());
    let empty = json!({"type": "web_search", "filters": {"allowed_domains": null}});
    assert_eq!(parse(empty).unwrap(), WebSearchOptions::default());
}

#[test]
fn options_parse_in_full() {
    let options = parse(json!({
        "type": "web_search",
        "filters": {"allowed_domains": ["Example.ORG", "docs.rs.", "example.org"]},
        "user_location": {"type": "approximate", "city": "Lyon", "country": "fr",
                          "region": "Auvergne-Rhône-Alpes", "timezone": "Europe/Paris"},
        "search_context_size": "high",
    }))
    .unwrap();
    assert_eq!(options.allowed_domains, ["example.org", "docs.rs"]);
    assert_eq!(options.search_context_size, ContextSize::High);
    let location = options.user_location.clone().unwrap();
    assert_eq!(location.country.as_deref(), Some("FR"));
    assert_eq!(location.city.as_deref(), Some("Lyon"));
    // Not a two-letter code: kept as given (OGX's builtin accepts any string), only echoed.
    let named =
        parse(json!({"type": "web_search", "user_location": {"country": "Germany"}})).unwrap();
    assert_eq!(
        named.user_location.and_then(|l| l.country).as_deref(),
        Some("Germany")
    );
    let echoed: Map<String, Value> = options
        .echo_fields()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    assert_eq!(
        Value::Object(echoed),
        json!({
            "filters": {"allowed_domains": ["example.org", "docs.rs"]},
            "search_context_size": "high",
            "user_location": {"type": "approximate", "city": "Lyon", "country": "FR",
                              "region": "Auvergne-Rhône-Alpes", "timezone": "Europe/Paris"},
        })
    );
    assert_eq!(
        options.to_driver(),
        json!({
            "allowed_domains": ["example.org", "docs.rs"],
            "search_context_size": "high",
            "max_results": 10,
            "user_location": {"type": "approximate", "city": "Lyon", "country": "FR",
                              "region": "Auvergne-Rhône-Alpes", "timezone": "Europe/Paris"},
        })
    );
    // A location without fields is allowed (OpenAI: "to avoid the fallback to the US").
    let bare = parse(json!({"type": "web_search", "user_location": {"type": "approximate"}}));
    assert_eq!(bare.unwrap().user_location, Some(UserLocation::default()));
}

#[test]
fn bad_options_name_their_field() {
    let cases = [
        (json!({"filters": "example.org"}), "tools[2].filters"),
        (
            json!({"filters": {"allowed_domains": "example.org"}}),
            "tools[2].filters.allowed_domains",
        ),
        (
            json!({"filters": {"allowed_domains": ["ok.org", 7]}}),
            "tools[2].filters.allowed_domains[1]",
        ),
        (
            json!({"filters": {"allowed_domains": ["https://example.org"]}}),
            "tools[2].filters.allowed_domains[0]",
        ),
        (
            json!({"filters": {"allowed_domains": ["example.org/path"]}}),
            "tools[2].filters.allowed_domains[0]",
        ),
        (
            json!({"filters": {"allowed_domains": ["example.org:8080"]}}),
            "tools[2].filters.allowed_domains[0]",
        ),
        (
            json!({"filters": {"allowed_domains": [""]}}),
            "tools[2].filters.allowed_domains[0]",
        ),
        (
            json!({"filters": {"allowed_domains": ["a..b"]}}),
            "tools[2].filters.allowed_domains[0]",
        ),
        (json!({"user_location": "Paris"}), "tools[2].user_location"),
        (
            json!({"user_location": {"type": "exact"}}),
            "tools[2].user_location.type",
        ),
        (
            json!({"user_location": {"country": 33}}),
            "tools[2].user_location.country",
        ),
        (
            json!({"user_location": {"city": 3}}),
            "tools[2].user_location.city",
        ),
        (
            json!({"user_location": {"timezone": []}}),
            "tools[2].user_location.timezone",
        ),
        (
            json!({"search_context_size": "huge"}),
            "tools[2].search_context_size",
        ),
        (
            json!({"search_context_size": 3}),
            "tools[2].search_context_size",
        ),
    ];
    for (tool, field) in cases {
        let (got, message) = refused(tool.clone());
        assert_eq!(got, field, "{tool}: {message}");
    }
    let many: Vec<String> = (0..101).map(|i| format!("d{i}.org")).collect();
    let (field, message) = refused(json!({"filters": {"allowed_domains": many}}));
    assert_eq!(field, "tools[2].filters.allowed_domains");
    assert!(message.contains("at most 100"), "{message}");
}

#[test]
fn allowed_domains_take_their_subdomains_only() {
    let options =
        parse(json!({"filters": {"allowed_domains": ["example.org", "docs.rs"]}})).unwrap();
    for url in [
        "https://example.org/a",
        "http://EXAMPLE.org:8080/x?y",
        "https://news.example.org",
        "https://a.b.example.org/",
        "https://user@docs.rs/serde",
        "https://example.org./trailing-dot",
    ] {
        assert!(options.allows(url), "{url}");
    }
    for url in [
        "https://notexample.org/",
        "https://example.org.evil.com/",
        "https://evil.com/example.org",
        "https://evil.com/?u=https://example.org",
        "https://example.com/",
        "example.org/no-scheme",
        "",
    ] {
        assert!(!options.allows(url), "{url}");
    }
    assert!(WebSearchOptions::default().allows("anything"));
    assert_eq!(host_of("http://[::1]:80/x").as_deref(), Some("::1"));
}

fn answer(n: usize) -> String {
    let results: Vec<Value> = (1..=n)
        .map(|i| {
            let host = if i % 2 == 0 {
                "docs.example.org"
            } else {
                "other.net"
            };
            json!({"title": format!("T{i}"), "url": format!("https://{host}/{i}"),
                   "content": "x".repeat(3000), "engine": "e"})
        })
        .collect();
    json!({"query": "q", "results": results}).to_string()
}

#[test]
fn the_context_size_caps_results_and_snippets() {
    for (size, results, chars) in [("low", 3, 400), ("medium", 5, 1000), ("high", 10, 2000)] {
        let options = parse(json!({"search_context_size": size})).unwrap();
        let shaped = shape_results(&answer(30), &options).unwrap();
        let text: Value = serde_json::from_str(&shaped.text).unwrap();
        assert_eq!(text["query"], "q");
        assert_eq!(text["instructions"], CITE_INSTRUCTION);
        let got = text["results"].as_array().unwrap();
        assert_eq!(got.len(), results, "{size}");
        assert!(got
            .iter()
            .all(|r| r["content"].as_str().unwrap().chars().count() == chars));
        assert_eq!(
            got[0],
            json!({"title": "T1", "url": "https://other.net/1", "content": "x".repeat(chars)})
        );
        let urls: Vec<&str> = shaped.sources.iter().map(|s| s.url.as_str()).collect();
        let expected: Vec<String> = (1..=results)
            .map(|i| {
                let host = if i % 2 == 0 {
                    "docs.example.org"
                } else {
                    "other.net"
                };
                format!("https://{host}/{i}")
            })
            .collect();
        assert_eq!(urls, expected);
    }
}

#[test]
fn only_allowed_results_reach_the_model() {
    let options = parse(json!({"filters": {"allowed_domains": ["example.org"]},
                              "search_context_size": "low"}))
    .unwrap();
    let shaped = shape_results(&answer(30), &options).unwrap();
    let urls: Vec<&str> = shaped.sources.iter().map(|s| s.url.as_str()).collect();
    assert_eq!(
        urls,
        [
            "https://docs.example.org/2",
            "https://docs.example.org/4",
            "https://docs.example.org/6"
        ]
    );
    assert_eq!(shaped.sources[0].title, "T2");
    assert!(!shaped.text.contains("other.net"));
    // Nothing allowed: an empty list, not the unfiltered answer.
    let none = parse(json!({"filters": {"allowed_domains": ["nowhere.test"]}})).unwrap();
    let shaped = shape_results(&answer(5), &none).unwrap();
    assert!(shaped.sources.is_empty());
    assert_eq!(
        serde_json::from_str::<Value>(&shaped.text).unwrap(),
        json!({"query": "q", "results": []})
    );
}

#[test]
fn other_answers_pass_as_they_are() {
    let options = WebSearchOptions::default();
    assert_eq!(shape_results("plain text", &options), None);
    assert_eq!(shape_results("[1, 2]", &options), None);
    assert_eq!(shape_results(r#"{"answer": "x"}"#, &options), None);
    // llama-stack's search providers answer `top_k`, passed on verbatim as llama-stack does.
    let top_k = json!({"query": "q", "top_k": [{"title": "a", "content": "c"}]});
    assert_eq!(shape_results(&top_k.to_string(), &options), None);
    // Hits that are not objects or have no URL are skipped.
    let results = json!({"query": "q", "results": [{"title": "a", "url": "https://a.org", "content": "c"},
                                                   {"title": "no url"}, "junk"]});
    let shaped = shape_results(&results.to_string(), &options).unwrap();
    assert_eq!(
        shaped.sources,
        [Source {
            url: "https://a.org".into(),
            title: "a".into()
        }]
    );
}
