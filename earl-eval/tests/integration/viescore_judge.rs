//! The evaluation's VIEScore judge against the scripted loopback server: the request protocol (two requests per
//! sample, text then images, [original, edited] then [edited], no Authorization header without a key), one-element
//! score lists, and every failure — timeout, 429, 500, a malformed body, an unparsable reply — in both modes:
//! `reference` asks once and scores a failure 0 (counted), `retry` retries and re-asks, and leaves what still fails
//! out of the means. Bounded by short timeouts and millisecond back-offs, never by a timed assertion.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use earl_eval::judge::{Judge, JudgeInput, JudgeMode, Verdict, VieScoreJudge, VieScoreJudgeOptions};
use image::{Rgb, RgbImage};
use serde_json::Value;

use crate::loopback::{images_in, ok, serve, status, Reply};

fn judge(url: String, mode: JudgeMode, timeout_ms: u64) -> VieScoreJudge {
    let mut o = VieScoreJudgeOptions::new(url, "judge-model");
    o.mode = mode;
    o.timeout = Duration::from_millis(timeout_ms);
    o.max_attempts = 3;
    o.max_rounds = 2;
    o.initial_backoff = Duration::from_millis(5);
    o.max_backoff = Duration::from_millis(20);
    VieScoreJudge::new(o)
}

fn verdicts(j: &VieScoreJudge, n: usize) -> Vec<Verdict> {
    let original = RgbImage::from_pixel(16, 8, Rgb([10, 200, 10]));
    let edited = RgbImage::from_pixel(8, 8, Rgb([200, 10, 10]));
    let extra = Value::Null;
    let input = JudgeInput {
        instruction: "paint the wall red",
        original: &original,
        edited: &edited,
        ground_truth: None,
        extra: &extra,
    };
    j.judge_batch(&vec![input; n]).unwrap()
}

const SC: &str = r#"{"score": [8, 6], "reasoning": "wall is red"}"#;
const PQ: &str = r#"{"score": [7, 9], "reasoning": "clean"}"#;

fn good(images: usize) -> Reply {
    ok(if images == 2 { SC } else { PQ })
}

#[test]
fn two_requests_per_sample_text_then_images_and_no_authorization_without_a_key() {
    let server = serve(|_, req| good(images_in(req)));
    let j = judge(server.url(), JudgeMode::Reference, 2000);
    let v = verdicts(&j, 2);
    assert_eq!((v[0].vie_sc, v[0].vie_pq, v[0].vie_all), (6.0, 7.0, 42f64.sqrt()));
    assert_eq!(
        (v[0].edit_success, v[0].overediting, v[0].naturalness, v[0].artifacts),
        (Some(8.0), Some(6.0), Some(7.0), Some(9.0))
    );
    assert_eq!(
        (v[0].replies.clone(), v[0].reasons.clone()),
        (vec![SC.to_string(), PQ.to_string()], vec!["wall is red".to_string(), "clean".to_string()])
    );
    assert!(v[0].error.is_none() && !v[0].excluded && v[1] == v[0]);

    let seen = server.seen();
    assert_eq!(seen.len(), 4, "exactly two requests per judged sample");
    for req in &seen {
        assert_eq!(req.line, "POST /v1/chat/completions HTTP/1.1");
        assert!(req.headers.iter().all(|(k, _)| k != "authorization"), "no key, no Authorization header");
        assert_eq!((req.body["model"].as_str(), req.body["max_tokens"].as_u64()), (Some("judge-model"), Some(1400)));
        assert!(req.body.get("temperature").is_none(), "the server's default temperature");
        let msgs = req.body["messages"].as_array().unwrap();
        assert_eq!((msgs.len(), msgs[0]["role"].as_str()), (1, Some("user")));
        let parts = msgs[0]["content"].as_array().unwrap();
        assert_eq!(parts[0]["type"], "text");
        assert!(parts[1..]
            .iter()
            .all(|p| p["image_url"]["url"].as_str().unwrap().starts_with("data:image/jpeg;base64,")));
    }
    assert_eq!(seen.iter().filter(|r| images_in(r) == 2).count(), 2);
    assert!(j.manifest()["prompts_built_in"].as_bool().unwrap());
    assert_eq!(j.manifest()["mode"], "reference");
}

