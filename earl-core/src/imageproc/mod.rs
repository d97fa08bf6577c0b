//! Image processing as EARL does it around the vision tokenizer. Loading: PNG, JPEG and WebP files, with explicit
//! decompression-bomb limits checked before any pixel is decoded; grayscale, 16-bit and alpha images become 8-bit RGB
//! (alpha composited over white, as transformers' `convert_to_rgb`). Preprocessing: EARL's data preparation resizes
//! to a target pixel area keeping the aspect ratio (`int(round(h * sqrt(area / (h * w))))`, default 256×256) with
//! no snapping to the spatial factor (the processor runs with `do_resize=False`; the encoder floors the grid), the
//! image is resized once to that size with Pillow-exact bicubic resampling ([`resize::resize_bicubic`]), rescaled by
//! 1/255 and normalised with the checkpoint's `preprocessor_config.json` mean/std. Postprocessing is the reference
//! inverse (`x * std + mean`, ×255, clip, truncate to 8 bits).
pub mod resize;

use std::io::Cursor;
use std::path::Path;

pub use ::image::RgbImage;
use ::image::{DynamicImage, ImageDecoder, ImageReader, Limits};
use serde::Deserialize;
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};
pub use resize::resize_bicubic;

/// Limits on what an input file may decode to (decompression bombs: a small file claiming a huge image).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadLimits {
    /// Widest image accepted, in pixels.
    pub max_width: u32,
    /// Tallest image accepted, in pixels.
    pub max_height: u32,
    /// Width × height; Pillow's own guard (`Image.MAX_IMAGE_PIXELS`) is 89,478,485.
    pub max_pixels: u64,
    /// File size in bytes.
    pub max_file_bytes: u64,
}

impl Default for LoadLimits {
    fn default() -> Self {
        LoadLimits { max_width: 16_384, max_height: 16_384, max_pixels: 89_478_485, max_file_bytes: 256 << 20 }
    }
}

