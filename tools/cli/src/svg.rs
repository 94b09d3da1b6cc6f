//! Hand-made SVG charts for `ckpt report`: a few scatter, line and step
//! series on linear or log axes, confidence bands, and vertical markers,
//! each series a `<g data-series="...">` so that tests (and readers of
//! the page's source) can find it. No script, no external reference:
//! points carry native `<title>` tooltips.
//!
//! Hand-made rather than a crate: `plotters` (and its SVG backend) is a
//! heavy dependency for a few charts, and the small SVG crates only build
//! elements, which `format!` does as well; scales, ticks and bands are
//! what a chart needs, and they are a few dozen lines.

use std::fmt::Write;

/// How a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Filled dots.
    Dots,
    /// Hollow rings (a second measure beside dots).
    Rings,
    /// A polyline.
    Line,
    /// A step line: each value holds until the next.
    Step,
}

/// One series: its id (the `data-series` attribute), legend label,
/// colour, mark, and points (x, y, tooltip).
#[derive(Debug, Clone)]
pub struct Series {
    pub id: String,
    pub label: String,
    pub color: &'static str,
    pub mark: Mark,
    pub points: Vec<(f64, f64, String)>,
}

/// A shaded band between `lower` and `upper` at each x.
#[derive(Debug, Clone)]
pub struct Band {
    pub id: String,
    pub color: &'static str,
    /// (x, lower, upper).
    pub points: Vec<(f64, f64, f64)>,
}

/// Vertical markers at the given x (with tooltips), one group per id.
#[derive(Debug, Clone)]
pub struct Markers {
    pub id: String,
    pub label: String,
    pub color: &'static str,
    pub at: Vec<(f64, String)>,
}

/// A chart's axes and contents.
#[derive(Debug, Clone, Default)]
pub struct Chart {
    pub x_label: String,
    pub y_label: String,
    pub log_x: bool,
    pub log_y: bool,
    pub series: Vec<Series>,
    pub bands: Vec<Band>,
    pub markers: Vec<Markers>,
}

const WIDTH: f64 = 1000.0;
const HEIGHT: f64 = 280.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 44.0;

/// Escapes text for XML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A number in few characters: `0.25`, `12`, `35k`, `2.1M`, `1e-5`.
pub fn short(v: f64) -> String {
    let a = v.abs();
    let (scaled, suffix) = match a {
        _ if a >= 1e9 => (v / 1e9, "G"),
        _ if a >= 1e6 => (v / 1e6, "M"),
        _ if a >= 1e4 => (v / 1e3, "k"),
        _ => (v, ""),
    };
    if a != 0.0 && a < 1e-3 {
        return format!("{v:.0e}");
    }
    let digits = format!("{scaled:.4}");
    let digits = digits.trim_end_matches('0').trim_end_matches('.');
    format!("{digits}{suffix}")
}

/// One axis: data range to pixels.
#[derive(Debug, Clone, Copy)]
struct Scale {
    lo: f64,
    hi: f64,
    log: bool,
    from: f64,
    to: f64,
}

impl Scale {
    fn new(values: impl Iterator<Item = f64>, log: bool, from: f64, to: f64) -> Self {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for v in values.filter(|v| v.is_finite() && (!log || *v > 0.0)) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        if !lo.is_finite() {
            (lo, hi) = if log { (0.1, 10.0) } else { (0.0, 1.0) };
        }
        if log {
            (lo, hi) = (lo / 1.25, hi * 1.25);
        } else {
            lo = lo.min(0.0);
            hi = if hi <= lo {
                lo + 1.0
            } else {
                hi + (hi - lo) * 0.05
            };
        }
        Scale {
            lo,
            hi,
            log,
            from,
            to,
        }
    }

    fn map(&self, v: f64) -> f64 {
        let t = if self.log {
            (v.max(self.lo).ln() - self.lo.ln()) / (self.hi.ln() - self.lo.ln())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        };
        self.from + t.clamp(-0.02, 1.02) * (self.to - self.from)
    }

