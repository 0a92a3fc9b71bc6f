use super::*;

fn sources() -> Vec<Source> {
    vec![
        Source {
            url: "https://example.org/a".into(),
            title: "A page".into(),
        },
        Source {
            url: "https://en.wikipedia.org/wiki/Rust_(language)/".into(),
            title: "Rust".into(),
        },
    ]
}

/// Feed `pieces`; the text (concatenated) and each citation as (start, end, url) in characters.
fn scan(pieces: &[&str]) -> (String, Vec<(usize, usize, String)>) {
    let mut scanner = LinkScanner::default();
    let sources = sources();
    let mut text = String::new();
    let mut cites = Vec::new();
    for piece in pieces {
        for linked in scanner.feed(piece, &sources) {
            match linked {
                Linked::Text(t) => text.push_str(&t),
                Linked::Cite { chars, source } => {
                    let end = text.chars().count();
                    cites.push((end - chars, end, source.url));
                }
            }
        }
    }
    (text, cites)
}

fn slice(text: &str, start: usize, end: usize) -> String {
    text.chars().skip(start).take(end - start).collect()
}

#[test]
fn a_cited_link_spans_its_characters() {
    let text = "Ça marche ([A page](https://example.org/a)). Also [Rust](https://en.wikipedia.org/wiki/Rust_(language)) é.";
    let (got, cites) = scan(&[text]);
    assert_eq!(got, text);
    assert_eq!(cites.len(), 2);
    assert_eq!(
        slice(text, cites[0].0, cites[0].1),
        "[A page](https://example.org/a)"
    );
    assert_eq!(cites[0].2, "https://example.org/a");
    assert_eq!(
        slice(text, cites[1].0, cites[1].1),
        "[Rust](https://en.wikipedia.org/wiki/Rust_(language))"
    );
    // The source's own URL (its trailing slash), not the link's.
    assert_eq!(cites[1].2, "https://en.wikipedia.org/wiki/Rust_(language)/");
}

#[test]
fn split_at_every_point_the_same() {
    let text = "See [x [A page](https://example.org/a) and [b](https://other.net/) [A](https://example.org/a).";
    let (whole, expected) = scan(&[text]);
    assert_eq!(whole, text);
    assert_eq!(expected.len(), 2);
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    for (i, _) in &chars {
        for (j, _) in &chars {
            if i >= j {
                continue;
            }
            let (got, cites) = scan(&[&text[..*i], &text[*i..*j], &text[*j..]]);
            assert_eq!(got, text, "{i} {j}");
            assert_eq!(cites, expected, "{i} {j}");
        }
    }
}

#[test]
fn only_links_to_search_results_are_citations() {
    for text in [
        "[A page](https://example.org/b)",
        "[A page] (https://example.org/a)",
        "[A\npage](https://example.org/a)",
        "[A page](https://example.org/a",
        "(https://example.org/a)",
        "https://example.org/a",
        "[A page](https://example.org/a and more)",
    ] {
        let (got, cites) = scan(&[text]);
        assert_eq!(got, text);
        assert!(cites.is_empty(), "{text}");
    }
    let (_, cites) = scan(&["[](https://example.org/a)"]);
    assert_eq!(cites, [(0, 25, "https://example.org/a".to_owned())]);
}
