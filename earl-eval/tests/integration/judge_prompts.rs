//! The paper's judge prompts, end to end without their text: scripts/fetch_judge_prompts.py run on made-up files
//! with the structure of EARL's `rl/viescore.py` and `rl/reward.py` (invented strings; the real prose is never in
//! the project) refuses them unless told not to verify, writes the template files the way the reference composes
//! its prompts, and the loader reads those files, records them (path + SHA-256) for the run manifest, and errors
//! with a hint when a named file is missing. A config naming no files uses our wording and warns.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use earl_core::rl::config::RewardConfig;
use earl_core::rl::FinalReward;
use earl_eval::prompts::{fill, OWN_WORDING};
use earl_eval::{reward_set, verifier_settings, PromptSource, Unparsable, VerifierConfig};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Module-level string constants as in VIEScore's prompt module, plus things the script must skip (a number, an
/// f-string) and a statement that would stop it if the file were executed rather than parsed.
const VIESCORE_PY: &str = r#"import json

_context_no_delimit = """CTX line one
CTX "quoted" line two"""

_prompts_0shot_two_image_edit_rule = "TWO-IMAGE RULE\n"

_prompts_0shot_tie_rule_SC = (
    "\nSC RULE: edit <instruction>\n"
    "second part"
)

_prompts_0shot_rule_PQ = """PQ RULE {braces stay}
"""

_not_a_prompt = 3
_formatted = f"{json}"

raise SystemExit("this file was executed")
"#;

/// The composition and GroundScore constants as in EARL's reward module.
const REWARD_PY: &str = r#"from rl import viescore


class Reward:
    def compute_viescore(self):
        SEMANTIC_CONSISTENCY_PROMPT_TEMPLATE = "\n".join(
            [viescore._context_no_delimit, viescore._prompts_0shot_two_image_edit_rule, viescore._prompts_0shot_tie_rule_SC]
        )
        PERCEPTUAL_QUALITY_PROMPT_TEMPLATE = "\n".join([viescore._context_no_delimit, viescore._prompts_0shot_rule_PQ])


GROUND_SCORE_SYSTEM_PROMPT = """SYSTEM: compare A with B."""

GROUND_SCORE_USER_PROMPT = """USER: {eps_instruction}; reply like {{"x": 1}} then <score>X</score>
"""
"#;

struct Upstream {
    dir: tempfile::TempDir,
}

