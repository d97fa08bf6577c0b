//! Edits an image with the [`Editor`] pipeline: source image → VQ codes → EARL prompt → grid-constrained generation
//! → decoded image. Without arguments it runs on the tiny random fixture bundle (the pipeline is real, the edit is
//! not meaningful); with a real checkpoint pass its directories:
//! `cargo run -p earl-core --example edit_image -- [MODEL_DIR VQ_DIR IMAGE "INSTRUCTION" OUT.png]`.
use std::path::{Path, PathBuf};

use earl_core::edit::{EditInput, EditOptions, Editor};
use earl_core::imageproc::{self, LoadLimits};
use tch::{Device, Kind};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: PathBuf| args.get(i).map(PathBuf::from).unwrap_or(default);
    let model = arg(0, fixtures.join("bundle-tiny"));
    let vq = arg(1, fixtures.join("vq-tiny"));
    let image = arg(2, fixtures.join("bundle-tiny/example.png"));
    let instruction = args.get(3).cloned().unwrap_or_else(|| "make the sky purple".into());
    let out = arg(4, std::env::temp_dir().join("earl-example-edit.png"));

    // The tokenizer files sit in the model directory of an EARL checkpoint.
    let editor = Editor::load(&model, &vq, &model, Kind::Float, Kind::Float, Device::Cpu)?;
    let source = editor.encode_image(&imageproc::load_rgb(&image, &LoadLimits::default())?)?;
    let input = EditInput { source: source.clone(), instruction };
    let opts = EditOptions { seed: 7, ..Default::default() };
    let (outputs, timings) = editor.edit(&[input], &opts, &mut |_, _| {})?;
    let edited = &outputs[0];
    println!(
        "source {}×{} codes; {} tokens, finish {}",
        source.w(),
        source.h(),
        edited.tokens.len(),
        edited.finish.as_str()
    );
    match &edited.grid {
        Ok(grid) => {
            imageproc::save(&editor.decode_grid(grid)?, &out)?;
            println!(
                "edited image ({}×{} codes) written to {} in {:.2}s",
                grid.w(),
                grid.h(),
                out.display(),
                timings.generate_s
            );
        }
        Err(why) => println!("the response holds no image: {why}"),
    }
    Ok(())
}
