//! The SFT run loop on fixture data (experiments/sft/tiny.toml): the tiny model overfits 16 examples, one seed gives
//! bitwise-identical loss curves, and a run killed after step k and resumed equals an uninterrupted run — losses and
//! final weights bit for bit (dropout on, so the per-step RNG re-seeding is exercised too).
use std::path::Path;

use earl_core::data::ShardReader;
use earl_core::train::{run_sft, DataStream, RunControl, SequenceShards, SequenceSource, SftExperiment, ValidationSet};
// libtorch's dropout generator is process-global: the tests that train with dropout take turns (TORCH_RNG).
use earl_tests::{fixtures_dir, TORCH_RNG};

fn experiment(runs: &Path) -> SftExperiment {
    std::env::set_var("EARL_FIXTURES", fixtures_dir());
    std::env::set_var("EARL_RUNS", runs);
    let path = fixtures_dir().join("../experiments/sft/tiny.toml");
    SftExperiment::from_file(&path).unwrap()
}

fn vocab(exp: &SftExperiment) -> i64 {
    earl_core::Emu3Config::from_dir(&exp.model).unwrap().vocab_size
}

fn run(exp: &SftExperiment, control: RunControl) -> Vec<f64> {
    let reader = ShardReader::open(&exp.data_paths[0]).unwrap();
    let sources: Vec<Box<dyn SequenceSource>> = vec![Box::new(SequenceShards::new(reader, vocab(exp)))];
    let mut stream = DataStream::new(sources, exp.coefficients.as_deref(), exp.seed).unwrap();
    let validation = (!exp.validation_paths.is_empty()).then(|| {
        let reader = ShardReader::open(&exp.validation_paths[0]).unwrap();
        let sources: Vec<Box<dyn SequenceSource>> = vec![Box::new(SequenceShards::new(reader, vocab(exp)))];
        ValidationSet::sample(&sources, exp.validation_size, exp.seed).unwrap()
    });
    run_sft(exp, &mut stream, validation.as_ref(), control, &mut |_| {}).unwrap().losses
}

/// (step, loss bits, eval_loss bits when the step evaluated) of every metrics line.
fn logged_losses(dir: &Path) -> Vec<(u64, u64, Option<u64>)> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["step"].as_u64().unwrap(),
                v["loss"].as_f64().unwrap().to_bits(),
                v["eval_loss"].as_f64().map(f64::to_bits),
            )
        })
        .collect()
}

#[test]
fn tiny_experiment_overfits() {
    let _rng = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let exp = experiment(tmp.path());
    let losses = run(&exp, RunControl::default());
    assert_eq!(losses.len(), 60);
    let (first, last) = (losses[0], *losses.last().unwrap());
    eprintln!("tiny overfit: loss {first:.4} → {last:.4}");
    assert!(last < 0.1 * first, "loss fell only from {first} to {last}");
    // The final checkpoint is a loadable model directory.
    let ckpt = exp.output_dir.join("checkpoint-60");
    let m = earl_core::Emu3ForCausalLM::from_dir(&ckpt, tch::Kind::Float, tch::Device::Cpu).unwrap();
    assert_eq!(m.named_parameters().len(), 21);
    assert_eq!(earl_core::train::checkpoint::list_checkpoints(&exp.output_dir).len(), 2, "save_total_limit = 2");
    // Validation (tiny.toml: 8 samples of the training data, every 20 steps) falls with the training loss.
    let evals: Vec<(u64, f64)> =
        logged_losses(&exp.output_dir).into_iter().filter_map(|(s, _, e)| Some((s, f64::from_bits(e?)))).collect();
    assert_eq!(evals.iter().map(|e| e.0).collect::<Vec<_>>(), vec![20, 40, 60]);
    eprintln!("tiny eval_loss: {evals:?}");
    assert!(evals[2].1 < evals[0].1 && evals[2].1 < 0.5 * first, "eval loss should fall: {evals:?}");
}