impl Upstream {
    fn new(viescore: &str, reward: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("viescore.py"), viescore).unwrap();
        std::fs::write(dir.path().join("reward.py"), reward).unwrap();
        Self { dir }
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("prompts")
    }

    /// Runs the script on the two files; returns (exit code, stdout, stderr).
    fn run(&self, extra: &[&str]) -> (i32, String, String) {
        let python = root().join(".venv/bin/python");
        assert!(python.exists(), "the test suite runs after scripts/setup.sh, which creates .venv");
        let d = self.dir.path();
        let out = Command::new(python)
            .arg(root().join("scripts/fetch_judge_prompts.py"))
            .args(["--viescore-from", d.join("viescore.py").to_str().unwrap()])
            .args(["--reward-from", d.join("reward.py").to_str().unwrap()])
            .args(["--out", self.out().to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn verifier(sources: [PromptSource; 4]) -> VerifierConfig {
    let [sc, pq, system, user] = sources;
    VerifierConfig {
        api_base: "http://127.0.0.1:9/v1".into(),
        model: "judge".into(),
        api_key: String::new(),
        max_concurrency: 1,
        timeout_s: 1.0,
        max_attempts: 1,
        max_rounds: 5,
        on_unparsable: Unparsable::Error,
        viescore_sc_template: sc,
        viescore_pq_template: pq,
        ground_score_system_template: system,
        ground_score_user_template: user,
    }
}

fn files_in(dir: &Path) -> [PromptSource; 4] {
    ["viescore_sc.txt", "viescore_pq.txt", "ground_score_system.txt", "ground_score_user.txt"]
        .map(|n| PromptSource::File(dir.join(n)))
}

fn rewards() -> RewardConfig {
    RewardConfig {
        viescore: true,
        ground_score: true,
        token_agreement: false,
        pixel_similarity: false,
        mini: false,
        final_reward: FinalReward::parse("sqrt(viescore_pq*ground_score)").unwrap(),
        verifier: Default::default(),
    }
}

#[test]
fn the_script_refuses_unpinned_files_and_writes_the_templates_as_the_reference_composes_them() {
    let up = Upstream::new(VIESCORE_PY, REWARD_PY);
    let (code, _, err) = up.run(&[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("SHA-256") && err.contains("--no-verify") && err.trim().lines().count() == 1, "{err}");
    assert!(!up.out().exists(), "nothing is written on refusal");

    let (code, out, err) = up.run(&["--no-verify"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("unverified"), "{err}");
    assert_eq!(out.lines().count(), 4, "{out}");
    let o = up.out();
    // "\n".join of the three constants, byte for byte (the tie rule starts with a newline of its own).
    assert_eq!(
        read(&o.join("viescore_sc.txt")),
        "CTX line one\nCTX \"quoted\" line two\nTWO-IMAGE RULE\n\n\nSC RULE: edit <instruction>\nsecond part"
    );
    assert_eq!(read(&o.join("viescore_pq.txt")), "CTX line one\nCTX \"quoted\" line two\nPQ RULE {braces stay}\n");
    assert_eq!(read(&o.join("ground_score_system.txt")), "SYSTEM: compare A with B.");
    // str.format semantics: the field stays a placeholder, doubled braces become single ones.
    assert_eq!(
        read(&o.join("ground_score_user.txt")),
        "USER: {eps_instruction}; reply like {\"x\": 1} then <score>X</score>\n"
    );
    let source: Value = serde_json::from_str(&read(&o.join("SOURCE.json"))).unwrap();
    assert_eq!(source["commit"], "4ca85f1aa75df4be87169cd6b2d35c0282186b4c");
    assert_eq!(
        (source["inputs"][0]["verified"].as_bool(), source["inputs"][1]["verified"].as_bool()),
        (Some(false), Some(false))
    );

    // The loader reads those files as they are, fills them as the reference does, and records path + SHA-256
    // (compared with the script's own hashlib digests).
    let (_, opts) = verifier_settings(&verifier(files_in(&o))).unwrap();
    assert!(fill(&opts.prompts.semantic_consistency.text, "add a hat").contains("SC RULE: edit add a hat\n"));
    assert_eq!(
        fill(&opts.prompts.ground_score_user.text, "add a hat"),
        "USER: add a hat; reply like {\"x\": 1} then <score>X</score>\n"
    );
    let manifest = reward_set(&rewards(), &verifier(files_in(&o))).unwrap().manifest();
    let sc = &manifest["viescore"]["judge_prompts"]["semantic_consistency"];
    assert_eq!(sc["path"], o.join("viescore_sc.txt").display().to_string());
    assert_eq!(sc["sha256"], source["templates"]["viescore_sc.txt"]);
    assert_eq!(
        manifest["ground_score"]["judge_prompts"]["user"]["sha256"],
        source["templates"]["ground_score_user.txt"]
    );
}

#[test]
fn the_script_refuses_files_whose_structure_it_does_not_know() {
    let cases = [
        (VIESCORE_PY.replace("_prompts_0shot_rule_PQ =", "_renamed ="), "_prompts_0shot_rule_PQ".to_string()),
        (VIESCORE_PY.replace("edit <instruction>", "edit"), "<instruction>".to_string()),
        (VIESCORE_PY.replace("{braces stay}", "{eps_instruction}"), "placeholder".to_string()),
    ];
    for (vie, why) in cases {
        let (code, _, err) = Upstream::new(&vie, REWARD_PY).run(&["--no-verify"]);
        assert!(code == 1 && err.contains(&why) && err.trim().lines().count() == 1, "{why}: {err}");
    }
    let other_field = REWARD_PY.replace("{eps_instruction};", "{eps_instruction} {other};");
    let (code, _, err) = Upstream::new(VIESCORE_PY, &other_field).run(&["--no-verify"]);
    assert!(code == 1 && err.contains("{other}"), "{err}");
    let not_joined = REWARD_PY.replace("\"\\n\".join(", "sum(");
    let (code, _, err) = Upstream::new(VIESCORE_PY, &not_joined).run(&["--no-verify"]);
    assert!(code == 1 && err.contains("join"), "{err}");
}

#[test]
fn a_named_but_missing_file_is_an_error_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let err = verifier_settings(&verifier(files_in(&dir.path().join("absent")))).unwrap_err().to_string();
    assert!(err.contains("reward_viescore_sc_template") && err.contains("scripts/fetch_judge_prompts.py"), "{err}");
    assert_eq!(err.lines().count(), 1);
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Builds the rewards under a subscriber that captures warnings; returns the manifest and the log.
fn build_logged(cfg: &VerifierConfig) -> (Value, String) {
    let log = Captured::default();
    let sink = log.clone();
    let sub = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .with_writer(move || sink.clone())
        .finish();
    let manifest = tracing::subscriber::with_default(sub, || reward_set(&rewards(), cfg).unwrap().manifest());
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    (manifest, text)
}

#[test]
fn our_own_wording_is_announced_and_recorded() {
    let (manifest, log) = build_logged(&verifier(std::array::from_fn(|_| PromptSource::BuiltIn)));
    assert_eq!(manifest["viescore"]["judge_prompts"], OWN_WORDING);
    assert_eq!(manifest["ground_score"]["judge_prompts"], OWN_WORDING);
    assert_eq!(manifest["viescore"]["max_rounds"], 5);
    assert!(log.contains("project's own wording") && log.contains("viescore") && log.contains("ground_score"), "{log}");

    // With every template from a file there is nothing to announce; with one built in, that one is named.
    let dir = tempfile::tempdir().unwrap();
    for p in files_in(dir.path()) {
        let PromptSource::File(p) = p else { unreachable!() };
        std::fs::write(p, "made up <instruction>\n").unwrap();
    }
    let (_, log) = build_logged(&verifier(files_in(dir.path())));
    assert!(log.is_empty(), "{log}");
    let mut mixed = files_in(dir.path());
    mixed[1] = PromptSource::BuiltIn;
    let (manifest, log) = build_logged(&verifier(mixed));
    assert_eq!(manifest["viescore"]["judge_prompts"]["perceptual_quality"], OWN_WORDING);
    assert!(manifest["viescore"]["judge_prompts"]["semantic_consistency"]["sha256"].is_string());
    assert!(log.contains("perceptual_quality") && !log.contains("ground_score"), "{log}");
}
