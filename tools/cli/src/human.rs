//! Numbers as people read them (sizes, ages, ratios) and plain-text
//! tables with aligned columns.

use std::time::{Duration, SystemTime};

/// `bytes` in binary units: `512 B`, `1.5 KiB`, `3.0 GiB`.
pub fn bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    match (unit, UNITS.get(unit)) {
        (0, _) => format!("{bytes} B"),
        (_, Some(name)) => format!("{value:.1} {name}"),
        (_, None) => format!("{bytes} B"),
    }
}

/// How long ago `then` was, coarsely: `42s`, `5m`, `3h`, `2d`; `future`
/// for a clock that disagrees.
pub fn age(then: SystemTime, now: SystemTime) -> String {
    match now.duration_since(then) {
        Ok(elapsed) => duration(elapsed),
        Err(_) => "future".to_owned(),
    }
}

/// A duration, coarsely: `850ms`, `42s`, `5m`, `3h`, `2d`.
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0 => format!("{}ms", d.as_millis()),
        1..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}

/// A precise duration for model costs: `12.3ms`, `1.25s`.
pub fn seconds(secs: f64) -> String {
    if !secs.is_finite() {
        return "-".to_owned();
    }
    if secs.abs() < 1.0 {
        format!("{:.1}ms", secs * 1e3)
    } else {
        format!("{secs:.2}s")
    }
}

/// Logical over stored bytes, `3.2x`; `-` when nothing was stored.
pub fn ratio(logical: u64, stored: u64) -> String {
    match compression(logical, stored) {
        Some(r) => format!("{r:.1}x"),
        None => "-".to_owned(),
    }
}

/// Logical over stored bytes, when something was stored.
pub fn compression(logical: u64, stored: u64) -> Option<f64> {
    (stored > 0).then(|| logical as f64 / stored as f64)
}

/// A table printed with its columns aligned: text left, numbers right.
pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with these column names.
    pub fn new(header: &[&'static str]) -> Self {
        Table {
            header: header.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (as many cells as columns).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text, one line per row after the header.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.len()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let numeric: Vec<bool> = (0..self.header.len())
            .map(|c| {
                !self.rows.is_empty()
                    && self.rows.iter().all(|r| {
                        r.get(c).is_some_and(|cell| {
                            cell.starts_with(|ch: char| ch.is_ascii_digit()) || cell == "-"
                        })
                    })
            })
            .collect();
        let line = |cells: Vec<String>| {
            let mut out = String::new();
            for ((cell, width), right) in cells.iter().zip(&widths).zip(&numeric) {
                if !out.is_empty() {
                    out.push_str("  ");
                }
                if *right {
                    out.push_str(&format!("{cell:>width$}"));
                } else {
                    out.push_str(&format!("{cell:<width$}"));
                }
            }
            out.trim_end().to_owned() + "\n"
        };
        let mut text = line(self.header.iter().map(|h| h.to_string()).collect());
        for row in &self.rows {
            text.push_str(&line(row.clone()));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_as_people_write_them() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
        assert_eq!(duration(Duration::from_millis(850)), "850ms");
        assert_eq!(duration(Duration::from_secs(300)), "5m");
        assert_eq!(duration(Duration::from_secs(2 * 86400 + 5)), "2d");
        assert_eq!(ratio(300, 100), "3.0x");
        assert_eq!(ratio(300, 0), "-");
        assert_eq!(seconds(0.0123), "12.3ms");
    }

    #[test]
    fn tables_align_numbers_right_and_text_left() {
        let mut t = Table::new(&["seq", "scheme"]);
        t.row(vec!["1".into(), "full".into()]);
        t.row(vec!["10".into(), "incremental".into()]);
        assert_eq!(t.render(), "seq  scheme\n  1  full\n 10  incremental\n");
    }
}
