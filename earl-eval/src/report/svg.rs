//! Score histograms as inline SVG, drawn with `plotters`' SVG backend (no fonts loaded: the browser lays out the
//! text). Scores are 0–10 (VIEScore's sub-scores are integers; overall = √(SC·PQ) is not), so each bar counts the
//! samples whose score rounds to that integer; samples without the score are left out and the caption says how many
//! were counted.
use plotters::prelude::*;

/// Width and height of one histogram, in CSS pixels.
const SIZE: (u32, u32) = (300, 190);

/// The bar (0..=10) a score falls in: the nearest integer, clamped (a NaN score falls in none).
fn bin(v: f64) -> Option<u32> {
    v.is_finite().then(|| v.round().clamp(0.0, 10.0) as u32)
}

/// Bar heights of `values`, index = score.
pub(crate) fn counts(values: &[f64]) -> [u32; 11] {
    let mut c = [0u32; 11];
    for b in values.iter().filter_map(|v| bin(*v)) {
        c[b as usize] += 1;
    }
    c
}

/// An `<svg>` element: the histogram of `values` titled `title`.
pub(crate) fn histogram(title: &str, values: &[f64]) -> Result<String, String> {
    let c = counts(values);
    let counted: u32 = c.iter().sum();
    let top = c.iter().copied().max().unwrap_or(0).max(1);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(format!("{title} (n = {counted})"), ("sans-serif", 14))
            .margin(6)
            .x_label_area_size(22)
            .y_label_area_size(30)
            .build_cartesian_2d((0u32..11u32).into_segmented(), 0u32..top + top.div_ceil(10))
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(11)
            .x_label_formatter(&|v| match v {
                SegmentValue::Exact(x) | SegmentValue::CenterOf(x) if *x <= 10 => x.to_string(),
                _ => String::new(),
            })
            .y_labels(4)
            .label_style(("sans-serif", 11))
            .draw()
            .map_err(|e| e.to_string())?;
        let bars = Histogram::vertical(&chart)
            .style(RGBColor(70, 110, 180).filled())
            .margin(2)
            .data(c.iter().enumerate().filter(|(_, n)| **n > 0).map(|(score, n)| (score as u32, *n)));
        chart.draw_series(bars).map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_fall_in_the_nearest_integer_bar() {
        let c = counts(&[0.0, 0.4, 4.47, 4.5, 9.6, 10.0, 12.0, f64::NAN]);
        assert_eq!(c, [2, 0, 0, 0, 1, 1, 0, 0, 0, 0, 3]);
    }

    #[test]
    fn a_histogram_is_an_svg_with_one_bar_per_filled_score() {
        let svg = histogram("overall", &[1.0, 1.0, 5.0]).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..60.min(svg.len())]);
        assert!(svg.contains("overall (n = 3)"));
        // Two bars of the bar colour (score 1 with 2 samples, score 5 with 1), nothing for empty scores.
        assert_eq!(svg.matches("fill=\"#466EB4\"").count(), 2, "{svg}");
    }
}
