//! Dependencies point one way. The crate is built in layers (the map at the
//! top of `src/lib.rs`): 5 the book, 4 the run, 3 the mechanisms, 2 the
//! simulated world beside the readers of the record (report, diagram), 1 the
//! trace, 0 parameters beside wire formats. A module may use a module of a
//! lower layer, or one of its own group; groups that share a layer do not
//! use each other (the world never reads the report, wire formats never read
//! parameters). This test reads every `crate::...` path in `src/` and fails
//! on one that points back up or sideways, so the next contributor keeps the
//! shape.

use std::path::{Path, PathBuf};

/// Each group of modules, by path prefix, with its layer (higher uses lower).
/// The longest matching prefix decides.
const LAYERS: &[(&str, u8)] = &[
    ("wire", 0),
    ("scenario", 0),
    ("record", 1),
    ("record::trace", 1),
    // The world and the readers of the record share a layer, so neither
    // may use the other: a run's report is computed from its trace only.
    ("record::report", 2),
    ("record::diagram", 2),
    ("record::chart", 2),
    ("world", 2),
    ("mechanisms", 3),
    ("run", 4),
    ("book", 5),
];

/// The group a module path belongs to: the longest matching prefix.
fn group_of(module: &str) -> Option<(&'static str, u8)> {
    LAYERS
        .iter()
        .filter(|(prefix, _)| module == *prefix || module.starts_with(&format!("{prefix}::")))
        .max_by_key(|(prefix, _)| prefix.len())
        .copied()
}

/// `src/world/conn.rs` -> `world::conn`; `src/record/diagram/mod.rs` ->
/// `record::diagram`.
fn module_of(file: &Path, src: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts.join("::")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `crate::a::b...` path in `text` (in `use` lines and in code), as
/// `a::b...`. `use crate::x::{a, b}` gives `x`, the module they live in;
/// `use crate::{x::a, y}` gives `x::a` and `y`.
fn crate_paths(text: &str) -> Vec<String> {
    let path_at = |rest: &str| -> String {
        let path: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        path.trim_end_matches(':').to_string()
    };
    let mut found = Vec::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        if let Some(inside) = rest.strip_prefix('{') {
            let inside = &inside[..inside.find('}').unwrap_or(inside.len())];
            found.extend(
                inside
                    .split(',')
                    .map(|p| path_at(p.trim()))
                    .filter(|p| !p.is_empty()),
            );
            continue;
        }
        let path = path_at(rest);
        if !path.is_empty() {
            found.push(path);
        }
    }
    found
}

/// The library's modules (the binary, under `src/bin/`, may use anything).
fn library_files() -> (PathBuf, Vec<PathBuf>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.retain(|f| !f.starts_with(src.join("bin")) && f != &src.join("lib.rs"));
    files.sort();
    (src, files)
}

/// Every library file belongs to a layer: a new folder must say where it sits.
#[test]
fn every_module_has_a_layer() {
    let (src, files) = library_files();
    for file in files {
        let module = module_of(&file, &src);
        assert!(
            group_of(&module).is_some(),
            "{module} ({}) is in no layer: add it to LAYERS here and to the map in src/lib.rs",
            file.display()
        );
    }
}

/// No module uses one of a higher layer, or another group of its own layer.
#[test]
fn dependencies_point_down() {
    let (src, files) = library_files();
    let mut wrong = Vec::new();
    for file in files {
        let module = module_of(&file, &src);
        let Some((group, layer)) = group_of(&module) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        for path in crate_paths(&text) {
            let Some((target_group, target_layer)) = group_of(&path) else {
                continue; // a crate-root item or a path into an unknown module
            };
            if target_group != group && target_layer >= layer {
                wrong.push(format!(
                    "{module} (layer {layer}) uses crate::{path} (layer {target_layer})"
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "dependencies that point back up or sideways:\n{}",
        wrong.join("\n")
    );
}

/// The checker itself: it would catch a cycle like the one this layout
/// removed (a mechanism's context living in the run that calls it).
#[test]
fn the_checker_sees_paths_and_layers() {
    assert_eq!(
        crate_paths("use crate::world::conn::{Conn, Label};\nlet x = crate::run::DETERMINISTIC;"),
        ["world::conn::", "run::DETERMINISTIC"].map(|p| p.trim_end_matches(':').to_string())
    );
    assert_eq!(
        group_of("record::diagram::svg"),
        Some(("record::diagram", 2))
    );
    assert_eq!(group_of("recordings"), None);
    assert_ne!(group_of("world::proxy"), group_of("record::report"));
    let (_, world) = group_of("world::context").unwrap();
    let (_, run) = group_of("run").unwrap();
    assert!(run > world, "the run may use the world, not the reverse");
}
