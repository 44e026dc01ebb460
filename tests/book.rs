//! The book's consistency checks: its generated files are what fresh runs
//! produce, and everything a chapter includes or links to exists.

use pushpull::book;
use std::path::{Path, PathBuf};

fn book_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("book")
}

/// Every Markdown file under `dir`, recursively.
fn markdown_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(markdown_files(&path));
        } else if path.extension().is_some_and(|e| e == "md") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The `{{#type argument}}` expressions of a chapter, as mdBook finds them
/// (escaped ones, `\{{#...}}`, are left out): (type, first argument).
fn book_links(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let escaped = rest[..start].ends_with('\\');
        let after = &rest[start + 2..];
        rest = after;
        if escaped {
            continue;
        }
        let Some(body) = after.trim_start().strip_prefix('#') else {
            continue;
        };
        let Some(end) = body.find("}}") else {
            continue;
        };
        let inner = &body[..end];
        if inner.contains('}') {
            continue;
        }
        let mut words = inner.split_whitespace();
        let (Some(kind), Some(arg)) = (words.next(), words.next()) else {
            continue;
        };
        out.push((kind.to_string(), arg.to_string()));
    }
    out
}

/// Whether `text` has a line with `marker` (`ANCHOR:` or `ANCHOR_END:`)
/// followed by exactly `name`.
fn has_anchor(text: &str, marker: &str, name: &str) -> bool {
    text.lines().any(|line| {
        line.match_indices(marker).any(|(i, _)| {
            let after = line[i + marker.len()..].trim_start();
            let word: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
                .collect();
            word == name
        })
    })
}

#[test]
fn book_figures_match_fresh_runs() {
    let stale = book::stale_generated(&book_dir()).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        stale.is_empty(),
        "the book's generated files are out of date (under book/src/):\n  {}\n\
         run `cargo run --release -- book` to regenerate, and commit the result",
        stale.join("\n  ")
    );
}

#[test]
fn includes_name_existing_files_and_anchors() {
    let src = book_dir().join("src");
    let mut problems = Vec::new();
    for chapter in markdown_files(&src) {
        let text = std::fs::read_to_string(&chapter).unwrap();
        let base = chapter.parent().unwrap();
        let shown = chapter.strip_prefix(&src).unwrap().display().to_string();
        for (kind, arg) in book_links(&text) {
            if !matches!(kind.as_str(), "include" | "rustdoc_include" | "playground") {
                continue;
            }
            let (file, selector) = match arg.split_once(':') {
                Some((f, s)) if kind != "playground" => (f, Some(s)),
                _ => (arg.as_str(), None),
            };
            let path = base.join(file);
            let Ok(content) = std::fs::read_to_string(&path) else {
                problems.push(format!("{shown}: {{{{#{kind} {arg}}}}}: no file {file}"));
                continue;
            };
            // `path:anchor`, as opposed to `path:10`, `path:10:20`, `path::20`.
            let first = selector.and_then(|s| s.split(':').next()).unwrap_or("");
            if !first.is_empty() && first.parse::<usize>().is_err() {
                for marker in ["ANCHOR:", "ANCHOR_END:"] {
                    if !has_anchor(&content, marker, first) {
                        problems.push(format!(
                            "{shown}: {{{{#{kind} {arg}}}}}: no `{marker} {first}` in {file}"
                        ));
                    }
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "broken includes:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn local_links_and_images_exist() {
    let src = book_dir().join("src");
    let mut problems = Vec::new();
    for chapter in markdown_files(&src) {
        let text = std::fs::read_to_string(&chapter).unwrap();
        let base = chapter.parent().unwrap();
        let shown = chapter.strip_prefix(&src).unwrap().display().to_string();
        for (i, _) in text.match_indices("](") {
            let rest = &text[i + 2..];
            let Some(end) = rest.find([')', ' ', '\n']) else {
                continue;
            };
            let target = rest[..end].split('#').next().unwrap_or("");
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            if !base.join(target).exists() {
                problems.push(format!("{shown}: link to {target}: no such file"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "broken links:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn link_parsing() {
    let text =
        "a {{#include x.txt}} b \\{{#include no.txt}} {{ #include y.rs:server }} {{#title T}}";
    assert_eq!(
        book_links(text),
        vec![
            ("include".to_string(), "x.txt".to_string()),
            ("include".to_string(), "y.rs:server".to_string()),
            ("title".to_string(), "T".to_string()),
        ]
    );
    assert!(has_anchor(
        "// ANCHOR: server\nfn x() {}\n// ANCHOR_END: server",
        "ANCHOR:",
        "server"
    ));
    assert!(!has_anchor("// ANCHOR: server_loop", "ANCHOR:", "server"));
}

#[test]
fn the_book_builds() {
    let out = std::env::temp_dir().join(format!("pushpull-book-build-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let built = book::build_book(&book_dir(), Some(&out)).unwrap_or_else(|e| panic!("{e}"));
    assert!(built.join("index.html").is_file());
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn comparisons_render() {
    // `COMPARISONS` may be empty for now: check that the path works anyway.
    let files = book::render_comparison(&book::Comparison {
        name: "test/compare",
        lesson: "short_polling",
        overrides: &["duration=1m"],
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<String> = files.iter().map(|(p, _)| p.display().to_string()).collect();
    assert_eq!(
        names,
        [
            "generated/test/compare/command.txt",
            "generated/test/compare/compare.txt"
        ]
    );
    assert_eq!(
        files[0].1,
        "pushpull compare short_polling --set duration=1m\n"
    );
    assert!(files[1].1.contains("short_polling"), "{}", files[1].1);
}
