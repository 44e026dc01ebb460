//! Building the book from fresh runs.
//!
//! The book shows only outputs of real runs. Each [`Figure`] names a lesson and
//! the overrides of one run; `pushpull book` runs them all and writes what they
//! produced under `book/src/generated/<name>/`:
//!
//! | file | what it holds |
//! |---|---|
//! | `command.txt` | the `pushpull run ...` command line that reproduces the figure |
//! | `report.txt` | the report, as `pushpull run` prints it |
//! | `report.json` | the report, as `--format json` prints it |
//! | `diagram.svg` | the space-time diagram of the figure's window |
//! | `trace.jsonl` | the first lines of the trace within the window |
//!
//! A [`Comparison`] does the same for `pushpull compare` (`command.txt` and
//! `compare.txt`). Chapters include these files (`{{#include ...}}`, `![](...)`);
//! nobody writes them by hand. The generated files are committed, and a test
//! (`tests/book.rs`) fails when a fresh run would write something else, so the
//! book cannot drift from the code.
//!
//! The catalogue is `figures.rs`; running it, `render.rs`; the "Try it"
//! panels' runs, `playground.rs` (`POST /api/run`), served by `serve.rs`
//! with the built book (`--serve`).

mod choosing;
mod figures;
pub mod playground;
mod render;
pub mod serve;

pub use figures::*;
pub use render::*;

use crate::run;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Every file under `dir`, as paths relative to `base`, sorted.
fn list_files(dir: &Path, base: &Path) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    if !dir.exists() {
        return Ok(out);
    }
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
            .path();
        if path.is_dir() {
            out.extend(list_files(&path, base)?);
        } else {
            out.push(path.strip_prefix(base).expect("under base").to_path_buf());
        }
    }
    out.sort();
    Ok(out)
}

/// Removes the empty directories under `dir` (not `dir` itself).
fn remove_empty_dirs(dir: &Path) -> Result<(), String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            remove_empty_dirs(&path)?;
            if std::fs::read_dir(&path).is_ok_and(|mut d| d.next().is_none()) {
                std::fs::remove_dir(&path)
                    .map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
            }
        }
    }
    Ok(())
}

fn source_dir(book_dir: &Path) -> PathBuf {
    book_dir.join("src")
}

/// Writes the generated files under `book_dir/src/generated` (leaving those
/// already up to date untouched) and deletes the ones no figure produces.
pub fn write_generated(book_dir: &Path) -> Result<(), String> {
    let src = source_dir(book_dir);
    let files = render_figures()?;
    let wanted: BTreeSet<&Path> = files.iter().map(|(p, _)| p.as_path()).collect();
    for old in list_files(&src.join(GENERATED_DIR), &src)? {
        if !wanted.contains(old.as_path()) {
            let path = src.join(&old);
            std::fs::remove_file(&path)
                .map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
        }
    }
    remove_empty_dirs(&src.join(GENERATED_DIR))?;
    for (rel, content) in &files {
        let path = src.join(rel);
        if std::fs::read(&path).is_ok_and(|old| old == content.as_bytes()) {
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(&path, content)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// What is out of date under `book_dir/src/generated`, one line per file:
/// `differs: path`, `missing: path` or `extra: path` (paths relative to the
/// book's `src`). Empty when the committed files are what fresh runs produce.
pub fn stale_generated(book_dir: &Path) -> Result<Vec<String>, String> {
    if !run::DETERMINISTIC {
        return Err(
            "built without --cfg tokio_unstable: runs are not reproducible, so the \
                    generated files cannot be checked"
                .into(),
        );
    }
    let src = source_dir(book_dir);
    // A debug build runs the simulation several times slower: it leaves the
    // closing chapter's 10,000-client runs to the release build's check
    // (CI runs both).
    let heavy = !cfg!(debug_assertions) || std::env::var_os("PUSHPULL_BOOK_HEAVY").is_some();
    let files = render_figures_with(heavy)?;
    let heavy_dir = Path::new(GENERATED_DIR).join(choosing::DIR);
    let mut stale = Vec::new();
    let mut wanted = BTreeSet::new();
    for (rel, content) in &files {
        wanted.insert(rel.clone());
        match std::fs::read(src.join(rel)) {
            Ok(old) if old == content.as_bytes() => {}
            Ok(_) => stale.push(format!("differs: {}", rel.display())),
            Err(_) => stale.push(format!("missing: {}", rel.display())),
        }
    }
    for old in list_files(&src.join(GENERATED_DIR), &src)? {
        if !wanted.contains(&old) && (heavy || !old.starts_with(&heavy_dir)) {
            stale.push(format!("extra: {}", old.display()));
        }
    }
    Ok(stale)
}

/// Builds the book at `book_dir` with mdBook, into `build_dir` if given (the
/// `build-dir` of `book.toml` otherwise), and returns the output directory.
pub fn build_book(book_dir: &Path, build_dir: Option<&Path>) -> Result<PathBuf, String> {
    let mut book = mdbook_driver::MDBook::load(book_dir)
        .map_err(|e| format!("cannot load the book at {}: {e:#}", book_dir.display()))?;
    if let Some(dir) = build_dir {
        book.config.build.build_dir = dir.to_path_buf();
    }
    book.build()
        .map_err(|e| format!("cannot build the book: {e:#}"))?;
    Ok(book.build_dir_for("html"))
}

/// Figures that no chapter mentions (by their `generated/<name>/` directory).
fn unused_figures(book_dir: &Path) -> Vec<&'static str> {
    let src = source_dir(book_dir);
    let mut text = String::new();
    for rel in list_files(&src, &src).unwrap_or_default() {
        if rel.extension().is_some_and(|e| e == "md") && !rel.starts_with(GENERATED_DIR) {
            text.push_str(&std::fs::read_to_string(src.join(rel)).unwrap_or_default());
        }
    }
    all_names()
        .filter(|name| !text.contains(&format!("{GENERATED_DIR}/{name}/")))
        .collect()
}

/// `pushpull book`: runs every figure, writes the generated files, builds
/// the book, and returns the directory of the built HTML (which the binary
/// serves with `--serve`).
pub fn build() -> Result<PathBuf, String> {
    let book = book_dir();
    if !book.join("book.toml").is_file() {
        return Err(format!(
            "no book at {}: run `pushpull book` from the source tree it was built from",
            book.display()
        ));
    }
    if !run::DETERMINISTIC {
        eprintln!(
            "warning: built without --cfg tokio_unstable: the figures may differ from run to run"
        );
    }
    let started = Instant::now();
    eprintln!(
        "running {} figures, {} comparisons and {} sweeps...",
        FIGURES.len(),
        COMPARISONS.len(),
        SWEEPS.len()
    );
    write_generated(&book)?;
    for name in unused_figures(&book) {
        eprintln!("note: no chapter uses the figure {name} ({GENERATED_DIR}/{name}/)");
    }
    let out = build_book(&book, None)?;
    println!(
        "built the book in {:.1} s: {}",
        started.elapsed().as_secs_f64(),
        out.join("index.html").display()
    );
    Ok(out)
}
