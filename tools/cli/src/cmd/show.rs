//! `ckpt show`: a checkpoint's segments and the packs they need.

use super::{choose, print_json, scheme_label};
use crate::fail::Failure;
use crate::human::{self, Table};
use crate::store::{self, Location};
use ckpt::{CheckpointDetails, SegmentLayout};
use serde::Serialize;

/// A segment, as `--json` writes it.
#[derive(Serialize)]
struct Segment {
    name: String,
    kind: &'static str,
    type_name: Option<String>,
    logical_bytes: u64,
    stored_bytes: u64,
    chunks: usize,
    pages: Option<u64>,
    elem_size: Option<u32>,
    elements: Option<u64>,
    packs: Vec<String>,
}

/// A pack, as `--json` writes it.
#[derive(Serialize)]
struct Pack {
    key: String,
    chunks: usize,
    bytes: u64,
}

/// The whole document.
#[derive(Serialize)]
struct Document {
    key: String,
    seq: u64,
    step: u64,
    scheme: Option<String>,
    chain_len: u32,
    logical_bytes: u64,
    stored_bytes: u64,
    segments: Vec<Segment>,
    packs: Vec<Pack>,
}

/// Runs `ckpt show`.
pub fn run(location: &Location, step: u64, json: bool) -> Result<(), Failure> {
    let storage = location.read()?;
    let reader = store::reader(&storage, None)?;
    let chosen = choose(&reader.list()?, Some(step))?;
    let details = reader.details(&chosen.key)?;
    let document = document(&details);
    if json {
        return print_json(&document);
    }
    println!(
        "step {} (seq {}), {}: {} logical, {} stored by this checkpoint, {} pack(s) needed\n{}",
        document.step,
        document.seq,
        scheme_label(&details.info),
        human::bytes(document.logical_bytes),
        human::bytes(document.stored_bytes),
        document.packs.len(),
        document.key
    );
    let mut t = Table::new(&[
        "segment", "kind", "logical", "stored", "chunks", "pages", "packs", "type",
    ]);
    for s in &document.segments {
        t.row(vec![
            s.name.clone(),
            s.kind.to_owned(),
            human::bytes(s.logical_bytes),
            human::bytes(s.stored_bytes),
            s.chunks.to_string(),
            s.pages.map_or_else(|| "-".to_owned(), |p| p.to_string()),
            s.packs.len().to_string(),
            s.type_name.clone().unwrap_or_default(),
        ]);
    }
    println!("\n{}", t.render());
    let mut t = Table::new(&["pack", "chunks", "bytes"]);
    for p in &document.packs {
        t.row(vec![
            p.key.clone(),
            p.chunks.to_string(),
            human::bytes(p.bytes),
        ]);
    }
    print!("{}", t.render());
    Ok(())
}

fn document(details: &CheckpointDetails) -> Document {
    let info = &details.info;
    Document {
        key: info.key.clone(),
        seq: info.seq,
        step: info.step,
        scheme: info.scheme.map(|s| s.to_string()),
        chain_len: info.chain_len,
        logical_bytes: info.logical_bytes,
        stored_bytes: info.stored_bytes,
        segments: details
            .segments
            .iter()
            .map(|s| {
                let (kind, elem_size, elements) = match s.layout {
                    SegmentLayout::Paged { elem_size, len, .. } => {
                        ("paged", Some(elem_size), Some(len))
                    }
                    _ => ("serde", None, None),
                };
                Segment {
                    name: s.name.clone(),
                    kind,
                    type_name: s.type_name.clone(),
                    logical_bytes: s.logical_bytes,
                    stored_bytes: s.stored_bytes,
                    chunks: s.chunks,
                    // One chunk per page.
                    pages: (kind == "paged").then_some(s.chunks as u64),
                    elem_size,
                    elements,
                    packs: s.packs.clone(),
                }
            })
            .collect(),
        packs: details
            .packs
            .iter()
            .map(|p| Pack {
                key: p.key.clone(),
                chunks: p.chunks,
                bytes: p.bytes,
            })
            .collect(),
    }
}