#[test]
fn one_element_score_lists_are_valid() {
    let server = serve(|_, req| ok(if images_in(req) == 2 { r#"{"score": [7]}"# } else { "{'score': [9]}" }));
    let v = &verdicts(&judge(server.url(), JudgeMode::Reference, 2000), 1)[0];
    assert_eq!((v.vie_sc, v.vie_pq, v.vie_all), (7.0, 9.0, 63f64.sqrt()));
    assert_eq!((v.edit_success, v.overediting, v.naturalness, v.artifacts), (Some(7.0), None, Some(9.0), None));
    assert!(v.error.is_none());
}

/// A server whose SC requests get `bad` for the first `times` SC requests and then the good reply.
fn flaky(bad: impl Fn() -> Reply + Send + Sync + 'static, times: usize) -> (crate::loopback::Server, Arc<AtomicUsize>) {
    let sc = Arc::new(AtomicUsize::new(0));
    let sc2 = sc.clone();
    let server = serve(move |_, req| {
        if images_in(req) == 2 && sc2.fetch_add(1, Ordering::SeqCst) < times {
            bad()
        } else {
            good(images_in(req))
        }
    });
    (server, sc)
}

fn slow() -> Reply {
    Reply { delay: Duration::from_millis(600), ..ok(SC) }
}

fn malformed() -> Reply {
    Reply { status: 200, body: "{not json".into(), delay: Duration::ZERO, headers: vec![] }
}

fn unparsable() -> Reply {
    ok("I cannot evaluate this image.")
}

fn assert_zero_failure(v: &Verdict, excluded: bool, what: &str) {
    assert!(v.error.is_some(), "{what}: the failure is reported");
    assert_eq!(v.excluded, excluded, "{what}");
    assert_eq!((v.vie_sc, v.vie_pq, v.vie_all), (0.0, 0.0, 0.0), "{what}");
    assert_eq!(
        (v.edit_success, v.overediting, v.naturalness, v.artifacts),
        (Some(0.0), Some(0.0), Some(0.0), Some(0.0))
    );
}

#[test]
fn reference_mode_asks_once_and_scores_every_failure_zero() {
    type Bad = fn() -> Reply;
    let cases: [(&str, Bad); 5] = [
        ("timeout", slow),
        ("429", || status(429)),
        ("500", || status(500)),
        ("malformed body", malformed),
        ("unparsable reply", unparsable),
    ];
    for (what, bad) in cases {
        let (server, sc) = flaky(bad, 1);
        let v = &verdicts(&judge(server.url(), JudgeMode::Reference, 300), 1)[0];
        assert_zero_failure(v, false, what);
        assert_eq!(sc.load(Ordering::SeqCst), 1, "{what}: no retry, no second round");
        assert_eq!(server.seen().len(), 2, "{what}: SC and PQ once each");
    }
}

#[test]
fn retry_mode_recovers_from_transient_failures_and_excludes_what_never_succeeds() {
    type Bad = fn() -> Reply;
    // Each bad reply once, then good: retried (timeouts, 429, 500) or asked again (malformed, unparsable).
    let recoverable: [(&str, Bad); 5] = [
        ("timeout", slow),
        ("429", || status(429)),
        ("500", || status(500)),
        ("unparsable reply", unparsable),
        ("out of range", || ok(r#"{"score": [11, 3]}"#)),
    ];
    for (what, bad) in recoverable {
        let (server, _) = flaky(bad, 1);
        let v = &verdicts(&judge(server.url(), JudgeMode::Retry, 300), 1)[0];
        assert!(v.error.is_none() && !v.excluded, "{what}: {:?}", v.error);
        assert_eq!((v.vie_sc, v.vie_pq), (6.0, 7.0), "{what}");
    }
    // Always 500: 3 attempts of SC, then the sample fails, reported and left out of the means.
    let (server, sc) = flaky(|| status(500), usize::MAX);
    let v = &verdicts(&judge(server.url(), JudgeMode::Retry, 300), 1)[0];
    assert_zero_failure(v, true, "500 forever");
    assert_eq!(sc.load(Ordering::SeqCst), 3);
    assert!(v.error.as_deref().unwrap().contains("HTTP 500"));
    // Never parsable: 2 rounds of both queries, then excluded.
    let (server, sc) = flaky(unparsable, usize::MAX);
    let v = &verdicts(&judge(server.url(), JudgeMode::Retry, 300), 1)[0];
    assert_zero_failure(v, true, "unparsable forever");
    assert_eq!((sc.load(Ordering::SeqCst), server.seen().len()), (2, 4));
    // A malformed 200 body is a protocol error: not retried, the sample fails.
    let (server, sc) = flaky(malformed, usize::MAX);
    assert_zero_failure(&verdicts(&judge(server.url(), JudgeMode::Retry, 300), 1)[0], true, "malformed forever");
    assert_eq!(sc.load(Ordering::SeqCst), 1);
}

#[test]
fn a_key_is_sent_as_a_bearer_token_and_a_refused_connection_is_a_sample_failure() {
    let server = serve(|_, req| good(images_in(req)));
    let mut o = VieScoreJudgeOptions::new(server.url(), "m");
    o.api_key = "k3y".into();
    let v = &VieScoreJudge::new(o).judge_batch(&[]).unwrap();
    assert!(v.is_empty());
    let mut o = VieScoreJudgeOptions::new(server.url(), "m");
    o.api_key = "k3y".into();
    verdicts(&VieScoreJudge::new(o), 1);
    assert!(server.seen().iter().all(|r| r.headers.contains(&("authorization".into(), "Bearer k3y".into()))));

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let v = &verdicts(&judge(format!("http://127.0.0.1:{port}/v1"), JudgeMode::Reference, 300), 1)[0];
    assert_zero_failure(v, false, "refused");
}
