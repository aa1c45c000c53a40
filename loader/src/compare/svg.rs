//! The comparison as a self-contained SVG chart: per variant, a bar at the median and a
//! line over the min–max range, for wall time and for peak RSS, side by side.
use std::fmt::Write;

use super::figures::{Comparison, Spread};

const PALETTE: [&str; 8] = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#9c755f"];
const WIDTH: u32 = 900;
const LABELS: f64 = 170.0; // the variant names' column
const PANEL: f64 = 300.0;
const GAP: f64 = 60.0;
const TOP: f64 = 78.0;
const ROW: f64 = 30.0;

fn render(c: &Comparison) -> String {
    let height = (TOP + ROW * c.rows.len() as f64 + 50.0).ceil() as u32;
    let mut s = header(WIDTH, height, &titled("allocshim compare", &c.command, 100));
    let _ = writeln!(
        s,
        r##"<text x="10" y="40" fill="#555">{}. Bar: median; line: min–max; ×: ratio to {} (* beyond run-to-run noise).</text>"##,
        c.plan_text(),
        esc(&c.baseline)
    );
    type Pick = fn(&super::figures::Figures) -> Spread;
    /// (title, which figure, scale to the unit shown, unit)
    type Panel = (&'static str, Pick, f64, &'static str);
    let panels: [Panel; 2] =
        [("wall time (s)", |f| f.wall_s, 1.0, "s"), ("peak RSS (MiB)", |f| f.peak_rss, 1.0 / (1024.0 * 1024.0), "MiB")];
    for (i, (name, pick, unit, suffix)) in panels.iter().enumerate() {
        let x0 = LABELS + i as f64 * (PANEL + GAP);
        let top = c.rows.iter().filter_map(|r| r.figures.as_ref()).map(|f| pick(f).max * unit).fold(0.0, f64::max);
        // Headroom so the value label after the longest bar stays inside the panel.
        let step = nice(top * 1.4 / 4.0);
        let scale_max = step * 4.0;
        let decimals = decimals(step);
        let x = |v: f64| x0 + v * unit / scale_max * PANEL;
        let _ = writeln!(s, r#"<text x="{x0}" y="{}" font-weight="bold">{name}</text>"#, TOP - 14.0);
        let bottom = TOP + ROW * c.rows.len() as f64;
        for t in 0..=4 {
            let v = step * f64::from(t);
            let gx = x0 + PANEL * f64::from(t) / 4.0;
            let _ = writeln!(s, r##"<line x1="{gx:.1}" y1="{TOP}" x2="{gx:.1}" y2="{bottom}" stroke="#ddd"/>"##);
            let _ = writeln!(s, r##"<text x="{gx:.1}" y="{:.1}" text-anchor="middle" fill="#555">{v:.decimals$}</text>"##, bottom + 16.0);
        }
        for (j, r) in c.rows.iter().enumerate() {
            let y = TOP + ROW * j as f64;
            let colour = PALETTE[j % PALETTE.len()];
            if i == 0 {
                let _ =
                    writeln!(s, r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#, LABELS - 10.0, y + 19.0, esc(&r.variant.label));
            }
            let Some(f) = &r.figures else {
                let _ = writeln!(s, r##"<text x="{:.1}" y="{:.1}" fill="#c00">failed</text>"##, x0 + 4.0, y + 19.0);
                continue;
            };
            let sp = pick(f);
            let ratio = if i == 0 { r.wall_ratio } else { r.rss_ratio };
            let _ = writeln!(
                s,
                r#"<rect x="{x0}" y="{:.1}" width="{:.1}" height="16" fill="{colour}"><title>{}: median {:.3} {suffix}</title></rect>"#,
                y + 7.0,
                x(sp.median) - x0,
                esc(&r.variant.label),
                sp.median * unit
            );
            let (a, b, cy) = (x(sp.min), x(sp.max), y + 15.0);
            let _ = writeln!(
                s,
                r##"<path d="M{a:.1} {cy}H{b:.1}M{a:.1} {:.1}V{:.1}M{b:.1} {:.1}V{:.1}" stroke="#222" fill="none"/>"##,
                cy - 5.0,
                cy + 5.0,
                cy - 5.0,
                cy + 5.0
            );
            let label = match ratio {
                Some(q) => format!("{} ×{:.2}{}", value(sp.median * unit), q.value, if q.beyond_noise { "*" } else { "" }),
                None => value(sp.median * unit),
            };
            let _ = writeln!(s, r#"<text x="{:.1}" y="{:.1}">{}</text>"#, b.max(x(sp.median)) + 6.0, y + 19.0, esc(&label));
        }
    }
    s.push_str("</svg>\n");
    s
}

/// A workload's name with its time and peak RSS ratios, one per pair (None: missing).
pub type ChartRow<'a> = (&'a str, Vec<Option<f64>>, Vec<Option<f64>>);

/// Ratios per workload (rows) and pair of variants (one colour each), for time and
/// for peak RSS: bars grow from the 1.0 line, so "costs nothing" reads as no bar.
pub fn ratio_chart(title: &str, pairs: &[String], rows: &[ChartRow]) -> String {
    const BAR: f64 = 13.0;
    let group = BAR * pairs.len() as f64 + 10.0;
    let legend_h = 18.0 * pairs.len() as f64;
    let top = 60.0 + legend_h + 20.0;
    let height = (top + group * rows.len() as f64 + 40.0).ceil() as u32;
    let mut s = header(WIDTH, height, title);
    let _ = writeln!(
        s,
        r##"<text x="10" y="40" fill="#555">Ratio of medians per workload; 1.00 = no difference, right of it = slower or larger.</text>"##
    );
    for (k, p) in pairs.iter().enumerate() {
        let y = 56.0 + 18.0 * k as f64;
        let _ = writeln!(s, r#"<rect x="10" y="{y}" width="12" height="12" fill="{}"/>"#, PALETTE[k % PALETTE.len()]);
        let _ = writeln!(s, r#"<text x="28" y="{:.1}">{}</text>"#, y + 10.0, esc(p));
    }
    for (i, name) in ["time", "peak RSS"].iter().enumerate() {
        let x0 = LABELS + i as f64 * (PANEL + GAP);
        let values = rows.iter().flat_map(|r| if i == 0 { &r.1 } else { &r.2 }).flatten().copied();
        let (lo, hi) = values.fold((0.95f64, 1.05f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
        // Round outwards to a step that gives at most 5 ticks.
        let step = nice((hi - lo) / 4.0);
        let (lo, hi) = ((lo / step).floor() * step, (hi / step).ceil() * step);
        let x = |v: f64| x0 + (v - lo) / (hi - lo) * PANEL;
        let bottom = top + group * rows.len() as f64;
        let _ = writeln!(s, r#"<text x="{x0}" y="{}" font-weight="bold">{name}</text>"#, top - 8.0);
        let mut t = lo;
        while t <= hi + step / 2.0 {
            let gx = x(t);
            let colour = if (t - 1.0).abs() < step / 100.0 { "#444" } else { "#ddd" };
            let _ = writeln!(s, r#"<line x1="{gx:.1}" y1="{top}" x2="{gx:.1}" y2="{bottom}" stroke="{colour}"/>"#);
            let _ = writeln!(
                s,
                r##"<text x="{gx:.1}" y="{:.1}" text-anchor="middle" fill="#555">{t:.prec$}</text>"##,
                bottom + 16.0,
                prec = decimals(step).max(2)
            );
            t += step;
        }
        for (j, (label, time, rss)) in rows.iter().enumerate() {
            let gy = top + group * j as f64;
            if i == 0 {
                let _ =
                    writeln!(s, r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#, LABELS - 10.0, gy + group / 2.0, esc(label));
            }
            for (k, v) in (if i == 0 { time } else { rss }).iter().enumerate() {
                let y = gy + BAR * k as f64 + 2.0;
                let Some(v) = v else {
                    let _ = writeln!(s, r##"<text x="{:.1}" y="{:.1}" fill="#c00" font-size="10">missing</text>"##, x(1.0) + 4.0, y + 9.0);
                    continue;
                };
                let (a, b) = (x(1.0).min(x(*v)), x(1.0).max(x(*v)));
                let _ = writeln!(
                    s,
                    r#"<rect x="{a:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: {v:.3}</title></rect>"#,
                    (b - a).max(1.0),
                    BAR - 2.0,
                    PALETTE[k % PALETTE.len()],
                    esc(&pairs[k])
                );
                let _ = writeln!(s, r#"<text x="{:.1}" y="{:.1}" font-size="10">{v:.3}</text>"#, b + 4.0, y + 9.0);
            }
        }
    }
    s.push_str("</svg>\n");
    s
}

// The plot area of [`rss_over_time`]: its height, left margin and width.
const H: f64 = 320.0;
const LEFT: f64 = 70.0;
const W: f64 = 560.0;

/// Server mode: the server's RSS over the load, one colour per variant, one line per
/// run; the legend gives each variant's median RSS over the last third and its ratio.
fn rss_over_time(c: &Comparison) -> String {
    const WIDE: u32 = 1040; // room for the legend
    let top = 76.0;
    let legend_x = LEFT + W + 30.0;
    let height = (top + H + 50.0).max(top + 20.0 * c.rows.len() as f64 + 20.0).ceil() as u32;
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let runs = || c.rows.iter().enumerate().flat_map(|(i, r)| r.outcome.samples.iter().map(move |s| (i, &s.rss_series)));
    let t_max = runs().flat_map(|(_, s)| s.iter().map(|p| p.0)).fold(0.0, f64::max);
    let r_max = runs().flat_map(|(_, s)| s.iter().map(|p| mib(p.1))).fold(0.0, f64::max);
    // The last sample comes just after the load's end: a few percent past a round
    // number must not add a whole empty tick.
    let (t_step, r_step) = (nice(t_max / 6.0), nice(r_max / 4.0));
    let (t_top, r_top) = ((t_max * 0.97 / t_step).ceil().max(1.0) * t_step, (r_max * 1.05 / r_step).ceil().max(1.0) * r_step);
    let x = |t: f64| LEFT + t.min(t_top) / t_top * W;
    let y = |m: f64| top + H - m / r_top * H;
    let mut s = header(WIDE, height, &titled("allocshim compare (server)", &c.command, 90));
    let _ =
        writeln!(s, r##"<text x="10" y="40" fill="#555">RSS of the server's process group during the load; {}.</text>"##, c.plan_text());
    let _ = writeln!(
        s,
        r##"<text x="{legend_x}" y="{:.1}" fill="#555">median RSS over the last third, × {}</text>"##,
        top - 12.0,
        esc(&c.baseline)
    );
    // The last third of the load, which the RSS figures cover (the load ends at about
    // the last sample's time).
    let _ = writeln!(
        s,
        r##"<rect x="{0:.1}" y="{top}" width="{1:.1}" height="{H}" fill="#f3f3f3"/><text x="{0:.1}" y="{2:.1}" fill="#888" font-size="10">last third</text>"##,
        x(t_max * 2.0 / 3.0),
        x(t_max) - x(t_max * 2.0 / 3.0),
        top - 3.0
    );
    rss_axes(&mut s, top, (t_top, t_step), (r_top, r_step), x, y);
    for (i, series) in runs() {
        if series.is_empty() {
            continue;
        }
        let points: Vec<String> = series.iter().map(|p| format!("{:.1},{:.1}", x(p.0), y(mib(p.1)))).collect();
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="1.5"{}/>"#,
            points.join(" "),
            PALETTE[i % PALETTE.len()],
            dash(i)
        );
    }
    rss_legend(&mut s, c, legend_x, top);
    s.push_str("</svg>\n");
    s
}

/// The grid and axes of [`rss_over_time`]: RSS ticks every `r_step` MiB up to `r_top`,
/// time ticks every `t_step` s up to `t_top`, placed by `x` and `y`.
fn rss_axes(
    s: &mut String,
    top: f64,
    (t_top, t_step): (f64, f64),
    (r_top, r_step): (f64, f64),
    x: impl Fn(f64) -> f64,
    y: impl Fn(f64) -> f64,
) {
    for k in 0..=(r_top / r_step).round() as u32 {
        let m = r_step * f64::from(k);
        let _ = writeln!(s, r##"<line x1="{LEFT}" y1="{0:.1}" x2="{1:.1}" y2="{0:.1}" stroke="#ddd"/>"##, y(m), LEFT + W);
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#555">{m:.prec$}</text>"##,
            LEFT - 6.0,
            y(m) + 4.0,
            prec = decimals(r_step)
        );
    }
    let mut t = 0.0;
    while t <= t_top + t_step / 2.0 {
        let _ = writeln!(s, r##"<line x1="{0:.1}" y1="{top}" x2="{0:.1}" y2="{1:.1}" stroke="#eee"/>"##, x(t), top + H);
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#555">{t:.prec$}</text>"##,
            x(t),
            top + H + 16.0,
            prec = decimals(t_step)
        );
        t += t_step;
    }
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#555">seconds into the load</text>"##,
        LEFT + W / 2.0,
        top + H + 34.0
    );
    let _ = writeln!(
        s,
        r##"<text x="14" y="{:.1}" fill="#555" transform="rotate(-90 14 {0:.1})" text-anchor="middle">RSS (MiB)</text>"##,
        top + H / 2.0
    );
}

/// Past the palette, colours come back dashed: the line style of variant `i`.
fn dash(i: usize) -> &'static str {
    if i >= PALETTE.len() {
        r#" stroke-dasharray="6 3""#
    } else {
        ""
    }
}

/// The legend of [`rss_over_time`] at (`legend_x`, `top`): per variant, its colour, its
/// median RSS over the last third and its ratio to the baseline, or that it failed.
fn rss_legend(s: &mut String, c: &Comparison, legend_x: f64, top: f64) {
    for (i, r) in c.rows.iter().enumerate() {
        let ly = top + 20.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{legend_x}" y1="{:.1}" x2="{:.1}" y2="{0:.1}" stroke="{}" stroke-width="3"{}/>"#,
            ly + 6.0,
            legend_x + 14.0,
            PALETTE[i % PALETTE.len()],
            dash(i)
        );
        let what = match (&r.figures, r.metric_ratios.get(super::server::RSS_LAST_THIRD)) {
            (Some(f), ratio) => {
                let m = f.metrics.get(super::server::RSS_LAST_THIRD).map(|m| value(m.median)).unwrap_or_default();
                let q = ratio.map(|q| format!(" ×{:.2}{}", q.value, if q.beyond_noise { "*" } else { "" })).unwrap_or_default();
                format!("{}: {m} MiB{q}", r.variant.label)
            }
            (None, _) => format!("{}: failed", r.variant.label),
        };
        let _ = writeln!(s, r#"<text x="{:.1}" y="{:.1}">{}</text>"#, legend_x + 18.0, ly + 10.0, esc(&what));
    }
}

/// The SVG root of a `width` × `height` chart on white, with its title.
fn header(width: u32, height: u32, title: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r##"<rect width="100%" height="100%" fill="#ffffff"/>"##);
    let _ = writeln!(s, r#"<text x="10" y="22" font-size="15" font-weight="bold">{}</text>"#, esc(title));
    s
}

/// "WHAT: COMMAND", the command cut to `keep` characters: a chart's title.
fn titled(what: &str, command: &[String], keep: usize) -> String {
    format!("{what}: {}", command.join(" ").chars().take(keep).collect::<String>())
}

/// The chart of a comparison: RSS over time for a server comparison, else time and
/// peak RSS per variant.
pub fn chart(c: &Comparison) -> String {
    if c.load.is_some() {
        rss_over_time(c)
    } else {
        render(c)
    }
}

/// The smallest of 1, 2, 2.5, 5 × 10^k at or above `v`: a tick step that makes every
/// tick a round number.
fn nice(v: f64) -> f64 {
    // NaN and infinities too: only a finite positive value has a scale.
    if !(v.is_finite() && v > 0.0) {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * p).find(|&c| c >= v).unwrap_or(10.0 * p)
}

/// Just enough decimals to print every multiple of `step` exactly (2.5 needs one).
fn decimals(step: f64) -> usize {
    (0..6)
        .find(|&d| {
            let scaled = step * 10f64.powi(d as i32);
            (scaled - scaled.round()).abs() < 1e-6 * scaled.max(1.0)
        })
        .unwrap_or(6)
}

/// Three significant digits, enough to tell the bars apart.
fn value(v: f64) -> String {
    match v {
        v if v >= 100.0 => format!("{v:.0}"),
        v if v >= 10.0 => format!("{v:.1}"),
        v if v >= 1.0 => format!("{v:.2}"),
        v => format!("{v:.3}"),
    }
}

fn esc(t: &str) -> String {
    t.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    #[test]
    fn nice_rounds_up() {
        assert_eq!(super::nice(0.73), 1.0);
        assert_eq!(super::nice(1.2), 2.0);
        assert_eq!(super::nice(37.0), 50.0);
        assert_eq!(super::nice(21.7), 25.0);
        assert_eq!(super::nice(0.0), 1.0);
    }

    #[test]
    fn ticks_print_exactly() {
        assert_eq!(super::decimals(2.5), 1);
        assert_eq!(super::decimals(25.0), 0);
        assert_eq!(super::decimals(0.25), 2);
        assert_eq!(super::decimals(0.05), 2);
    }
}
