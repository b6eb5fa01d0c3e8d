//! Charts as inline SVG, built by pure functions from plain numbers. Each chart is a
//! `<figure>` with an SVG (`role="img"`, `<title>`, `<desc>`), a legend, and the same numbers
//! in a visually hidden table for screen readers. No scripts, no inline styles (the CSP allows
//! neither): colours are SVG presentation attributes.

use maud::{Markup, html};

/// Colour-blind-safe palette (Okabe–Ito), in order of use.
const PALETTE: [&str; 8] = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#666666"];

/// Every chart's width in SVG units; horizontal bars keep `LABEL` on the left for names and
/// `VALUE` on the right for the figure.
const W: f64 = 640.0;
const LABEL: f64 = 150.0;
const VALUE: f64 = 90.0;

pub fn colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// One named row of values (a source, a measure).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub values: Vec<f64>,
}

/// One horizontal bar: its label, its length, and the text printed after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub text: String,
}

/// `12`, `3.5`, `0.25`: integers without decimals.
pub fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else if v.abs() >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}").trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// A duration in seconds the way a manager reads it: `45 s`, `12 min`, `3.5 h`, `2.1 d`.
pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0);
    if s < 60.0 {
        format!("{s:.0} s")
    } else if s < 3600.0 {
        format!("{:.0} min", s / 60.0)
    } else if s < 86_400.0 {
        format!("{:.1} h", s / 3600.0)
    } else {
        format!("{:.1} d", s / 86_400.0)
    }
}

/// The smallest "round" number (1, 2, 5 × 10ⁿ) at or above `v`, for axis tops.
pub fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|c| *c >= v - 1e-9).unwrap_or(10.0 * magnitude)
}