/// Reads an image file and converts it to 8-bit RGB.
pub fn load_rgb(path: &Path, limits: &LoadLimits) -> Result<RgbImage> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.len() > limits.max_file_bytes {
        return Err(Error::input(format!(
            "{}: file of {} bytes exceeds the limit of {} bytes",
            path.display(),
            meta.len(),
            limits.max_file_bytes
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode_rgb(&bytes, limits).map_err(|e| match e {
        Error::Input(msg) => Error::input(format!("{}: {msg}", path.display())),
        other => other,
    })
}

/// Decodes an in-memory PNG/JPEG/WebP file to 8-bit RGB, enforcing `limits` before decoding the pixels.
pub fn decode_rgb(bytes: &[u8], limits: &LoadLimits) -> Result<RgbImage> {
    let bad = |what: &str, e: &dyn std::fmt::Display| Error::input(format!("{what}: {e}"));
    let mut reader =
        ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| bad("unreadable image", &e))?;
    if reader.format().is_none() {
        return Err(Error::input("not a PNG, JPEG or WebP image (unrecognised file signature)"));
    }
    let mut l = Limits::default();
    l.max_image_width = Some(limits.max_width);
    l.max_image_height = Some(limits.max_height);
    l.max_alloc = Some(limits.max_pixels.saturating_mul(8).max(1 << 20));
    reader.limits(l);
    let decoder = reader.into_decoder().map_err(|e| bad("unreadable image", &e))?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(Error::input(format!("image has no pixels ({w}×{h})")));
    }
    if w > limits.max_width || h > limits.max_height || w as u64 * h as u64 > limits.max_pixels {
        return Err(Error::input(format!(
            "image of {w}×{h} pixels exceeds the limits ({}×{}, {} pixels): possible decompression bomb",
            limits.max_width, limits.max_height, limits.max_pixels
        )));
    }
    if is_animated(bytes) {
        // As PIL's `Image.open(...).convert("RGB")` in the reference: the first frame. Said, so it is not a surprise.
        tracing::warn!("animated image: only its first frame is used");
    }
    let img = DynamicImage::from_decoder(decoder).map_err(|e| bad("corrupt image", &e))?;
    Ok(to_rgb(img))
}

/// Whether a PNG holds an animation (an `acTL` chunk before the image data, APNG) or a WebP has the animation flag of
/// its `VP8X` header. Reads only the container headers.
pub fn is_animated(bytes: &[u8]) -> bool {
    if let Some(mut rest) = bytes.strip_prefix(b"\x89PNG\r\n\x1a\n") {
        while rest.len() >= 8 {
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            match &rest[4..8] {
                b"acTL" => return true,
                b"IDAT" => return false,
                _ => rest = rest.get(12usize.saturating_add(len)..).unwrap_or(&[]),
            }
        }
        return false;
    }
    // RIFF....WEBPVP8X, then the flags byte: bit 1 is "animation".
    bytes.len() > 20 && &bytes[..4] == b"RIFF" && &bytes[8..16] == b"WEBPVP8X" && bytes[20] & 0x02 != 0
}

/// 8-bit RGB from any decoded image: 16-bit channels are scaled to 8 bits, gray is replicated, and alpha is
/// composited over white (transformers `convert_to_rgb`, which EARL's processors call).
pub fn to_rgb(img: DynamicImage) -> RgbImage {
    if !img.color().has_alpha() {
        return img.to_rgb8();
    }
    let rgba = img.to_rgba8();
    let (w, h) = rgba.dimensions();
    let data = rgba
        .pixels()
        .flat_map(|p| {
            let a = p.0[3] as u32;
            // c·a + 255·(255 − a), divided by 255 with rounding.
            [0, 1, 2].map(move |i| ((p.0[i] as u32 * a + 255 * (255 - a) + 127) / 255) as u8)
        })
        .collect();
    RgbImage::from_raw(w, h, data).expect("buffer size matches the dimensions")
}

/// How images become tokenizer inputs and back.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageProcessConfig {
    /// Target pixel area of EARL's aspect-preserving resize (default 256×256).
    pub area: u64,
    /// Pixels per code (the tokenizer's spatial factor).
    pub factor: u32,
    /// Bounds on the area-resized size (an error outside them). Defaults: one code, and 4096×4096. The checkpoint's
    /// own `min_pixels`/`max_pixels` (512², 1024²) are not used: EARL resizes by area and calls the processor with
    /// `do_resize=False`.
    pub min_pixels: u64,
    /// Upper bound of the area-resized size, in pixels (see `min_pixels`).
    pub max_pixels: u64,
    /// Multiplies the 0–255 pixel values first (`1/255`).
    pub rescale_factor: f64,
    /// Per-channel (RGB) mean subtracted after rescaling.
    pub mean: [f32; 3],
    /// Per-channel (RGB) divisor after the mean; positive.
    pub std: [f32; 3],
}

impl ImageProcessConfig {
    /// EARL defaults for a tokenizer of spatial factor `factor`: area 65536, mean = std = 0.5.
    pub fn new(factor: u32) -> Self {
        ImageProcessConfig {
            area: 256 * 256,
            factor,
            min_pixels: factor as u64 * factor as u64,
            max_pixels: 4096 * 4096,
            rescale_factor: 1.0 / 255.0,
            mean: [0.5; 3],
            std: [0.5; 3],
        }
    }

    /// Defaults, with mean, std and rescale factor from `dir/preprocessor_config.json` when the file exists.
    pub fn from_dir(dir: &Path, factor: u32) -> Result<Self> {
        let mut cfg = Self::new(factor);
        let path = dir.join("preprocessor_config.json");
        if !path.exists() {
            return Ok(cfg);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let raw: RawPreprocessorConfig = serde_json::from_str(&text).map_err(|e| Error::Json {
            path: path.clone(),
            line: e.line(),
            column: e.column(),
            msg: e.to_string(),
        })?;
        let bad = |msg: String| Error::Config { path: path.clone(), msg };
        if let Some(m) = raw.image_mean {
            cfg.mean = m.triple().map_err(|e| bad(format!("image_mean: {e}")))?;
        }
        if let Some(s) = raw.image_std {
            cfg.std = s.triple().map_err(|e| bad(format!("image_std: {e}")))?;
        }
        if let Some(r) = raw.rescale_factor {
            cfg.rescale_factor = r;
        }
        if raw.spatial_factor.is_some_and(|f| f != factor) {
            return Err(bad(format!("spatial_factor {:?} differs from the tokenizer's {factor}", raw.spatial_factor)));
        }
        cfg.validate().map_err(bad)?;
        Ok(cfg)
    }

    /// Checks positive factor, area, std and rescale factor, and `min_pixels ≤ max_pixels`, `area ≤ max_pixels`.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.factor == 0 || self.area == 0 {
            return Err("factor and area must be positive".into());
        }
        if self.std.iter().any(|&s| !(s > 0.0)) || !(self.rescale_factor > 0.0) {
            return Err(format!("std {:?} and rescale_factor {} must be positive", self.std, self.rescale_factor));
        }
        if self.min_pixels > self.max_pixels {
            return Err(format!("min_pixels {} exceeds max_pixels {}", self.min_pixels, self.max_pixels));
        }
        if self.area > self.max_pixels {
            return Err(format!("area {} exceeds max_pixels {}", self.area, self.max_pixels));
        }
        Ok(())
    }
}

