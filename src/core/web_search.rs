//! The hosted `web_search` tool's options (OpenAI's `WebSearchTool`: `filters.allowed_domains`,
//! `user_location`, `search_context_size`) and what the core makes of a search's results.
//!
//! The driver runs the search (`Action::InvokeTool`, with the options as `search_options` so a
//! backend can narrow its query) and answers with the backend's results as JSON text:
//! `{"query", "results": [{"title", "url", "content"}]}`. The core then keeps only results from the
//! allowed domains, as many as `search_context_size` allows, each snippet cut to its length
//! ([`ContextSize`]), and that is what the model reads (with [`CITE_INSTRUCTION`]); the URLs it read
//! are the search's `sources`. An answer in another shape is given to the model as it is (and has no
//! sources): llama-stack's search providers answer `{"query", "top_k": [...]}`, which llama-stack
//! passes to the model verbatim, and so does the core.

use serde_json::{json, Map, Value};

use super::error::{CoreError, Result};
use super::items::kind_of;

/// At most this many `allowed_domains` (OpenAI's limit).
pub const MAX_ALLOWED_DOMAINS: usize = 100;

/// `search_context_size`: how much of a search the model gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContextSize {
    Low,
    #[default]
    Medium,
    High,
}

impl ContextSize {
    pub fn as_str(self) -> &'static str {
        match self {
            ContextSize::Low => "low",
            ContextSize::Medium => "medium",
            ContextSize::High => "high",
        }
    }

    /// The results the model gets per search, at most.
    pub fn results(self) -> usize {
        match self {
            ContextSize::Low => 3,
            ContextSize::Medium => 5,
            ContextSize::High => 10,
        }
    }

    /// The characters of each result's snippet the model gets, at most.
    pub fn snippet_chars(self) -> usize {
        match self {
            ContextSize::Low => 400,
            ContextSize::Medium => 1000,
            ContextSize::High => 2000,
        }
    }
}

/// `user_location` (`type: "approximate"`); `country` an upper-case ISO 3166-1 alpha-2 code, or any
/// other string kept as given.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserLocation {
    pub city: Option<String>,
    pub country: Option<String>,
    pub region: Option<String>,
    pub timezone: Option<String>,
}

impl UserLocation {
    fn to_value(&self) -> Value {
        let s = |v: &Option<String>| v.as_deref().map_or(Value::Null, Value::from);
        json!({
            "type": "approximate",
            "city": s(&self.city),
            "country": s(&self.country),
            "region": s(&self.region),
            "timezone": s(&self.timezone),
        })
    }
}

/// A `web_search` tool's options, validated.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WebSearchOptions {
    /// Lower-case domain names; empty: every domain.
    pub allowed_domains: Vec<String>,
    pub user_location: Option<UserLocation>,
    pub search_context_size: ContextSize,
}

fn optional_string(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<String>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(CoreError::invalid(
            format!("{path}.{key}"),
            format!("must be a string, got {}", kind_of(other)),
        )),
    }
}

/// A domain name as `allowed_domains` takes it: labels of letters, digits, `-` and `_`, dot-separated.
fn parse_domain(value: &Value, path: &str) -> Result<String> {
    let Value::String(raw) = value else {
        return Err(CoreError::invalid(
            path,
            format!("must be a string, got {}", kind_of(value)),
        ));
    };
    let domain = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    let well_formed = !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        });
    if !well_formed {
        return Err(CoreError::invalid(
            path,
            format!("must be a domain name without scheme, port or path (e.g. example.com), got {raw:?}"),
        ));
    }
    Ok(domain)
}

fn parse_filters(value: Option<&Value>, path: &str) -> Result<Vec<String>> {
    let filters = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(f)) => f,
        Some(other) => {
            return Err(CoreError::invalid(
                path,
                format!("must be an object, got {}", kind_of(other)),
            ))
        }
    };
    let path = format!("{path}.allowed_domains");
    let domains = match filters.get("allowed_domains") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(domains)) => domains,
        Some(other) => {
            return Err(CoreError::invalid(
                path,
                format!("must be a list of domain names, got {}", kind_of(other)),
            ))
        }
    };
    if domains.len() > MAX_ALLOWED_DOMAINS {
        return Err(CoreError::invalid(
            path,
            format!(
                "at most {MAX_ALLOWED_DOMAINS} domains, got {}",
                domains.len()
            ),
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for (i, d) in domains.iter().enumerate() {
        let domain = parse_domain(d, &format!("{path}[{i}]"))?;
        if !out.contains(&domain) {
            out.push(domain);
        }
    }
    Ok(out)
}

fn parse_user_location(value: Option<&Value>, path: &str) -> Result<Option<UserLocation>> {
    let obj = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(o)) => o,
        Some(other) => {
            return Err(CoreError::invalid(
                path,
                format!("must be an object, got {}", kind_of(other)),
            ))
        }
    };
    if let Some(kind) = optional_string(obj, "type", path)? {
        if kind != "approximate" {
            return Err(CoreError::invalid(
                format!("{path}.type"),
                format!("must be 'approximate', got {kind:?}"),
            ));
        }
    }
    // An ISO 3166-1 alpha-2 code (as OpenAI documents it) is upper-cased, and the search backend may use
    // it; any other string is kept as given and only echoed (OGX's builtin accepts any string).
    let country = optional_string(obj, "country", path)?.map(|c| {
        if c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()) {
            c.to_ascii_uppercase()
        } else {
            c
        }
    });
    Ok(Some(UserLocation {
        city: optional_string(obj, "city", path)?,
        country,
        region: optional_string(obj, "region", path)?,
        timezone: optional_string(obj, "timezone", path)?,
    }))
}