fn shorten(label: &str, max: usize) -> String {
    if label.chars().count() <= max {
        label.to_owned()
    } else {
        let mut s: String = label.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

/// "2026-11-02" → "11-02" under a bar: the year is in the range above the chart.
fn axis_label(category: &str) -> String {
    let is_date = category.len() == 10 && category.as_bytes().get(4) == Some(&b'-');
    if is_date { category[5..].to_owned() } else { shorten(category, 10) }
}

fn legend(names: &[&str]) -> Markup {
    html! {
        ul .legend aria-hidden="true" {
            @for (i, name) in names.iter().enumerate() {
                li { svg width="12" height="12" viewBox="0 0 12 12" { rect width="12" height="12" fill=(colour(i)) {} } " " (name) }
            }
        }
    }
}

/// Stacked vertical bars: one bar per category (a day, a week), one colour per series.
/// The frame every chart shares: the figure, its SVG (`role="img"`, named by its title and
/// description) around `plot`, then `after` (the legend, the table of the same numbers).
fn figure(id: &str, title: &str, desc: &str, height: f64, plot: Markup, after: Markup) -> Markup {
    html! {
        figure .chart #(id) {
            svg viewBox={"0 0 " (W) " " (height)} role="img" aria-labelledby={(id) "-title " (id) "-desc"} {
                title #{(id) "-title"} { (title) }
                desc #{(id) "-desc"} { (desc) }
                (plot)
            }
            (after)
        }
    }
}

pub fn stacked_bars(id: &str, title: &str, desc: &str, categories: &[String], series: &[Series]) -> Markup {
    const H: f64 = 260.0;
    const LEFT: f64 = 44.0;
    const BOTTOM: f64 = 36.0;
    const TOP: f64 = 10.0;
    let plot_w = W - LEFT - 10.0;
    let plot_h = H - TOP - BOTTOM;
    let totals: Vec<f64> = (0..categories.len())
        .map(|c| series.iter().map(|s| s.values.get(c).copied().unwrap_or(0.0).max(0.0)).sum())
        .collect();
    let top = nice_ceiling(totals.iter().copied().fold(0.0, f64::max));
    let n = categories.len().max(1) as f64;
    let slot = plot_w / n;
    let bar_w = (slot * 0.7).max(1.0);
    // At most about six labels: dates are wide, and a phone screen is narrow.
    let label_every = categories.len().div_ceil(6).max(1);
    let names: Vec<&str> = series.iter().map(|s| s.name.as_str()).collect();
    let plot = html! {
        @for i in 0..=4 {
            @let v = top * f64::from(i) / 4.0;
            @let y = TOP + plot_h - plot_h * f64::from(i) / 4.0;
            line .grid x1=(LEFT) x2=(W - 10.0) y1=(y) y2=(y) stroke="#ccc" stroke-width="1" {}
            text x=(LEFT - 6.0) y=(y + 4.0) text-anchor="end" font-size="11" fill="#444" { (number(v)) }
        }
        @for (c, category) in categories.iter().enumerate() {
            @let x = LEFT + slot * c as f64 + (slot - bar_w) / 2.0;
            @let mut base = TOP + plot_h;
            g {
                @for (s_i, s) in series.iter().enumerate() {
                    @let v = s.values.get(c).copied().unwrap_or(0.0).max(0.0);
                    @if v > 0.0 {
                        @let h = plot_h * v / top;
                        @let y = { base -= h; base };
                        rect x=(x) y=(y) width=(bar_w) height=(h) fill=(colour(s_i)) {
                            title { (category) ": " (s.name) " " (number(v)) }
                        }
                    }
                }
            }
            @if c % label_every == 0 {
                text x=(x + bar_w / 2.0) y=(H - BOTTOM + 16.0) text-anchor="middle" font-size="11" fill="#444" {
                    (axis_label(category))
                }
            }
        }
        line x1=(LEFT) x2=(W - 10.0) y1=(TOP + plot_h) y2=(TOP + plot_h) stroke="#444" stroke-width="1" {}
    };
    let after = html! {
        (legend(&names))
        table .visually-hidden {
            caption { (title) }
            thead { tr { th scope="col" { "Period" } @for s in series { th scope="col" { (s.name) } } th scope="col" { "Total" } } }
            tbody {
                @for (c, category) in categories.iter().enumerate() {
                    tr {
                        th scope="row" { (category) }
                        @for s in series { td { (number(s.values.get(c).copied().unwrap_or(0.0))) } }
                        td { (number(totals.get(c).copied().unwrap_or(0.0))) }
                    }
                }
            }
        }
    };
    figure(id, title, desc, H, plot, after)
}

/// Horizontal bars, longest = the largest value (or `max` when given, e.g. 1.0 for rates).
pub fn hbars(id: &str, title: &str, desc: &str, bars: &[Bar], max: Option<f64>) -> Markup {
    const ROW: f64 = 30.0;
    let h = ROW * bars.len().max(1) as f64 + 8.0;
    let top = max.unwrap_or_else(|| bars.iter().map(|b| b.value).fold(0.0, f64::max)).max(f64::MIN_POSITIVE);
    let plot_w = W - LABEL - VALUE;
    let plot = html! {
        @for (i, b) in bars.iter().enumerate() {
            @let y = 4.0 + ROW * i as f64;
            @let w = (plot_w * (b.value.max(0.0) / top)).min(plot_w);
            text x=(LABEL - 8.0) y=(y + ROW / 2.0 + 4.0) text-anchor="end" font-size="12" fill="#222" { (shorten(&b.label, 20)) }
            rect x=(LABEL) y=(y + 4.0) width=(w.max(1.0)) height=(ROW - 8.0) fill=(colour(0)) {
                title { (b.label) ": " (b.text) }
            }
            text x=(LABEL + w + 6.0) y=(y + ROW / 2.0 + 4.0) font-size="12" fill="#222" { (b.text) }
        }
    };
    let after = html! {
        table .visually-hidden {
            caption { (title) }
            thead { tr { th scope="col" { "Item" } th scope="col" { "Value" } } }
            tbody { @for b in bars { tr { th scope="row" { (b.label) } td { (b.text) } } } }
        }
    };
    figure(id, title, desc, h, plot, after)
}

/// Horizontal bars in groups: one group per row (a rep), one bar per series (median, p90).
/// `None` values are drawn as nothing and read "no data".
pub fn grouped_hbars(
    id: &str,
    title: &str,
    desc: &str,
    names: &[&str],
    rows: &[(String, Vec<Option<f64>>)],
    format: fn(f64) -> String,
) -> Markup {
    const BAR: f64 = 14.0;
    let group = BAR * names.len().max(1) as f64 + 12.0;
    let h = group * rows.len().max(1) as f64 + 8.0;
    let top = rows.iter().flat_map(|(_, v)| v.iter().flatten().copied()).fold(0.0, f64::max).max(f64::MIN_POSITIVE);
    let plot_w = W - LABEL - VALUE;
    let plot = html! {
        @for (r, (label, values)) in rows.iter().enumerate() {
            @let y0 = 4.0 + group * r as f64;
            text x=(LABEL - 8.0) y=(y0 + group / 2.0) text-anchor="end" font-size="12" fill="#222" { (shorten(label, 20)) }
            @for (s, value) in values.iter().enumerate() {
                @let y = y0 + BAR * s as f64;
                @if let Some(v) = value {
                    @let w = (plot_w * (v.max(0.0) / top)).min(plot_w);
                    rect x=(LABEL) y=(y + 1.0) width=(w.max(1.0)) height=(BAR - 2.0) fill=(colour(s)) {
                        title { (label) ", " (names.get(s).copied().unwrap_or_default()) ": " (format(*v)) }
                    }
                    text x=(LABEL + w + 6.0) y=(y + BAR - 3.0) font-size="11" fill="#222" { (format(*v)) }
                }
            }
        }
    };
    let after = html! {
        (legend(names))
        table .visually-hidden {
            caption { (title) }
            thead { tr { th scope="col" { "Item" } @for n in names { th scope="col" { (n) } } } }
            tbody {
                @for (label, values) in rows {
                    tr {
                        th scope="row" { (label) }
                        @for v in values { td { @match v { Some(v) => (format(*v)), None => "no data" } } }
                    }
                }
            }
        }
    };
    figure(id, title, desc, h, plot, after)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(name: &str, values: &[f64]) -> Series {
        Series { name: name.into(), values: values.to_vec() }
    }

    #[test]
    fn axis_tops_are_round() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(7.0), 10.0);
        assert_eq!(nice_ceiling(12.0), 20.0);
        assert_eq!(nice_ceiling(50.0), 50.0);
        assert_eq!(nice_ceiling(0.3), 0.5);
    }

    #[test]
    fn numbers_and_durations_read_well() {
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(2.5), "2.5");
        assert_eq!(duration(42.0), "42 s");
        assert_eq!(duration(600.0), "10 min");
        assert_eq!(duration(5400.0), "1.5 h");
        assert_eq!(duration(172_800.0), "2.0 d");
    }

    #[test]
    fn stacked_bars_stack_segments_and_describe_themselves() {
        let days = vec!["05-01".to_owned(), "05-02".to_owned()];
        let svg = stacked_bars(
            "src",
            "Leads by source",
            "Leads per day",
            &days,
            &[series("google", &[2.0, 0.0]), series("telegram", &[2.0, 1.0])],
        )
        .into_string();
        assert!(svg.contains(r#"role="img""#) && svg.contains(r#"aria-labelledby="src-title src-desc""#));
        assert!(svg.contains("<title id=\"src-title\">Leads by source</title>"));
        // Top of the axis is 5 (max total 4); the first bar stacks two segments of 2.
        assert_eq!(svg.matches("<rect ").count(), 3 + 2, "three segments plus two legend swatches");
        assert!(svg.contains("05-01: google 2"));
        assert!(!svg.contains("05-02: google"), "zero segments are not drawn");
        // The hidden table carries every number, totals included.
        assert!(svg.contains("<th scope=\"row\">05-02</th><td>0</td><td>1</td><td>1</td>"));
    }

    #[test]
    fn labels_are_escaped() {
        let svg =
            hbars("f", "Funnel", "d", &[Bar { label: "<b>".into(), value: 1.0, text: "1".into() }], None).into_string();
        assert!(svg.contains("&lt;b&gt;") && !svg.contains("<b>"));
    }

    #[test]
    fn bars_scale_to_the_maximum() {
        let bars = [
            Bar { label: "new".into(), value: 10.0, text: "10".into() },
            Bar { label: "won".into(), value: 5.0, text: "5 (50%)".into() },
        ];
        let svg = hbars("funnel", "Funnel", "Leads per stage", &bars, None).into_string();
        // 640 − 150 − 90 = 400 px for the longest bar.
        assert!(svg.contains(r#"width="400""#) && svg.contains(r#"width="200""#), "{svg}");
        let rates = hbars(
            "conv",
            "Conversion",
            "d",
            &[Bar { label: "anna".into(), value: 0.5, text: "50%".into() }],
            Some(1.0),
        )
        .into_string();
        assert!(rates.contains(r#"width="200""#));
    }

    #[test]
    fn grouped_bars_say_no_data_for_gaps() {
        let rows = vec![("anna".to_owned(), vec![Some(60.0), Some(600.0)]), ("ben".to_owned(), vec![None, None])];
        let svg = grouped_hbars("rt", "Response", "d", &["median", "p90"], &rows, duration).into_string();
        assert!(svg.contains("<td>1 min</td><td>10 min</td>"));
        assert!(svg.contains("<td>no data</td><td>no data</td>"));
        assert!(svg.contains(r#"width="400""#), "p90 of anna is the longest bar");
    }
}