#[test]
fn one_seed_gives_identical_curves_and_resume_is_exact() {
    let _rng = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let mut a = experiment(&tmp.path().join("a"));
    a.max_steps = 12;
    a.save_steps = 5;
    a.eval_steps = 4; // evaluations at 4, 8 (after the resume point) and 12
    a.output_dir = tmp.path().join("a");
    let mut b = a.clone();
    b.output_dir = tmp.path().join("b");
    let mut c = a.clone();
    c.output_dir = tmp.path().join("c");

    let la = run(&a, RunControl::default());
    let lb = run(&b, RunControl::default());
    assert_eq!(la.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), lb.iter().map(|x| x.to_bits()).collect::<Vec<_>>());

    // Killed after step 7 (last checkpoint: step 5), then rerun: it resumes at 5 and redoes 6..12.
    let first = run(&c, RunControl { stop_after: Some(7) });
    assert_eq!(first.len(), 7);
    let rest = run(&c, RunControl::default());
    assert_eq!(rest.len(), 7, "steps 6..=12 after resuming from checkpoint-5");
    let logged = logged_losses(&a.output_dir);
    assert_eq!(logged.iter().filter(|l| l.2.is_some()).count(), 3);
    assert_eq!(logged, logged_losses(&c.output_dir));
    let wa = std::fs::read(a.output_dir.join("checkpoint-12/model.safetensors")).unwrap();
    let wc = std::fs::read(c.output_dir.join("checkpoint-12/model.safetensors")).unwrap();
    assert!(wa == wc, "resumed weights differ from the uninterrupted run");
    let oa = std::fs::read(a.output_dir.join("checkpoint-12/optimizer.safetensors")).unwrap();
    let oc = std::fs::read(c.output_dir.join("checkpoint-12/optimizer.safetensors")).unwrap();
    assert!(oa == oc, "resumed optimizer state differs");
}

#[test]
fn resuming_under_another_configuration_is_refused() {
    let _rng = TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let mut a = experiment(tmp.path());
    a.max_steps = 2;
    a.save_steps = 1;
    run(&a, RunControl { stop_after: Some(1) });
    a.lr *= 2.0;
    let reader = ShardReader::open(&a.data_paths[0]).unwrap();
    let mut stream = DataStream::new(vec![Box::new(SequenceShards::new(reader, vocab(&a)))], None, a.seed).unwrap();
    let err = run_sft(&a, &mut stream, None, RunControl::default(), &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("lr: 0.") && err.to_string().contains("use a new output directory"), "{err}");
    // Bookkeeping is not part of the fingerprint: another logging cadence or checkpoint limit resumes.
    a.lr /= 2.0;
    a.logging_steps = 7;
    a.save_total_limit = 3;
    let reader = ShardReader::open(&a.data_paths[0]).unwrap();
    let mut stream = DataStream::new(vec![Box::new(SequenceShards::new(reader, vocab(&a)))], None, a.seed).unwrap();
    let summary = run_sft(&a, &mut stream, None, RunControl::default(), &mut |_| {}).unwrap();
    assert_eq!((summary.start_step, summary.final_step), (1, 2));
}

#[test]
fn every_paper_experiment_file_parses() {
    for (k, v) in [("EARL_BASE", "/m"), ("EARL_DATA", "/d"), ("EARL_STAGE1_STEP", "1200")] {
        std::env::set_var(k, v);
    }
    let dir = fixtures_dir().join("../experiments/sft");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let _ = experiment(Path::new("/r"));
            let exp = SftExperiment::from_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(!exp.data_paths.is_empty());
            n += 1;
        }
    }
    assert!(n >= 5, "tiny, s, sc, sc2stage_stage2, think_s");
}

