//! Damaged checkpoints and bad inputs give one-line errors that name the problem — never a panic.
use earl_core::{Emu3ForCausalLM, ForwardArgs};
use earl_tests::{fixtures_dir, scratch_copy};
use tch::{Device, Kind, Tensor};

fn load_err(dir: &std::path::Path) -> String {
    let e = Emu3ForCausalLM::from_dir(dir, Kind::Float, Device::Cpu).expect_err("loading must fail");
    let msg = e.to_string();
    assert!(!msg.contains('\n'), "error must be one line: {msg}");
    msg
}

#[test]
fn truncated_weights_name_the_file_and_tensor() {
    let dir = scratch_copy("lm-tiny-gqa");
    let f = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() - 1000]).unwrap();
    let msg = load_err(dir.path());
    assert!(msg.contains("model.safetensors") && msg.contains("truncated"), "{msg}");
}

#[test]
fn corrupt_header_is_reported() {
    let dir = scratch_copy("lm-tiny-gqa");
    std::fs::write(dir.path().join("model.safetensors"), b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all").unwrap();
    let msg = load_err(dir.path());
    assert!(msg.contains("model.safetensors") && msg.contains("not a valid safetensors file"), "{msg}");
}

#[test]
fn missing_shard_and_missing_tensor_are_reported() {
    let dir = scratch_copy("lm-tiny-orig");
    std::fs::remove_file(dir.path().join("model-00002-of-00003.safetensors")).unwrap();
    let msg = load_err(dir.path());
    assert!(msg.contains("model-00002-of-00003.safetensors"), "{msg}");

    // A config with more layers than the checkpoint holds: the first absent tensor is named.
    let dir = scratch_copy("lm-tiny-gqa");
    let cfg = dir.path().join("config.json");
    let text = std::fs::read_to_string(&cfg).unwrap().replace("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3");
    std::fs::write(&cfg, text).unwrap();
    let msg = load_err(dir.path());
    assert!(msg.contains("model.layers.2.input_layernorm.weight") && msg.contains("not found"), "{msg}");
}

#[test]
fn mis_shaped_tensor_is_reported() {
    let dir = scratch_copy("lm-tiny-gqa");
    let cfg = dir.path().join("config.json");
    let text = std::fs::read_to_string(&cfg).unwrap().replace("\"intermediate_size\": 96", "\"intermediate_size\": 97");
    std::fs::write(&cfg, text).unwrap();
    let msg = load_err(dir.path());
    assert!(msg.contains("model.layers.0.mlp.gate_proj.weight") && msg.contains("expected shape [97, 64]"), "{msg}");
}

#[test]
fn malformed_config_names_line_and_column() {
    let dir = scratch_copy("lm-tiny-gqa");
    std::fs::write(dir.path().join("config.json"), "{\n  \"model_type\": \"emu3_text_model\",\n  \"vocab_size\": ,\n}")
        .unwrap();
    let msg = load_err(dir.path());
    assert!(msg.contains("config.json:3:") && msg.contains("malformed JSON"), "{msg}");
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"model_type": "Emu3", "rope_scaling": {"type": "yarn", "factor": 4}}"#,
    )
    .unwrap();
    let msg = load_err(dir.path());
    assert!(msg.contains("rope scaling \"yarn\" is not supported"), "{msg}");
    std::fs::remove_file(dir.path().join("config.json")).unwrap();
    let msg = load_err(dir.path());
    assert!(msg.contains("config.json"), "{msg}");
}

#[test]
fn bad_forward_inputs_are_errors_not_panics() {
    let model = Emu3ForCausalLM::from_dir(&fixtures_dir().join("lm-tiny-gqa"), Kind::Float, Device::Cpu).unwrap();
    let too_big = Tensor::from_slice2(&[[1i64, 100_000]]);
    let e = model.forward(&too_big, &ForwardArgs::default(), None).unwrap_err().to_string();
    assert!(e.contains("token ids must lie in [0, 320)"), "{e}");
    let ids = Tensor::from_slice2(&[[1i64, 2, 3]]);
    let mask = Tensor::from_slice2(&[[1i64, 1]]);
    let e = model.forward(&ids, &ForwardArgs { attention_mask: Some(&mask), ..Default::default() }, None).unwrap_err();
    assert!(e.to_string().contains("attention_mask has shape"), "{e}");
    let mut cache = model.new_cache(1, 2).unwrap();
    let e = model.forward(&ids, &ForwardArgs::default(), Some(&mut cache)).unwrap_err();
    assert!(e.to_string().contains("cache overflow"), "{e}");
    let e = model.forward(&Tensor::from_slice(&[1.5f32]).view([1, 1]), &ForwardArgs::default(), None).unwrap_err();
    assert!(e.to_string().contains("must be integer"), "{e}");
}

