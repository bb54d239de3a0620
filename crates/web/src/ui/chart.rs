//! Small SVG charts drawn on the server. Each chart has a text title for screen readers; the
//! page puts the same numbers in a table beside it.

use std::fmt::Write;

/// One bar: its label, its value, and the text printed at its end.
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub text: String,
    /// Drawn hatched: a figure that is not final yet (e.g. a week whose referrals are still
    /// within their windows).
    pub provisional: bool,
}

const ROW: usize = 26;
const LABEL_W: usize = 150;
const BAR_W: usize = 300;

/// Horizontal bars scaled to `max` (the largest value when `None`).
pub fn horizontal(title: &str, bars: &[Bar], max: Option<f64>) -> String {
    let max = max.unwrap_or_else(|| bars.iter().map(|b| b.value).fold(0.0, f64::max)).max(f64::EPSILON);
    let height = ROW * bars.len().max(1) + 4;
    let width = LABEL_W + BAR_W + 70;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" style="max-width:100%;height:auto"><title>{}</title>"#,
        escape(title)
    );
    for (i, b) in bars.iter().enumerate() {
        let y = i * ROW + 2;
        let w = ((b.value / max).clamp(0.0, 1.0) * BAR_W as f64).round();
        let _ = write!(
            svg,
            r#"<text x="{lx}" y="{ty}" text-anchor="end" class="lbl">{label}</text><rect x="{LABEL_W}" y="{y}" width="{w}" height="{bh}" class="bar"/><text x="{tx}" y="{ty}" class="val">{text}</text>"#,
            lx = LABEL_W - 6,
            ty = y + 15,
            label = escape(&b.label),
            bh = ROW - 6,
            tx = LABEL_W as f64 + w + 6.0,
            text = escape(&b.text),
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Vertical columns over time (rates, e.g. the closed-loop rate per week), values in
/// `0..=max` (1.0 is 100%), with a labelled y-axis.
pub fn columns(title: &str, bars: &[Bar], max: f64) -> String {
    let n = bars.len().max(1);
    let col = (560 / n).clamp(12, 60);
    // The y-axis labels ("100%" is about 30 px at 12 px) end at x = 38; the plot starts at 40;
    // room on the right for the last date label (about 32 px) over a narrow column.
    let (plot_h, width) = (160.0, col * n + 70);
    let height = 200;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" style="max-width:100%;height:auto"><title>{}</title><defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" class="hatch-bg"/><line x1="0" y1="0" x2="0" y2="6" class="hatch"/></pattern></defs><line x1="40" y1="170" x2="{width}" y2="170" class="axis"/>"#,
        escape(title)
    );
    // The y-axis: 0, half and the top of the scale, as percentages.
    for (y, share) in [(170.0, 0.0), (90.0, 0.5), (10.0, 1.0)] {
        let _ = write!(
            svg,
            r#"<text x="38" y="{ty:.0}" text-anchor="end" class="tick">{:.0}%</text><line x1="40" y1="{y:.0}" x2="{width}" y2="{y:.0}" class="axis"/>"#,
            share * max * 100.0,
            ty = y + 4.0,
        );
    }
    for (i, b) in bars.iter().enumerate() {
        let h = (b.value / max.max(f64::EPSILON)).clamp(0.0, 1.0) * plot_h;
        let x = 44 + i * col;
        let _ = write!(
            svg,
            r#"<rect x="{x}" y="{y:.1}" width="{w}" height="{h:.1}" class="{class}"><title>{label}: {text}{note}</title></rect>"#,
            y = 170.0 - h,
            w = col.saturating_sub(4),
            class = if b.provisional { "bar provisional" } else { "bar" },
            label = escape(&b.label),
            text = escape(&b.text),
            note = if b.provisional { " (not mature yet)" } else { "" },
        );
        if n <= 16 || i % (n / 8).max(1) == 0 {
            let _ = write!(svg, r#"<text x="{x}" y="188" class="tick">{}</text>"#, escape(short(&b.label)));
        }
    }
    svg.push_str("</svg>");
    svg
}

fn short(label: &str) -> &str {
    label.get(5..).unwrap_or(label)
}

use crate::escape_markup as escape;

/// A link that downloads `svg` as `name` (a data URL: no script, no second request). The
/// page's own styles are inlined so the file looks as it does on the page.
pub fn download_link(svg: &str, name: &str) -> String {
    const STYLE: &str = "<style>.bar{fill:#1759c4}.bar.provisional{fill:url(#hatch);stroke:#1759c4}.hatch-bg{fill:#fff}.hatch{stroke:#1759c4;stroke-width:3}.lbl,.val,.tick{font:12px sans-serif;fill:#1d2733}.axis{stroke:#d9dee4}</style>";
    let styled = svg.replacen("<title>", &format!("{STYLE}<title>"), 1);
    let mut encoded = String::with_capacity(styled.len() * 2);
    for b in styled.bytes() {
        if b.is_ascii_alphanumeric() || b" -_.~=:/;,()'".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!(
        r#"<a class="download" download="{name}" href="data:image/svg+xml;charset=utf-8,{encoded}">Download SVG</a>"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_and_labels_are_escaped() {
        let bars = [
            Bar { label: "a<b".into(), value: 50.0, text: "50".into(), provisional: false },
            Bar { label: "c".into(), value: 100.0, text: "100".into(), provisional: false },
        ];
        let svg = horizontal("t", &bars, None);
        assert!(svg.contains(r#"width="150" height="20""#), "{svg}");
        assert!(svg.contains(r#"width="300" height="20""#), "{svg}");
        assert!(svg.contains("a&lt;b") && !svg.contains("a<b"));
    }

    #[test]
    fn columns_never_exceed_the_plot() {
        let bars = [Bar { label: "2026-03-02".into(), value: 2.0, text: "200%".into(), provisional: false }];
        let svg = columns("t", &bars, 1.0);
        assert!(svg.contains(r#"height="160.0""#), "{svg}");
    }
}