#[test]
fn edit_records_become_reference_sft_sequences() {
    use earl_core::prompt::PromptBuilder;
    use earl_core::{data::EditRecord, CodeGrid};
    let tok = earl_core::tokenizer::Emu3Tokenizer::from_dir(fixtures_dir().join("tok-tiny")).unwrap();
    let p = PromptBuilder::new(&tok);
    let mut r = EditRecord {
        id: "a".into(),
        instruction: "make it red".into(),
        source: CodeGrid::new(2, 2, vec![0, 1, 2, 3]).unwrap(),
        edited: CodeGrid::new(2, 2, vec![3, 2, 1, 0]).unwrap(),
        cot: Default::default(),
        meta: Default::default(),
    };
    let keys = vec!["thinking".to_string()];
    let plain = earl_core::train::edit_sequence(&p, &r, &keys).unwrap();
    let prompt_len = plain.labels.iter().take_while(|&&l| l == -100).count();
    assert!(prompt_len > 4 + 2 * 3 && plain.labels[prompt_len..] == plain.input_ids[prompt_len..]);
    // With a CoT map and cot_keys, the target starts with the reasoning; the prompt is unchanged.
    r.cot.insert("thinking".into(), " red ".into());
    let think = earl_core::train::edit_sequence(&p, &r, &keys).unwrap();
    assert_eq!(think.input_ids[..prompt_len], plain.input_ids[..prompt_len]);
    assert!(think.input_ids.len() > plain.input_ids.len());
    let text = tok.decode(&think.input_ids[prompt_len..].iter().map(|&i| i as u32).collect::<Vec<_>>()).unwrap();
    assert!(text.contains("thinking: red"), "{text}");
    // No cot_keys: direct editing even when the record has a CoT.
    assert_eq!(earl_core::train::edit_sequence(&p, &r, &[]).unwrap(), plain);
}

/// `image_area` is not just recorded: a dataset tokenized at another area (its manifest says so) is refused.
#[test]
fn a_dataset_tokenized_at_another_image_area_is_refused() {
    use earl_core::data::ShardWriter;
    use earl_core::train::{open_sources, Sequence};
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut w = ShardWriter::create_or_resume(&data, "sequences", 8).unwrap();
    w.meta_mut().insert("image_area".into(), serde_json::json!(16384));
    w.push(None, &Sequence { input_ids: vec![1, 5, 6, 2], labels: vec![-100, 5, 6, 2] }).unwrap();
    w.finish().unwrap();
    let mut exp = experiment(tmp.path());
    exp.data_paths = vec![data];
    exp.image_area = Some(65536);
    let e = open_sources(&exp, None).err().expect("refused").to_string();
    assert!(e.contains("image_area 16384") && e.contains("65536"), "{e}");
    exp.image_area = Some(16384);
    assert_eq!(open_sources(&exp, None).unwrap().len(), 1);
    exp.image_area = None;
    assert_eq!(open_sources(&exp, None).unwrap().len(), 1, "no area set: nothing to check");
}

/// A label id beyond the vocabulary used to panic inside the cross-entropy kernel: it is refused where it is read,
/// naming the shard file and line.
#[test]
fn a_label_outside_the_vocabulary_names_its_file_and_line() {
    use earl_core::data::ShardWriter;
    use earl_core::train::{open_sources, Sequence};
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut w = ShardWriter::create_or_resume(&data, "sequences", 8).unwrap();
    w.push(None, &Sequence { input_ids: vec![1, 5, 6, 2], labels: vec![-100, 5, 6, 2] }).unwrap();
    w.push(None, &Sequence { input_ids: vec![1, 5, 6, 2], labels: vec![-100, 5, 100_000, 2] }).unwrap();
    w.finish().unwrap();
    let mut exp = experiment(tmp.path());
    exp.data_paths = vec![data];
    let sources = open_sources(&exp, None).unwrap();
    assert!(sources[0].get(0).is_ok());
    let e = sources[0].get(1).unwrap_err().to_string();
    assert!(e.contains(".jsonl") && e.contains("line 2") && e.contains("label 100000 at position 2"), "{e}");
}