/// Serde mirror of the fields of `preprocessor_config.json` we use.
#[derive(Debug, Deserialize)]
struct RawPreprocessorConfig {
    image_mean: Option<FloatOrList>,
    image_std: Option<FloatOrList>,
    rescale_factor: Option<f64>,
    spatial_factor: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FloatOrList {
    One(f32),
    List(Vec<f32>),
}

impl FloatOrList {
    fn triple(&self) -> std::result::Result<[f32; 3], String> {
        match self {
            FloatOrList::One(v) => Ok([*v; 3]),
            FloatOrList::List(v) => {
                <[f32; 3]>::try_from(v.as_slice()).map_err(|_| format!("need 3 values, got {}", v.len()))
            }
        }
    }
}

/// EARL's area-preserving size (height, width) of an `h × w` image at pixel area `area` (the `smart_resize` of its
/// data preparation and evaluation scripts: aspect kept, `int(round(side · √(area / (h·w))))` with Python's
/// round-half-to-even).
pub fn area_size(h: u32, w: u32, area: u64) -> (f64, f64) {
    let r = (area as f64 / (h as f64 * w as f64)).sqrt();
    ((h as f64 * r).round_ties_even(), (w as f64 * r).round_ties_even())
}

/// The size (height, width) an image of `h × w` is resized to before encoding: EARL's [`area_size`], **not** snapped
/// to the spatial factor. EARL calls the tokenizer's processor with `do_resize=False`, so nothing snaps it; the VQ
/// encoder's stride-2 convolutions then floor the grid ([`grid_size`]): 640×480 at 65536 → 222×296 pixels → 27×37
/// codes. `min_pixels`/`max_pixels` bound the resized size; outside them is an error, not a silent re-snap.
pub fn target_size(h: u32, w: u32, cfg: &ImageProcessConfig) -> Result<(u32, u32)> {
    let (th, tw) = area_size(h, w, cfg.area);
    let f = cfg.factor as f64;
    if th < f || tw < f {
        return Err(Error::input(format!(
            "image of {h}×{w} pixels resizes to {th}×{tw} at area {}, less than one code (spatial factor {})",
            cfg.area, cfg.factor
        )));
    }
    let pixels = th * tw;
    if pixels < cfg.min_pixels as f64 || pixels > cfg.max_pixels as f64 {
        return Err(Error::input(format!(
            "image of {h}×{w} pixels resizes to {th}×{tw} = {pixels} pixels at area {}, outside min_pixels {} … \
             max_pixels {}",
            cfg.area, cfg.min_pixels, cfg.max_pixels
        )));
    }
    Ok((th as u32, tw as u32))
}

/// The code grid (rows, columns) the vision tokenizer makes of an image of `h × w` pixels: each side floored to the
/// spatial factor, as the reference encoder's stride-2 convolutions (`⌊⌊⌊h/2⌋/2⌋/2⌋ = ⌊h/8⌋`) do.
pub fn grid_size(h: u32, w: u32, factor: u32) -> (u32, u32) {
    (h / factor, w / factor)
}

/// An 8-bit RGB image → normalised pixels [1, 3, H, W] f32 (transformers: rescale in f64, cast to f32, then
/// `(x - mean) / std` in f32). No resizing.
pub fn to_tensor(img: &RgbImage, cfg: &ImageProcessConfig) -> Tensor {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut planar = vec![0f32; 3 * h * w];
    for (i, p) in img.as_raw().chunks_exact(3).enumerate() {
        for c in 0..3 {
            let x = (p[c] as f64 * cfg.rescale_factor) as f32;
            planar[c * h * w + i] = (x - cfg.mean[c]) / cfg.std[c];
        }
    }
    Tensor::from_slice(&planar).view([1, 3, h as i64, w as i64])
}

/// Resize to [`target_size`] and normalise: the tokenizer input [1, 3, H, W] f32 for one image.
pub fn preprocess(img: &RgbImage, cfg: &ImageProcessConfig) -> Result<Tensor> {
    cfg.validate().map_err(|m| Error::input(format!("image processing: {m}")))?;
    let (h, w) = target_size(img.height(), img.width(), cfg)?;
    let resized = if (w, h) == img.dimensions() { img.clone() } else { resize_bicubic(img, w, h) };
    Ok(to_tensor(&resized, cfg))
}

/// Normalised pixels [B, 3, H, W] (any float dtype or device) → 8-bit RGB images, as the reference postprocess:
/// `x * std + mean`, ×255, clipped to [0, 255] and truncated (numpy `astype(uint8)`), not rounded.
pub fn to_rgb8(pixels: &Tensor, cfg: &ImageProcessConfig) -> Result<Vec<RgbImage>> {
    let s = pixels.size();
    let [b, 3, h, w] = s[..] else {
        return Err(Error::input(format!("pixels must be [B, 3, H, W], got {s:?}")));
    };
    crate::error::guard("converting pixels to 8-bit RGB", || {
        let x = pixels.f_to_device(Device::Cpu)?.f_to_kind(Kind::Float)?;
        let mean = Tensor::from_slice(&cfg.mean).view([1, 3, 1, 1]);
        let std = Tensor::from_slice(&cfg.std).view([1, 3, 1, 1]);
        let x = ((x * std + mean) * (1.0 / cfg.rescale_factor)).clamp(0.0, 255.0).to_kind(Kind::Uint8);
        let hwc = x.permute([0, 2, 3, 1]).contiguous(); // [B, H, W, 3]
        (0..b)
            .map(|i| {
                let data = Vec::<u8>::try_from(hwc.get(i).flatten(0, -1))?;
                Ok(RgbImage::from_raw(w as u32, h as u32, data).expect("buffer size matches the dimensions"))
            })
            .collect()
    })
}

/// Writes an RGB image atomically ([`crate::fsio::write_atomic`]: a failed or killed write leaves an earlier file
/// whole); the format follows the final path's extension (png, jpg/jpeg, webp), not the temporary's.
pub fn save(img: &RgbImage, path: &Path) -> Result<()> {
    let cannot = |e: ::image::ImageError| Error::input(format!("{}: cannot write image: {e}", path.display()));
    let format = ::image::ImageFormat::from_path(path).map_err(cannot)?;
    let mut buf = Cursor::new(Vec::new());
    img.write_to(&mut buf, format).map_err(cannot)?;
    crate::fsio::write_atomic(path, buf.get_ref())
}

/// Checks, before any work is spent, that `path` can take an image: a format we write from its extension, and a
/// directory that exists. (Without it, a typo in the extension was found only after the whole generation.)
pub fn check_output(path: &Path) -> Result<()> {
    let format = ::image::ImageFormat::from_path(path)
        .map_err(|e| Error::input(format!("{}: cannot write an image there: {e}", path.display())))?;
    if !format.writing_enabled()
        || !matches!(format, ::image::ImageFormat::Png | ::image::ImageFormat::Jpeg | ::image::ImageFormat::WebP)
    {
        return Err(Error::input(format!(
            "{}: writing {format:?} is not supported (use .png, .jpg or .webp)",
            path.display()
        )));
    }
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) if !dir.is_dir() => {
            Err(Error::input(format!("{}: the output directory {} does not exist", path.display(), dir.display())))
        }
        _ => Ok(()),
    }
}

/// Checks that decoding an `h`×`w` grid stays within `max_pixels` (the vision tokenizer's `max_pixels`, which
/// bounds every image the encoder accepts): the decoder's cost grows with the pixel count, and a mistyped grid of
/// 2048×2048 codes would run for minutes before failing for memory.
pub fn check_decode_size(h: u32, w: u32, factor: u32, max_pixels: u64) -> Result<()> {
    let pixels = h as u64 * w as u64 * factor as u64 * factor as u64;
    if pixels > max_pixels {
        return Err(Error::input(format!(
            "a {h}×{w} grid decodes to {}×{} = {pixels} pixels, over max_pixels = {max_pixels} (raise it with --max-pixels)",
            h * factor,
            w * factor
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
