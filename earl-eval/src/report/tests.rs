//! The report and the comparison page from small run directories: everything embedded, nothing fetched, boxes over
//! the source, placeholders for missing images, deltas B − A; and the run-directory reader's tolerances.
use super::testdata::write_run;
use super::*;

fn attr_values<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
    html.split(&format!(" {attr}=\"")).skip(1).map(|s| &s[..s.find('"').unwrap()]).collect()
}

#[test]
fn a_report_is_one_offline_file_with_the_gallery_tables_and_histograms() {
    let tmp = tempfile::tempdir().unwrap();
    write_run(tmp.path(), "earl", 0.0);
    let path = write_report(tmp.path()).unwrap();
    assert_eq!(path, tmp.path().join("report.html"));
    let html = std::fs::read_to_string(&path).unwrap();
    // Every image is a data URL: 4 sources, 4 edits, 3 ground truths (the fourth is missing), none fetched.
    let srcs = attr_values(&html, "src");
    assert_eq!(srcs.len(), 11, "{srcs:?}");
    assert!(srcs.iter().all(|s| s.starts_with("data:image/")));
    assert_eq!(srcs.iter().filter(|s| s.starts_with("data:image/jpeg")).count(), 1, "the 300×300 noise is re-encoded");
    assert!(!html.contains("href=\"http") && !html.contains("<link") && !html.contains("src=\"http"));
    assert!(html.contains("default-src 'none'; img-src data:"));
    // The missing ground truth is a placeholder that names the file.
    assert!(html.contains("images/3_gt_missing.png"));
    // Row 0's two boxes over its source, in the model input's pixels (96×72 at area 65636: 295.8 × 221.9).
    assert!(html.contains("viewBox=\"0 0 295.83 221.87\""), "boxes");
    assert!(html.contains("<rect x=\"99\" y=\"74\" width=\"98\" height=\"74\""));
    assert_eq!(html.matches("<rect x=\"0\" y=\"0\" width=\"30\"").count(), 1);
    // Text is escaped, flags are shown, cards carry their scores for sorting.
    assert!(html.contains("make the &lt;box&gt; 0 yellow &amp; bright"));
    assert!(html.contains("no valid image") && html.contains("judge failed") && html.contains("finish: length"));
    assert_eq!(attr_values(&html, "data-vie_all"), ["1.5", "4.5", "0", "7.5"]);
    // One histogram per metric; the summary's tables.
    assert_eq!(html.matches("<figure class=\"hist\"><svg").count(), 7);
    assert!(html.contains("<h3>by source</h3>") && html.contains("<td>whatsup</td>"));
    assert!(html.contains("Gallery: aurora (4 samples)"));
}

#[test]
fn compare_matches_rows_and_shows_b_minus_a() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    write_run(&a, "sft", 0.0);
    write_run(&b, "rl", 1.0);
    // B lacks row 3: three pairs, one sample only in A.
    let text = std::fs::read_to_string(b.join("samples.jsonl")).unwrap();
    std::fs::write(b.join("samples.jsonl"), text.lines().take(3).collect::<Vec<_>>().join("\n") + "\n").unwrap();
    let out = write_compare(&a, &b, &tmp.path().join("cmp.html")).unwrap();
    let html = std::fs::read_to_string(out).unwrap();
    assert!(html.contains("3 matched by benchmark and row; 1 only in A, 0 only in B"), "counts");
    // Rows 0 and 1 gain 1 on every metric; row 2 is a judge failure (0) in both.
    assert_eq!(attr_values(&html, "data-d_vie_all"), ["1", "1", "0"]);
    // Mean over the pairs: A (1.5 + 4.5 + 0) / 3 = 2, B (2.5 + 5.5 + 0) / 3 = 2.667; B higher twice, A never.
    assert!(html.contains("<td>vie_all</td><td>3</td><td>2.000</td><td>2.667</td><td><span class=\"pos\">+0.67</span></td><td>2</td><td>0</td>"), "summary");
    assert_eq!(attr_values(&html, "src").len(), 3 * 4);
    assert!(html.contains("B − A vie_all, largest first"));
}

#[test]
fn runs_without_a_sample_in_common_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    write_run(&a, "x", 0.0);
    write_run(&b, "y", 0.0);
    let text = std::fs::read_to_string(b.join("samples.jsonl")).unwrap().replace("\"aurora\"", "\"emuedit\"");
    std::fs::write(b.join("samples.jsonl"), text).unwrap();
    let e = write_compare(&a, &b, &tmp.path().join("c.html")).unwrap_err().to_string();
    assert!(e.contains("no sample in common"), "{e}");
}

#[test]
fn the_reader_keeps_a_rows_last_line_and_skips_only_an_unfinished_last_line() {
    let tmp = tempfile::tempdir().unwrap();
    write_run(tmp.path(), "r", 0.0);
    let path = tmp.path().join("samples.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let first = text.lines().next().unwrap().replace("\"vie_all\":1.5", "\"vie_all\":9.0");
    std::fs::write(&path, format!("{text}{first}\n{{\"benchmark\": \"aur")).unwrap();
    let run = RunDir::open(tmp.path()).unwrap();
    assert_eq!(run.samples.len(), 4);
    assert_eq!(run.samples[0].vie_all, Some(9.0));
    std::fs::write(&path, format!("{{\"benchmark\": \"aur\n{text}")).unwrap();
    let e = RunDir::open(tmp.path()).unwrap_err().to_string();
    assert!(e.contains("samples.jsonl: line 1: not a sample record"), "{e}");
    std::fs::remove_file(&path).unwrap();
    assert!(write_report(tmp.path()).unwrap_err().to_string().contains("samples.jsonl"));
}
