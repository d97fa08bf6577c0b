//! Images of a run directory as `data:` URLs, so that a report is one file that works offline. A small PNG or JPEG
//! goes in as stored; a larger one is re-encoded as a JPEG (quality 90) to keep a 1000-sample report loadable — the
//! PNGs in the run directory stay the record, the report shows previews. Every image is decoded first, so that a
//! corrupt file becomes a visible "unreadable" placeholder instead of a broken `<img>`.
use std::io::Cursor;
use std::path::Path;

use base64::Engine as _;
use image::ImageFormat;

/// Files up to this size are embedded as stored.
const RAW_LIMIT: usize = 48 * 1024;

/// An image ready for the page, or why there is none.
#[derive(Debug, Clone)]
pub(crate) enum Shown {
    /// A decodable image: its `data:` URL and pixel size.
    Image {
        /// `data:image/…;base64,…`.
        url: String,
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// No image: the record has no path, or the file is missing or unreadable (the text says which).
    Missing(String),
}

/// The image at `rel` (relative to `dir`, as the run directory's records store paths).
pub(crate) fn embed(dir: &Path, rel: Option<&str>) -> Shown {
    let Some(rel) = rel else {
        return Shown::Missing("none".into());
    };
    let path = dir.join(rel);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!("{}: {e}", path.display());
            return Shown::Missing(format!("{rel}: {e}"));
        }
    };
    let format = image::guess_format(&bytes).ok();
    let img = match image::load_from_memory(&bytes) {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!("{}: unreadable image: {e}", path.display());
            return Shown::Missing(format!("{rel}: unreadable image"));
        }
    };
    let (width, height) = (img.width(), img.height());
    let raw_mime = match format {
        Some(ImageFormat::Png) => Some("image/png"),
        Some(ImageFormat::Jpeg) => Some("image/jpeg"),
        _ => None,
    };
    let (mime, data) = match raw_mime {
        Some(m) if bytes.len() <= RAW_LIMIT => (m, bytes),
        _ => {
            let mut out = Cursor::new(Vec::new());
            let rgb = img.to_rgb8();
            let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90);
            if let Err(e) = rgb.write_with_encoder(enc) {
                return Shown::Missing(format!("{rel}: cannot re-encode: {e}"));
            }
            ("image/jpeg", out.into_inner())
        }
    };
    let url = format!("data:{mime};base64,{}", base64::engine::general_purpose::STANDARD.encode(data));
    Shown::Image { url, width, height }
}