/// Parse a `web_search` tool's options (`obj` is the tool; `path` names it, `tools[i]`).
pub fn parse_options(obj: &Map<String, Value>, path: &str) -> Result<WebSearchOptions> {
    let search_context_size = match optional_string(obj, "search_context_size", path)?.as_deref() {
        None | Some("medium") => ContextSize::Medium,
        Some("low") => ContextSize::Low,
        Some("high") => ContextSize::High,
        Some(other) => {
            return Err(CoreError::invalid(
                format!("{path}.search_context_size"),
                format!("must be one of low, medium or high, got {other:?}"),
            ))
        }
    };
    Ok(WebSearchOptions {
        allowed_domains: parse_filters(obj.get("filters"), &format!("{path}.filters"))?,
        user_location: parse_user_location(
            obj.get("user_location"),
            &format!("{path}.user_location"),
        )?,
        search_context_size,
    })
}

impl WebSearchOptions {
    /// The options as the response's `tools` echoes them (OpenAI's field names).
    pub fn echo_fields(&self) -> [(&'static str, Value); 3] {
        let filters = if self.allowed_domains.is_empty() {
            Value::Null
        } else {
            json!({"allowed_domains": self.allowed_domains})
        };
        let location = self
            .user_location
            .as_ref()
            .map_or(Value::Null, UserLocation::to_value);
        [
            ("filters", filters),
            (
                "search_context_size",
                Value::from(self.search_context_size.as_str()),
            ),
            ("user_location", location),
        ]
    }

    /// What the driver gets with each search (`Action::InvokeTool`'s `search_options`).
    pub fn to_driver(&self) -> Value {
        let size = self.search_context_size;
        json!({
            "allowed_domains": self.allowed_domains,
            "user_location": self.user_location.as_ref().map(UserLocation::to_value),
            "search_context_size": size.as_str(),
            "max_results": size.results(),
        })
    }

    /// Whether a result at `url` may reach the model: its host is an allowed domain or a subdomain
    /// of one (every URL, without `allowed_domains`; no URL without a host, with them).
    pub fn allows(&self, url: &str) -> bool {
        if self.allowed_domains.is_empty() {
            return true;
        }
        let Some(host) = host_of(url) else {
            return false;
        };
        self.allowed_domains.iter().any(|d| {
            host == *d
                || host
                    .strip_suffix(d.as_str())
                    .is_some_and(|rest| rest.ends_with('.'))
        })
    }
}

/// The lower-case host of an absolute URL (`scheme://[user@]host[:port]/...`).
pub fn host_of(url: &str) -> Option<String> {
    let (_, rest) = url.trim().split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    (!host.is_empty()).then_some(host)
}

/// What the model is asked, with the results: to cite as markdown links, which the core turns into
/// `url_citation` annotations (`url_citations.rs`).
pub const CITE_INSTRUCTION: &str = "Cite each result you use as a markdown link to its url, \
     e.g. [Title](https://example.com/page), right after the sentence that uses it. \
     Use only the urls above.";

/// A result the model read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub url: String,
    pub title: String,
}

/// A search's results as the model gets them.
#[derive(Debug, Clone, PartialEq)]
pub struct Shaped {
    /// The tool message.
    pub text: String,
    /// The results in it, in order.
    pub sources: Vec<Source>,
}

fn first_string<'a>(hit: &'a Map<String, Value>, keys: &[&str]) -> &'a str {
    keys.iter()
        .find_map(|k| hit.get(*k).and_then(Value::as_str))
        .unwrap_or("")
}

/// Filter and cut a search backend's answer (see the module doc); `None`: not in that shape.
pub fn shape_results(answer: &str, options: &WebSearchOptions) -> Option<Shaped> {
    let Ok(Value::Object(answer)) = serde_json::from_str::<Value>(answer) else {
        return None;
    };
    let listed = answer.get("results")?.as_array()?;
    let size = options.search_context_size;
    let mut results = Vec::new();
    let mut sources = Vec::new();
    for hit in listed {
        if results.len() == size.results() {
            break;
        }
        let Some(hit) = hit.as_object() else { continue };
        let Some(url) = hit.get("url").and_then(Value::as_str) else {
            continue;
        };
        if !options.allows(url) {
            continue;
        }
        let title = first_string(hit, &["title"]);
        let content: String = first_string(hit, &["content", "snippet", "description"])
            .chars()
            .take(size.snippet_chars())
            .collect();
        results.push(json!({"title": title, "url": url, "content": content}));
        sources.push(Source {
            url: url.to_owned(),
            title: title.to_owned(),
        });
    }
    let mut shaped = Map::new();
    if let Some(query) = answer.get("query").filter(|q| q.is_string()) {
        shaped.insert("query".into(), query.clone());
    }
    if !results.is_empty() {
        shaped.insert("instructions".into(), Value::from(CITE_INSTRUCTION));
    }
    shaped.insert("results".into(), Value::Array(results));
    Some(Shaped {
        text: Value::Object(shaped).to_string(),
        sources,
    })
}

#[cfg(test)]
#[path = "web_search_tests.rs"]
mod tests;