#[test]
fn non_finite_weights_are_reported_when_checking() {
    // One NaN and one Inf in a copy of a fixture: silent by default (as any loader), an error naming the tensor and
    // the count with weight checking on (`--check-weights`, `earl parity`).
    let d = earl_tests::scratch_copy("lm-tiny-gqa");
    let file = d.path().join("model.safetensors");
    let st = earl_core::SafetensorsStore::open(&file, tch::Kind::Float, tch::Device::Cpu).unwrap();
    let mut kept: Vec<(String, tch::Tensor)> =
        st.names().into_iter().map(|n| (n.clone(), st.tensor_any(&n).unwrap())).collect();
    drop(st);
    let (name, t) = kept.iter_mut().find(|(n, _)| n.ends_with("layers.1.mlp.up_proj.weight")).unwrap();
    let name = name.clone();
    let flat = t.to_kind(tch::Kind::Float).flatten(0, -1);
    let _ = flat.get(3).fill_(f64::NAN);
    let _ = flat.get(7).fill_(f64::INFINITY);
    *t = flat.view(t.size().as_slice());
    tch::Tensor::write_safetensors(&kept, &file).unwrap();
    assert!(earl_core::Emu3ForCausalLM::from_dir(d.path(), tch::Kind::Float, tch::Device::Cpu).is_ok());
    earl_core::weights::set_check_weights(true);
    let e =
        earl_core::Emu3ForCausalLM::from_dir(d.path(), tch::Kind::Float, tch::Device::Cpu).err().unwrap().to_string();
    earl_core::weights::set_check_weights(false);
    assert!(e.contains(&name) && e.contains("2 non-finite values (NaN or Inf)"), "{e}");
}

#[test]
fn config_with_fewer_layers_than_the_weights_is_an_error() {
    // Loading only the first layer would silently build a different model.
    let dir = scratch_copy("lm-tiny-gqa");
    let cfg = dir.path().join("config.json");
    let text = std::fs::read_to_string(&cfg).unwrap().replace("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 1");
    std::fs::write(&cfg, text).unwrap();
    let msg = load_err(dir.path());
    assert!(msg.contains("more decoder layers than the config's num_hidden_layers = 1"), "{msg}");
}

#[test]
fn integer_weight_is_refused_not_cast() {
    let d = scratch_copy("lm-tiny-gqa");
    let file = d.path().join("model.safetensors");
    let st = earl_core::SafetensorsStore::open(&file, Kind::Float, Device::Cpu).unwrap();
    let mut kept: Vec<(String, Tensor)> =
        st.names().into_iter().map(|n| (n.clone(), st.tensor_any(&n).unwrap())).collect();
    drop(st);
    let (_, t) = kept.iter_mut().find(|(n, _)| n.ends_with("layers.0.mlp.down_proj.weight")).unwrap();
    *t = t.to_kind(Kind::Int64);
    Tensor::write_safetensors(&kept, &file).unwrap();
    let msg = load_err(d.path());
    assert!(msg.contains("layers.0.mlp.down_proj.weight") && msg.contains("integer"), "{msg}");
}

#[test]
fn missing_shape_field_is_blamed_on_the_config() {
    // transformers fills an absent hidden_size with 4096 as we do; the error must then say the config is the cause.
    let dir = scratch_copy("lm-tiny-gqa");
    let cfg = dir.path().join("config.json");
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    json.as_object_mut().unwrap().remove("hidden_size");
    std::fs::write(&cfg, json.to_string()).unwrap();
    let msg = load_err(dir.path());
    assert!(msg.contains("config.json does not set hidden_size"), "{msg}");
}
