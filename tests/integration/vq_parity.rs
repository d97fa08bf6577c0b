//! The vision tokenizer against transformers 5.17.0 `Emu3VQVAE` (fixtures/gen_vq.py): in f32, codes equal but where
//! the reference's nearest-code gap is a near-tie that f32 rounding explains, and decoded pixels within 1e-5 relative
//! L2, for the transformers and the original BAAI checkpoint layouts and a wider tokenizer on inputs that are not
//! multiples of the factor, on every available device (TF32 off, as by default); and clear errors for damaged
//! checkpoints.
use earl_core::parity::check_vq_reference;
use earl_core::{Emu3VqModel, SafetensorsStore, VqLayout};
use earl_tests::{fixtures_dir, scratch_copy, test_devices, VQ_FIXTURES};
use tch::{Device, Kind, Tensor};

#[test]
fn vq_matches_the_reference_in_both_layouts() {
    for name in VQ_FIXTURES {
        let dir = fixtures_dir().join(name);
        let reference = SafetensorsStore::open(&dir.join("reference.safetensors"), Kind::Float, Device::Cpu).unwrap();
        for device in test_devices() {
            let model = Emu3VqModel::from_dir(&dir, Kind::Float, device).unwrap();
            let want = if name.ends_with("-orig") { VqLayout::Original } else { VqLayout::Transformers };
            assert_eq!(model.cfg.layout, want);
            let p = check_vq_reference(&model, &reference).unwrap();
            let beyond = p.codes_flipped_beyond_gap.expect("fixture references carry code_gap");
            assert_eq!(beyond, 0, "{name} on {device:?}: {}/{} codes equal", p.codes_equal, p.codes_total);
            // f32 through a conv net of ~20 layers: the CPU agrees to ~6e-7 and CUDA without TF32 alike; 1e-5 is the
            // f32 parity bound of `earl parity`, ~170 unit roundoffs, far under TF32's 4.9e-4 per operand.
            assert!(p.decoded.rel_l2 <= 1e-5, "{name} on {device:?}: decoded {}", p.decoded);
            eprintln!("{name} on {device:?}: codes {}/{}, decoded {}", p.codes_equal, p.codes_total, p.decoded);
        }
    }
}

#[test]
fn reference_codes_use_much_of_the_codebook() {
    // Guards the fixture itself: a parity test over a constant grid would prove little.
    let file = fixtures_dir().join("vq-tiny/reference.safetensors");
    let r = SafetensorsStore::open(&file, Kind::Float, Device::Cpu).unwrap();
    let codes = r.tensor_any("codes").unwrap();
    let distinct = codes.flatten(0, -1).unique_dim(0, true, false, false).0.size()[0];
    assert!(distinct >= 16, "only {distinct} distinct codes");
}

#[test]
fn both_layouts_load_identical_weights() {
    let t = Emu3VqModel::from_dir(&fixtures_dir().join("vq-tiny"), Kind::Float, Device::Cpu).unwrap();
    let o = Emu3VqModel::from_dir(&fixtures_dir().join("vq-tiny-orig"), Kind::Float, Device::Cpu).unwrap();
    let codes = Tensor::arange(64, (Kind::Int64, Device::Cpu)).view([1, 8, 8]);
    assert_eq!(t.decode(&codes).unwrap(), o.decode(&codes).unwrap());
}

#[test]
fn the_vq_inside_a_multimodal_checkpoint_loads() {
    // lm-tiny-mha is a saved Emu3ForConditionalGeneration: its VQ lives under `vqmodel.` with a `vq_config`.
    let m = Emu3VqModel::from_dir(&fixtures_dir().join("lm-tiny-mha"), Kind::Float, Device::Cpu).unwrap();
    assert_eq!((m.cfg.layout, m.cfg.spatial_factor(), m.cfg.codebook_size), (VqLayout::TransformersMultimodal, 2, 64));
    let out = m.decode(&Tensor::zeros([1, 3, 2], (Kind::Int64, Device::Cpu))).unwrap();
    assert_eq!(out.size(), [1, 3, 6, 4]);
}

fn load_error(dir: &std::path::Path) -> String {
    Emu3VqModel::from_dir(dir, Kind::Float, Device::Cpu).unwrap_err().to_string()
}

