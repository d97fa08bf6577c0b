//! The report in a real browser: headless Chromium (the Debian package; `scripts/check_report.sh` installs it and
//! runs this test, which is ignored by plain `cargo test`). For `report.html` and the comparison page it checks that
//! every `<img>` decoded (`naturalWidth > 0`), that nothing raised an error, logged one or broke the page's
//! Content-Security-Policy, that the sort control orders the gallery, and that a screenshot shows the gallery's
//! images (their colours are on screen).
use std::path::Path;
use std::process::Command;

use super::testdata::write_run;
use super::{write_compare, write_report};

/// Injected at the top of a copy of the page: collects errors from the start, then on `load` counts images and
/// broken ones, sorts the first gallery by the first high-first choice of its sort control and checks the order, and writes one line
/// into the DOM for `--dump-dom` to show.
const PROBE: &str = "(function(){var errs=[];\
window.addEventListener('error',function(e){errs.push('error: '+(e.message||(e.target&&e.target.tagName)));},true);\
document.addEventListener('securitypolicyviolation',function(e){errs.push('csp: '+e.blockedURI);});\
var ce=console.error;console.error=function(){errs.push('console: '+Array.prototype.join.call(arguments,' '));\
ce.apply(console,arguments);};\
window.addEventListener('load',function(){var imgs=document.images,broken=0;\
for(var i=0;i<imgs.length;i++){if(!imgs[i].complete||imgs[i].naturalWidth===0)broken++;}\
var sel=document.querySelector('select.sort'),sorted='none';\
if(sel){for(var k=0;k<sel.options.length;k++){if(/:desc$/.test(sel.options[k].value)){sel.selectedIndex=k;break;}}\
sel.dispatchEvent(new Event('change'));\
var key='data-'+sel.value.split(':')[0],box=document.getElementById(sel.getAttribute('data-target'));\
var v=Array.prototype.map.call(box.children,function(c){return parseFloat(c.getAttribute(key));});\
sorted=v.length>1?'ok':'few';for(var j=1;j<v.length;j++){if(!isNaN(v[j])&&(isNaN(v[j-1])||v[j]>v[j-1]))sorted='bad';}}\
var p=document.createElement('pre');p.id='earl-check';p.textContent='EARL-CHECK images='+imgs.length+' broken='+broken\
+' sorted='+sorted+' errors='+errs.length+' ['+errs.join(' | ')+'] END';document.body.appendChild(p);});})();";

fn chromium() -> String {
    std::env::var("EARL_CHROMIUM").unwrap_or_else(|_| "chromium".into())
}

/// Runs Chromium headless on `page` with `args`, under a time limit; returns stdout and stderr.
fn headless(page: &Path, args: &[&str]) -> (String, String) {
    let url = format!("file://{}", page.display());
    let out = Command::new("timeout")
        .arg("120")
        .arg(chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"])
        .args(["--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000", "--hide-scrollbars"])
        .args(args)
        .arg(&url)
        .output()
        .unwrap_or_else(|e| panic!("cannot start {}: {e} (scripts/check_report.sh installs Chromium)", chromium()));
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
    assert!(out.status.success(), "chromium failed on {url}: {}\n{stderr}", out.status);
    (stdout, stderr)
}

/// The probe's line from the dumped DOM of `page`, with its console lines checked too.
fn probe(page: &Path) -> String {
    let html = std::fs::read_to_string(page).unwrap();
    let probed = page.with_extension("probe.html");
    std::fs::write(&probed, html.replacen("<head>", &format!("<head><script>{PROBE}</script>"), 1)).unwrap();
    let (dom, stderr) = headless(&probed, &["--dump-dom"]);
    for line in stderr.lines().filter(|l| l.contains("CONSOLE")) {
        assert!(!line.contains("Uncaught") && !line.contains("Refused"), "console error in {}: {line}", page.display());
    }
    // The dump holds the probe's own source too: find the element it wrote.
    let marker = "<pre id=\"earl-check\">";
    let start =
        dom.find(marker).unwrap_or_else(|| panic!("no probe result in the DOM of {}:\n{stderr}", page.display()));
    let line = &dom[start + marker.len()..];
    line[..line.find("END").expect("the probe line ends")].to_string()
}

/// Pixels of `png` within 30 of `colour` on every channel.
fn pixels_near(png: &image::RgbImage, colour: [u8; 3]) -> usize {
    png.pixels().filter(|p| p.0.iter().zip(colour).all(|(a, b)| a.abs_diff(b) <= 30)).count()
}

fn check(page: &Path, images: usize, shots: &Path) {
    let line = probe(page);
    assert!(
        line.starts_with(&format!("EARL-CHECK images={images} broken=0 sorted=ok errors=0 ")),
        "{}: {line}",
        page.display()
    );
    let shot = shots.join(page.with_extension("png").file_name().unwrap());
    headless(page, &[&format!("--screenshot={}", shot.display()), "--window-size=1280,4000"]);
    let png = image::open(&shot).unwrap_or_else(|e| panic!("{}: no screenshot: {e}", shot.display())).to_rgb8();
    // The gallery's sources are red and its edits blue (testdata); nothing else on the page has those colours.
    let (red, blue) = (pixels_near(&png, [220, 40, 40]), pixels_near(&png, [40, 60, 200]));
    assert!(red > 5000 && blue > 5000, "{}: gallery not on screen (red {red}, blue {blue} pixels)", shot.display());
    let distinct: std::collections::HashSet<[u8; 3]> = png.pixels().map(|p| p.0).collect();
    assert!(distinct.len() > 50, "{}: a near-blank screenshot ({} colours)", shot.display(), distinct.len());
}

#[test]
#[ignore = "needs Chromium: run scripts/check_report.sh"]
fn report_and_compare_render_in_headless_chromium() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("run-a"), tmp.path().join("run-b"));
    write_run(&a, "sft", 0.0);
    write_run(&b, "rl", 1.0);
    let shots = std::env::var_os("EARL_REPORT_SHOTS").map_or_else(|| tmp.path().to_path_buf(), Into::into);
    std::fs::create_dir_all(&shots).unwrap();
    check(&write_report(&a).unwrap(), 11, &shots);
    check(&write_compare(&a, &b, &tmp.path().join("compare.html")).unwrap(), 15, &shots);
}