    /// About five round tick values inside the range: powers of ten (and
    /// their 2 and 5 multiples) on a log axis spanning decades.
    fn ticks(&self) -> Vec<f64> {
        if self.log {
            let (a, b) = (
                self.lo.log10().floor() as i32,
                self.hi.log10().ceil() as i32,
            );
            // Few decades: 1, 2 and 5 of each; many: every few powers.
            let (stride, mantissas): (usize, &[f64]) = if b - a <= 2 {
                (1, &[1.0, 2.0, 5.0])
            } else {
                (((b - a) / 7 + 1) as usize, &[1.0])
            };
            let ticks: Vec<f64> = (a..=b)
                .step_by(stride)
                .flat_map(|e| mantissas.iter().map(move |m| m * 10f64.powi(e)))
                .filter(|v| *v >= self.lo && *v <= self.hi)
                .collect();
            if ticks.len() >= 3 {
                return ticks;
            }
            // Less than a decade: round values as on a linear axis.
        }
        let raw = (self.hi - self.lo) / 6.0;
        let magnitude = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 5.0, 10.0]
            .iter()
            .map(|m| m * magnitude)
            .find(|s| *s >= raw)
            .unwrap_or(raw);
        let mut v = (self.lo / step).ceil() * step;
        let mut out = Vec::new();
        while v <= self.hi && out.len() < 12 {
            out.push(if v.abs() < step * 1e-9 { 0.0 } else { v });
            v += step;
        }
        out
    }
}