#[test]
fn damaged_vq_checkpoints_are_clear_errors() {
    // A tensor missing.
    let d = scratch_copy("vq-tiny-orig");
    let file = d.path().join("model.safetensors");
    let st = SafetensorsStore::open(&file, Kind::Float, Device::Cpu).unwrap();
    let mut kept: Vec<(String, Tensor)> = st
        .names()
        .into_iter()
        .filter(|n| n != "decoder.mid.attn_1.q.weight")
        .map(|n| (n.clone(), st.tensor_any(&n).unwrap()))
        .collect();
    drop(st);
    Tensor::write_safetensors(&kept, &file).unwrap();
    let e = load_error(d.path());
    assert!(e.contains("tensor `decoder.mid.attn_1.q.weight` not found"), "{e}");

    // A tensor of the wrong shape.
    kept.push(("decoder.mid.attn_1.q.weight".into(), Tensor::zeros([32, 32], (Kind::Float, Device::Cpu))));
    Tensor::write_safetensors(&kept, &file).unwrap();
    let e = load_error(d.path());
    assert!(e.contains("decoder.mid.attn_1.q.weight") && e.contains("expected shape [32, 32, 1, 1]"), "{e}");

    // A truncated weights file.
    let d = scratch_copy("vq-tiny");
    let file = d.path().join("model.safetensors");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let e = load_error(d.path());
    assert!(e.contains("truncated"), "{e}");

    // A malformed and an inconsistent config.
    std::fs::write(d.path().join("config.json"), "{\"model_type\": \"emu3_vqgan\",").unwrap();
    let e = load_error(d.path());
    assert!(e.contains("config.json:1:") && e.contains("malformed JSON"), "{e}");
    std::fs::write(d.path().join("config.json"), r#"{"model_type": "emu3_vqgan", "base_channels": 20}"#).unwrap();
    let e = load_error(d.path());
    assert!(e.contains("invalid config") && e.contains("normalisation groups"), "{e}");
}

/// The Python of the reference (transformers 5.17.0): `$EARL_PYTHON`, else the project's `.venv`, else `python3`.
fn reference_python() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("EARL_PYTHON") {
        return p.into();
    }
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let active = std::env::var_os("VIRTUAL_ENV").map(|v| std::path::PathBuf::from(v).join("bin/python"));
    active.filter(|p| p.is_file()).unwrap_or(if venv.is_file() { venv } else { "python3".into() })
}

#[test]
fn a_tokenizer_trained_here_loads_in_transformers_and_passes_parity() {
    use earl_core::vq::train::{mini_vq_config, train_vq, RawVqTrainConfig, VqTrainConfig};
    // A few steps on hard-edged two-colour images: enough to move every weight away from its initial value.
    let images = (0..8u32).map(|i| {
        image::RgbImage::from_fn(16, 16, |x, y| {
            let inside = (x + i) % 16 < 8 && (y + 2 * i) % 16 < 10;
            image::Rgb(if inside { [200, (40 * i) as u8, 30] } else { [250, 250, 250] })
        })
    });
    let raw = RawVqTrainConfig { steps: Some(4), batch_size: Some(2), ..Default::default() };
    let model_cfg = earl_core::VqConfig { codebook_size: 64, channel_multiplier: vec![1, 1, 2, 2], ..mini_vq_config() };
    let cfg = VqTrainConfig { model: model_cfg, ..raw.into_config(Device::Cpu).unwrap() };
    let dir = tempfile::tempdir().unwrap();
    train_vq(images, &cfg, dir.path(), |_| {}).unwrap();

    let refdir = tempfile::tempdir().unwrap();
    let reference_file = refdir.path().join("reference.safetensors");
    let script = fixtures_dir().join("check_trained_vq.py");
    let out = std::process::Command::new(reference_python())
        .arg(&script)
        .arg("--model")
        .arg(dir.path())
        .arg("--out")
        .arg(&reference_file)
        .env("OMP_NUM_THREADS", "1")
        .output()
        .expect("running the reference Python (set EARL_PYTHON to one with transformers 5.17.0)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{} failed:\n{stderr}", script.display());

    let reference = SafetensorsStore::open(&reference_file, Kind::Float, Device::Cpu).unwrap();
    let model = Emu3VqModel::from_dir(dir.path(), Kind::Float, Device::Cpu).unwrap();
    let p = check_vq_reference(&model, &reference).unwrap();
    assert_eq!(p.codes_flipped_beyond_gap, Some(0), "codes {}/{} equal", p.codes_equal, p.codes_total);
    assert!(p.decoded.rel_l2 <= 1e-5, "decoded {}", p.decoded);
}
