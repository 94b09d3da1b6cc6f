//! The layer rule of ARCHITECTURE.md, checked: a top-level module of
//! `src/` imports only from modules below it in [`LAYERS`], so there is no
//! import cycle and no arrow points up. A new module must be placed in the
//! list (the test fails until it is).

use std::collections::BTreeSet;
use std::path::Path;

/// Top-level modules of `src/`, lowest first.
const LAYERS: &[&str] = &[
    "trace",
    "error",
    "storage",
    "format",
    "fetch",
    "state",
    "scheme",
    "catalog",
    "group",
    "recover",
    "tier",
    "model",
    "checkpointer",
    "reader",
];

/// `crate::<module>` paths named by code (not comments, not unit tests).
fn imports(source: &str) -> BTreeSet<String> {
    let code = source.split("#[cfg(test)]").next().unwrap_or(source);
    let mut found = BTreeSet::new();
    for line in code.lines() {
        let line = line.trim_start();
        if line.starts_with("//") {
            continue;
        }
        for (at, _) in line.match_indices("crate::") {
            let name: String = line[at + 7..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_import_points_down_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        let first = relative.components().next().unwrap();
        let module = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        if module == "lib" {
            continue; // the root re-exports from every layer
        }
        let Some(level) = LAYERS.iter().position(|l| *l == module) else {
            violations.push(format!(
                "{module} (src/{}) is not in LAYERS",
                relative.display()
            ));
            continue;
        };
        for imported in imports(&std::fs::read_to_string(&file).unwrap()) {
            match LAYERS.iter().position(|l| *l == imported) {
                Some(to) if to <= level => {}
                Some(_) => violations.push(format!(
                    "src/{} ({module}) imports crate::{imported}, a layer above it",
                    relative.display()
                )),
                None => violations.push(format!(
                    "src/{} imports crate::{imported}, which is not in LAYERS",
                    relative.display()
                )),
            }
        }
    }
    assert!(
        violations.is_empty(),
        "layer rule broken:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_checker_sees_an_upward_import() {
    let found = imports("use crate::checkpointer::Committed;\n// use crate::model::X;\n");
    assert_eq!(found, BTreeSet::from(["checkpointer".to_owned()]));
}