impl Chart {
    /// The chart as an inline `<svg>` element, with an HTML legend after.
    pub fn render(&self) -> String {
        let xs = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .chain(self.bands.iter().flat_map(|b| b.points.iter().map(|p| p.0)))
            .chain(self.markers.iter().flat_map(|m| m.at.iter().map(|a| a.0)));
        let ys = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .chain(self.bands.iter().flat_map(|b| b.points.iter().map(|p| p.2)));
        let x = Scale::new(xs, self.log_x, LEFT, WIDTH - RIGHT);
        let y = Scale::new(ys, self.log_y, HEIGHT - BOTTOM, TOP);
        let mut svg = String::new();
        let _ = write!(
            svg,
            r#"<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" class="chart">"#
        );
        self.axes(&mut svg, &x, &y);
        for band in &self.bands {
            let upper = band.points.iter().map(|p| (x.map(p.0), y.map(p.2)));
            let lower = band.points.iter().rev().map(|p| (x.map(p.0), y.map(p.1)));
            let _ = write!(
                svg,
                r#"<g data-series="{}"><polygon points="{}" fill="{}" fill-opacity="0.15" stroke="none"/></g>"#,
                escape(&band.id),
                polyline(upper.chain(lower)),
                band.color
            );
        }
        for series in &self.series {
            let _ = write!(svg, r#"<g data-series="{}">"#, escape(&series.id));
            draw(&mut svg, series, &x, &y);
            svg.push_str("</g>");
        }
        for markers in &self.markers {
            let _ = write!(
                svg,
                r#"<g data-series="{}" stroke="{}" stroke-dasharray="4 3">"#,
                escape(&markers.id),
                markers.color
            );
            for (at, tip) in &markers.at {
                let px = x.map(*at);
                let _ = write!(
                    svg,
                    r#"<line x1="{px:.1}" x2="{px:.1}" y1="{TOP}" y2="{:.1}"><title>{}</title></line>"#,
                    HEIGHT - BOTTOM,
                    escape(tip)
                );
            }
            svg.push_str("</g>");
        }
        svg.push_str("</svg>");
        svg.push_str(&self.legend());
        svg
    }

    fn axes(&self, svg: &mut String, x: &Scale, y: &Scale) {
        let (bottom, right) = (HEIGHT - BOTTOM, WIDTH - RIGHT);
        svg.push_str(r##"<g class="axes" stroke="#bbb" font-size="11" fill="#444">"##);
        for t in y.ticks() {
            let py = y.map(t);
            let _ = write!(
                svg,
                r#"<line x1="{LEFT}" x2="{right}" y1="{py:.1}" y2="{py:.1}" stroke-opacity="0.4"/><text x="{:.1}" y="{:.1}" text-anchor="end" stroke="none">{}</text>"#,
                LEFT - 6.0,
                py + 4.0,
                short(t)
            );
        }
        for t in x.ticks() {
            let px = x.map(t);
            let _ = write!(
                svg,
                r#"<line x1="{px:.1}" x2="{px:.1}" y1="{bottom}" y2="{:.1}"/><text x="{px:.1}" y="{:.1}" text-anchor="middle" stroke="none">{}</text>"#,
                bottom + 5.0,
                bottom + 18.0,
                short(t)
            );
        }
        let _ = write!(
            svg,
            r#"<line x1="{LEFT}" x2="{right}" y1="{bottom}" y2="{bottom}"/><line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{bottom}"/><text x="{:.1}" y="{:.1}" text-anchor="middle" stroke="none">{}</text><text transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle" stroke="none">{}</text></g>"#,
            (LEFT + right) / 2.0,
            HEIGHT - 6.0,
            escape(&self.x_label),
            (TOP + bottom) / 2.0,
            escape(&self.y_label)
        );
    }

    fn legend(&self) -> String {
        let mut out = String::from(r#"<p class="legend">"#);
        for s in &self.series {
            let swatch = match s.mark {
                Mark::Rings => "ring",
                Mark::Dots => "dot",
                Mark::Line | Mark::Step => "line",
            };
            let _ = write!(
                out,
                r#"<span><i class="{swatch}" style="--c:{}"></i>{}</span>"#,
                s.color,
                escape(&s.label)
            );
        }
        for m in self.markers.iter().filter(|m| !m.at.is_empty()) {
            let _ = write!(
                out,
                r#"<span><i class="mark" style="--c:{}"></i>{}</span>"#,
                m.color,
                escape(&m.label)
            );
        }
        out.push_str("</p>");
        out
    }
}

fn polyline(points: impl Iterator<Item = (f64, f64)>) -> String {
    points
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn draw(svg: &mut String, series: &Series, x: &Scale, y: &Scale) {
    let color = series.color;
    match series.mark {
        Mark::Dots | Mark::Rings => {
            let fill = if series.mark == Mark::Dots {
                color
            } else {
                "none"
            };
            for (px, py, tip) in &series.points {
                let _ = write!(
                    svg,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{fill}" stroke="{color}"><title>{}</title></circle>"#,
                    x.map(*px),
                    y.map(*py),
                    escape(tip)
                );
            }
        }
        Mark::Line | Mark::Step => {
            let mut points = Vec::new();
            for (i, (px, py, _)) in series.points.iter().enumerate() {
                if series.mark == Mark::Step && i > 0 {
                    points.push((x.map(*px), points.last().map_or(0.0, |p: &(f64, f64)| p.1)));
                }
                points.push((x.map(*px), y.map(*py)));
            }
            let _ = write!(
                svg,
                r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"><title>{}</title></polyline>"#,
                polyline(points.into_iter()),
                escape(&series.label)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_short_and_ticks_round() {
        assert_eq!(short(0.0), "0");
        assert_eq!(short(0.25), "0.25");
        assert_eq!(short(12.0), "12");
        assert_eq!(short(10_000_000.0), "10M");
        assert_eq!(short(0.001), "0.001");
        assert_eq!(short(0.00001), "1e-5");
        assert_eq!(short(35_000.0), "35k");
        assert_eq!(short(2_100_000.0), "2.1M");
        let s = Scale::new([0.0, 97.0].into_iter(), false, 0.0, 100.0);
        assert_eq!(s.ticks(), vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        let l = Scale::new([0.05, 300.0].into_iter(), true, 0.0, 100.0);
        assert_eq!(l.ticks(), vec![0.1, 1.0, 10.0, 100.0]);
        let few = Scale::new([3.0, 30.0].into_iter(), true, 0.0, 100.0);
        assert_eq!(few.ticks(), vec![5.0, 10.0, 20.0]);
        let narrow = Scale::new([13e6, 17e6].into_iter(), true, 0.0, 100.0);
        assert_eq!(narrow.ticks(), vec![12e6, 14e6, 16e6, 18e6, 20e6]);
    }

    #[test]
    fn every_series_is_a_group_named_by_its_id() {
        let chart = Chart {
            x_label: "t <s>".to_owned(),
            y_label: "y".to_owned(),
            series: vec![Series {
                id: "stall-full".to_owned(),
                label: "stall".to_owned(),
                color: "#123456",
                mark: Mark::Step,
                points: vec![(0.0, 1.0, "a".to_owned()), (1.0, 2.0, "b&c".to_owned())],
            }],
            markers: vec![Markers {
                id: "restarts".to_owned(),
                label: "restart".to_owned(),
                color: "#000",
                at: vec![(0.5, "crash".to_owned())],
            }],
            ..Chart::default()
        };
        let svg = chart.render();
        assert!(svg.contains(r#"data-series="stall-full""#));
        assert!(svg.contains(r#"data-series="restarts""#));
        assert!(svg.contains("t &lt;s&gt;"));
        assert!(!svg.contains("NaN"));
    }
}
