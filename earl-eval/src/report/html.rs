//! The HTML pieces both pages share: the page shell (inline CSS and the small sorting script; a Content-Security-
//! Policy that forbids every fetch but `data:` images, so the file provably works offline), escaping, score cells,
//! image figures with the reasoning's boxes drawn over them, and the sort control.
use std::fmt::Write as _;

use super::images::Shown;

/// Text made safe for HTML content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
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

/// A score as shown: two decimals, or "—" when the sample has none.
pub(crate) fn score(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_string(), |v| format!("{v:.2}"))
}

/// A whole page around `body`.
pub(crate) fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<meta http-equiv=\"Content-Security-Policy\" \
         content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n\
         <title>{}</title>\n<style>{CSS}</style></head>\n<body>\n{body}\n<script>{JS}</script>\n</body></html>\n",
        esc(title)
    )
}

/// Box colours, in the order the reasoning names the boxes.
const COLOURS: [&str; 6] = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4"];

/// A figure: the image (or a placeholder saying why there is none) with `boxes` drawn over it. Boxes are in the
/// pixels of the model's input image, whose area is `box_area` with the image's aspect ratio (the stored image may
/// have another size: the judge's "original" is resized to 65536, the model's input to 65636).
pub(crate) fn figure(shown: &Shown, caption: &str, boxes: &[[f64; 4]], box_area: f64) -> String {
    let inner = match shown {
        Shown::Missing(why) => format!("<div class=\"noimg\">no image<br><small>{}</small></div>", esc(why)),
        Shown::Image { url, width, height } => {
            let mut overlay = String::new();
            if !boxes.is_empty() {
                let k = (box_area / (*width as f64 * *height as f64)).sqrt();
                let (vw, vh) = (*width as f64 * k, *height as f64 * k);
                let _ = write!(
                    overlay,
                    "<svg class=\"boxes\" viewBox=\"0 0 {vw:.2} {vh:.2}\" preserveAspectRatio=\"none\">"
                );
                for (i, b) in boxes.iter().enumerate() {
                    let (x, y) = (b[0].min(b[2]), b[1].min(b[3]));
                    let (w, h) = ((b[2] - b[0]).abs(), (b[3] - b[1]).abs());
                    let c = COLOURS[i % COLOURS.len()];
                    let _ = write!(
                        overlay,
                        "<rect x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" stroke=\"{c}\"/>\
                         <text x=\"{x}\" y=\"{}\" fill=\"{c}\">{}</text>",
                        y + 12.0,
                        i + 1
                    );
                }
                overlay.push_str("</svg>");
            }
            format!("<img src=\"{url}\" width=\"{width}\" height=\"{height}\" alt=\"{}\">{overlay}", esc(caption))
        }
    };
    format!("<figure><div class=\"frame\">{inner}</div><figcaption>{}</figcaption></figure>", esc(caption))
}

/// A `<select>` that sorts the children of element `target` by one of their `data-` attributes; `options` are
/// (`attribute:asc|desc`, label) pairs.
pub(crate) fn sort_control(target: &str, options: &[(String, String)]) -> String {
    let mut s = format!("<label class=\"sortby\">sort by <select class=\"sort\" data-target=\"{}\">", esc(target));
    for (value, label) in options {
        let _ = write!(s, "<option value=\"{}\">{}</option>", esc(value), esc(label));
    }
    s + "</select></label>"
}

const CSS: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}\
h1{font-size:1.5em}h2{margin-top:1.6em;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}\
th:first-child,td:first-child{text-align:left}\
.hists{display:flex;flex-wrap:wrap;gap:8px}.gallery{display:flex;flex-direction:column;gap:12px}\
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:10px}\
.head{font-weight:600}.flag{color:#fff;background:#c0392b;border-radius:3px;padding:0 5px;margin-left:6px;\
font-weight:400;font-size:.85em}.instr{margin:.3em 0;font-style:italic}\
.imgs{display:flex;flex-wrap:wrap;gap:10px}figure{margin:0}figcaption{text-align:center;color:#555}\
.frame{position:relative;display:inline-block}.frame img{display:block;width:256px;height:auto;outline:1px solid #ccc}\
.boxes{position:absolute;left:0;top:0;width:100%;height:100%;pointer-events:none;overflow:visible}\
.boxes rect{fill:none;stroke-width:2;vector-effect:non-scaling-stroke}.boxes text{font-size:12px;font-weight:700}\
.noimg{width:256px;height:128px;display:flex;align-items:center;justify-content:center;flex-direction:column;\
background:#eee;color:#777;border:1px dashed #aaa;text-align:center}\
pre{white-space:pre-wrap;background:#f4f4f4;padding:6px;margin:.4em 0;max-height:20em;overflow:auto}\
.pos{color:#1e8449}.neg{color:#c0392b}.sortby{display:block;margin:.5em 0}";

/// Sorting: missing values go last whatever the direction; ties keep dataset row order.
const JS: &str = "function earlSort(sel){var box=document.getElementById(sel.getAttribute('data-target'));\
var p=sel.value.split(':'),key='data-'+p[0],sign=p[1]==='desc'?-1:1;\
var cards=Array.prototype.slice.call(box.children);\
cards.sort(function(a,b){var x=parseFloat(a.getAttribute(key)),y=parseFloat(b.getAttribute(key));\
var xn=isNaN(x),yn=isNaN(y);if(xn||yn){if(xn!==yn)return xn?1:-1;}else if(x!==y){return sign*(x-y);}\
return parseFloat(a.getAttribute('data-row'))-parseFloat(b.getAttribute('data-row'));});\
cards.forEach(function(c){box.appendChild(c);});}\
document.querySelectorAll('select.sort').forEach(function(sel){sel.addEventListener('change',function(){earlSort(sel);});});";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_missing_scores_show_a_dash() {
        assert_eq!(esc("<b a=\"1\">&'"), "&lt;b a=&quot;1&quot;&gt;&amp;&#39;");
        assert_eq!(score(Some(4.466)), "4.47");
        assert_eq!(score(None), "—");
    }

    #[test]
    fn boxes_are_drawn_in_the_model_input_pixels() {
        // A 100×50 image stands for a 200×100 model input (area 20000): the overlay's coordinates are the input's.
        let shown = Shown::Image { url: "data:image/png;base64,AA==".into(), width: 100, height: 50 };
        let f = figure(&shown, "source", &[[150.0, 80.0, 10.0, 20.0]], 20000.0);
        assert!(f.contains("viewBox=\"0 0 200.00 100.00\""), "{f}");
        assert!(f.contains("<rect x=\"10\" y=\"20\" width=\"140\" height=\"60\""), "{f}");
        let none = figure(&shown, "edit", &[], 20000.0);
        assert!(!none.contains("<svg"));
        let missing = figure(&Shown::Missing("gt.png: gone".into()), "GT", &[], 1.0);
        assert!(missing.contains("no image") && missing.contains("gt.png: gone") && !missing.contains("<img"));
    }
}
