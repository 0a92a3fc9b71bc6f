use super::*;

fn files() -> CitationFiles {
    let mut f = CitationFiles::default();
    f.add("file-abc", "llamas.txt");
    f.add("file-x_2", "alpacas.md");
    f
}

/// The text and the citations (with their character index in the text) that `pieces` make.
fn run(pieces: &[&str]) -> (String, Vec<(String, usize)>) {
    let files = files();
    let mut stream = CitationStream::default();
    let mut text = String::new();
    let mut cites = Vec::new();
    let mut take = |out: Vec<Cited>, text: &mut String| {
        for c in out {
            match c {
                Cited::Text(t) => text.push_str(&t),
                Cited::Cite(id) => cites.push((id, text.chars().count())),
            }
        }
    };
    for p in pieces {
        let out = stream.feed(p, &files);
        take(out, &mut text);
    }
    if let Some(rest) = stream.finish() {
        text.push_str(&rest);
    }
    (text, cites)
}

#[test]
fn markers_of_known_files_become_citations_and_leave_the_text() {
    let (text, cites) = run(&["Llamas hum <|file-abc|>. Alpacas [file-x_2] spit (file-abc)."]);
    assert_eq!(text, "Llamas hum. Alpacas spit.");
    assert_eq!(
        cites,
        vec![
            ("file-abc".to_owned(), 10),
            ("file-x_2".to_owned(), 19),
            ("file-abc".to_owned(), 24)
        ]
    );
}

#[test]
fn unknown_or_malformed_markers_stay_text() {
    let raw = "See <|file-zzz|> and [file-] and (file-abc and <b> [x] (y) <|file-abc| done";
    let (text, cites) = run(&[raw]);
    assert_eq!(text, raw);
    assert!(cites.is_empty());
}

#[test]
fn a_marker_split_anywhere_is_still_found() {
    let whole = "Fact é <|file-abc|>. More (file-x_2)! End [file-abc]";
    let expected = run(&[whole]);
    assert_eq!(expected.0, "Fact é. More! End");
    let chars: Vec<char> = whole.chars().collect();
    // Every two cut points: covers a split inside every marker, its opener, its prefix and its closer.
    for a in 0..=chars.len() {
        for b in a..=chars.len() {
            let p1: String = chars[..a].iter().collect();
            let p2: String = chars[a..b].iter().collect();
            let p3: String = chars[b..].iter().collect();
            assert_eq!(run(&[&p1, &p2, &p3]), expected, "split {a}/{b}");
        }
    }
}

#[test]
fn withheld_text_is_released_by_the_next_piece_or_the_end() {
    let files = files();
    let mut stream = CitationStream::default();
    assert_eq!(
        stream.feed("a (fi", &files),
        vec![Cited::Text("a".to_owned())]
    );
    assert_eq!(
        stream.feed("sh) ", &files),
        vec![Cited::Text(" (fish)".to_owned())]
    );
    assert_eq!(stream.finish(), Some(" ".to_owned()));
    assert_eq!(stream.finish(), None);
}

#[test]
fn citation_files_keep_their_first_place() {
    let mut f = CitationFiles::default();
    f.add("file-b", "b");
    f.add("file-a", "a");
    f.add("file-b", "other");
    f.add("", "nameless");
    assert_eq!(f.top(), Some(("file-b", "b")));
    assert_eq!(f.filename("file-a"), Some("a"));
    assert_eq!(
        f.annotation("file-a", 3),
        Some(json!({"type": "file_citation", "file_id": "file-a", "filename": "a", "index": 3}))
    );
    assert_eq!(f.annotation("file-c", 3), None);
}

#[test]
fn the_search_text_asks_for_citations_only_when_there_are_results() {
    let results = vec![
        json!({"file_id": "file-abc", "score": 0.5, "attributes": {"k": "v"}, "text": "Llamas hum."}),
    ];
    let text = ogx_search_text(&results, "llamas");
    assert!(
        text.starts_with("file_search tool found 1 chunks:\nBEGIN of file_search tool results.\n")
    );
    assert!(text.contains("[1] document_id: file-abc, score: 0.5, attributes: {\"k\":\"v\"} cite as <|file-abc|>\nLlamas hum.\n"));
    assert!(text.contains("query: \"llamas\""));
    assert!(text.contains("using `<|file-id|>` format"));
    assert!(!ogx_search_text(&[], "q").contains("<|file-id|>"));
}
