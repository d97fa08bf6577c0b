//! The verifier rewards against a real HTTP server on 127.0.0.1 (ephemeral port) that speaks chat completions with
//! scripted replies: well-formed, score lists of other lengths, malformed or out of range then well-formed (both
//! queries of the sample are asked again), never parsable, 429/500 then success, 400, slower than the client's
//! timeout, and a refused connection. Every test is bounded by construction — short client timeouts,
//! few attempts, millisecond backoffs — never by a timed assertion.
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use earl_core::rl::{FinalReward, Reward, RewardInput, RewardSet};
use earl_eval::{ChatClient, ClientOptions, GroundScore, Unparsable, VerifierOptions, VieScore};
use image::{Rgb, RgbImage};
use serde_json::json;

use crate::loopback::{images_in, ok, serve, status, Reply};

fn client(url: String, timeout_ms: u64, attempts: u32) -> ChatClient {
    let mut o = ClientOptions::new(url, "judge-model");
    o.api_key = "secret".into();
    o.timeout = Duration::from_millis(timeout_ms);
    o.max_attempts = attempts;
    o.initial_backoff = Duration::from_millis(5);
    o.max_backoff = Duration::from_millis(20);
    o.max_concurrency = 4;
    ChatClient::new(o)
}

struct Images {
    source: RgbImage,
    pred: RgbImage,
    gt: RgbImage,
}

fn images() -> Images {
    Images {
        source: RgbImage::from_pixel(16, 8, Rgb([10, 200, 10])),
        pred: RgbImage::from_pixel(8, 8, Rgb([200, 10, 10])),
        gt: RgbImage::from_pixel(8, 8, Rgb([190, 20, 10])),
    }
}

fn input<'a>(im: &'a Images, decodable: bool) -> RewardInput<'a> {
    RewardInput {
        instruction: "paint the wall red",
        source: &im.source,
        predicted: decodable.then_some(&im.pred),
        ground_truth: Some(&im.gt),
        predicted_codes: None,
        ground_truth_codes: None,
    }
}

fn opts(on_unparsable: Unparsable) -> VerifierOptions {
    VerifierOptions { on_unparsable, ..VerifierOptions::default() }
}

#[test]
fn well_formed_replies_give_the_viescore_formula_and_undecodable_images_score_zero() {
    let server = serve(|_, req| match images_in(req) {
        2 => ok(r#"{"score": [8, 6], "reasoning": "wall is red, lamp moved"}"#),
        _ => ok("```json\n{'score': [7, 9], 'reasoning': 'clean'}\n```\nThat's my answer."),
    });
    let vie = VieScore::new(client(server.url(), 2000, 2), opts(Unparsable::Error));
    let im = images();
    let out = vie.score_batch(&[input(&im, true), input(&im, false), input(&im, true)]).unwrap();
    let c = &out[0].components;
    assert_eq!((c["edit_success"], c["overedit"], c["semantic_consistency"]), (8.0, 6.0, 6.0));
    assert_eq!((c["naturalness"], c["artifacts"], c["perceptual_quality"]), (7.0, 9.0, 7.0));
    assert!((out[0].score - 42f64.sqrt()).abs() < 1e-12 && out[2] == out[0]);
    assert!(out[1].score == 0.0 && out[1].components.values().all(|v| *v == 0.0) && out[1].components.len() == 7);

    let seen = server.seen();
    assert_eq!(seen.len(), 4, "two queries per decodable completion, none for the undecodable one");
    for req in &seen {
        assert_eq!(req.line, "POST /v1/chat/completions HTTP/1.1");
        assert!(req.headers.contains(&("authorization".into(), "Bearer secret".into())));
        assert_eq!((req.body["model"].as_str(), req.body["max_tokens"].as_u64()), (Some("judge-model"), Some(1400)));
    }
    let sc = seen.iter().find(|r| images_in(r) == 2).unwrap();
    let parts = sc.body["messages"][0]["content"].as_array().unwrap();
    assert!(parts[0]["text"].as_str().unwrap().contains("Instruction: paint the wall red"));
    // The source image comes first, then the prediction (16x8 vs 8x8 after a JPEG round trip).
    let dims: Vec<(u32, u32)> = parts[1..]
        .iter()
        .map(|p| {
            let url = p["image_url"]["url"].as_str().unwrap();
            let b64 = url.strip_prefix("data:image/jpeg;base64,").unwrap();
            use base64::Engine as _;
            let bytes = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
            image::load_from_memory(&bytes).unwrap().to_rgb8().dimensions()
        })
        .collect();
    assert_eq!(dims, vec![(16, 8), (8, 8)]);
}

#[test]
fn an_unparsable_reply_re_asks_both_queries_of_the_sample() {
    // SC: prose, then a score out of range (unparsable, stricter than the reference), then a good list. PQ parses
    // every time, with a different answer per round: the sample's answers must come from the same (last) round.
    let (sc_calls, pq_calls) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (sc2, pq2) = (sc_calls.clone(), pq_calls.clone());
    let server = serve(move |_, req| match images_in(req) {
        2 => match sc2.fetch_add(1, Ordering::SeqCst) {
            0 => ok("The edit looks fine to me, maybe a 7?"),
            1 => ok(r#"{"score": [7, 12], "reasoning": "out of range"}"#),
            _ => ok(r#"{"score": [5, 10], "reasoning": "ok"}"#),
        },
        _ => match pq2.fetch_add(1, Ordering::SeqCst) {
            0 => ok(r#"{"score": [1, 1]}"#),
            1 => ok(r#"{"score": [2, 2]}"#),
            _ => ok(r#"{"score": [4, 8]}"#),
        },
    });
    let vie = VieScore::new(client(server.url(), 2000, 2), opts(Unparsable::Error));
    let im = images();
    let out = vie.score_batch(&[input(&im, true), input(&im, false)]).unwrap();
    let c = &out[0].components;
    assert_eq!((c["semantic_consistency"], c["perceptual_quality"], c["artifacts"]), (5.0, 4.0, 8.0));
    assert!((out[0].score - 20f64.sqrt()).abs() < 1e-12); // sqrt(5 · 4), both exact in f64
    assert_eq!((sc_calls.load(Ordering::SeqCst), pq_calls.load(Ordering::SeqCst)), (3, 3));
    assert_eq!(server.seen().len(), 6, "the undecodable completion is never asked");
}

#[test]
fn score_lists_of_any_length_give_the_minimum_and_a_missing_sub_score_stays_missing() {
    let server = serve(|_, req| match images_in(req) {
        2 => ok(r#"{"score": [7], "reasoning": "one score"}"#),
        _ => ok(r#"{"score": [5, 9, 2], "reasoning": "three scores"}"#),
    });
    let vie = VieScore::new(client(server.url(), 2000, 2), opts(Unparsable::Error));
    let im = images();
    let out = vie.score_batch(&[input(&im, true)]).unwrap();
    let c = &out[0].components;
    assert_eq!((c["edit_success"], c["semantic_consistency"]), (7.0, 7.0));
    assert!(!c.contains_key("overedit"), "{c:?}");
    assert_eq!((c["naturalness"], c["artifacts"], c["perceptual_quality"]), (5.0, 9.0, 2.0));
    assert!((out[0].score - 14f64.sqrt()).abs() < 1e-12); // sqrt(7 · 2)
    assert_eq!(server.seen().len(), 2, "both replies parsed at once");
}

#[test]
fn never_parsable_replies_fail_or_score_zero_after_the_configured_rounds() {
    let server = serve(|_, _| ok("I'd rather not say."));
    let im = images();
    let strict = GroundScore::new(client(server.url(), 2000, 2), opts(Unparsable::Error));
    let err = strict.score_batch(&[input(&im, true)]).unwrap_err().to_string();
    assert!(err.contains("ground_score") && err.contains("5 round"), "{err}");
    assert_eq!(server.seen().len(), 5);
    let lenient = GroundScore::new(client(server.url(), 2000, 2), opts(Unparsable::Zero));
    assert_eq!(lenient.score_batch(&[input(&im, true)]).unwrap()[0].score, 0.0);

    // VIEScore: the SC reply never parses, the PQ reply always does; both are asked in each of 3 rounds.
    let half = serve(|_, req| if images_in(req) == 2 { ok("no idea") } else { ok(r#"{"score": [9, 9]}"#) });
    let vie = VieScore::new(client(half.url(), 2000, 2), VerifierOptions { max_rounds: 3, ..opts(Unparsable::Zero) });
    let out = vie.score_batch(&[input(&im, true)]).unwrap();
    assert!(out[0].score == 0.0 && out[0].components.values().all(|v| *v == 0.0));
    let seen = half.seen();
    assert_eq!(
        (seen.iter().filter(|r| images_in(r) == 2).count(), seen.iter().filter(|r| images_in(r) == 1).count()),
        (3, 3)
    );
}

#[test]
fn rate_limits_and_server_errors_are_retried_with_backoff() {
    let server = serve(|n, req| match n {
        0 => Reply { headers: vec![("retry-after", "0".into())], ..status(429) },
        1 => status(500),
        2 => status(503),
        _ => {
            assert!(req.body["messages"][0]["role"] == "system");
            ok("B matches A closely.\n<score>7</score>")
        }
    });
    let gs = GroundScore::new(client(server.url(), 2000, 5), opts(Unparsable::Error));
    let im = images();
    let out = gs.score_batch(&[input(&im, true)]).unwrap();
    assert_eq!(out[0].score, 7.0);
    let seen = server.seen();
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[3].body["temperature"].as_f64(), Some(0.3));
}

#[test]
fn persistent_server_errors_and_client_errors_fail_the_batch() {
    let im = images();
    let busy = serve(|_, _| status(502));
    let err = VieScore::new(client(busy.url(), 2000, 3), opts(Unparsable::Zero)).score_batch(&[input(&im, true)]);
    let msg = err.unwrap_err().to_string();
    assert!(msg.contains("HTTP 502") && msg.contains("3 attempt"), "{msg}");

    let bad = serve(|_, _| status(400));
    let gs = GroundScore::new(client(bad.url(), 2000, 5), opts(Unparsable::Zero));
    let msg = gs.score_batch(&[input(&im, true)]).unwrap_err().to_string();
    assert!(msg.contains("HTTP 400") && msg.contains("1 attempt"), "{msg}");
    assert_eq!(bad.seen().len(), 1, "a 400 is not retried");
}

#[test]
fn replies_slower_than_the_timeout_fail_after_the_configured_attempts() {
    let server = serve(|_, _| Reply { delay: Duration::from_secs(3), ..ok("<score>9</score>") });
    let gs = GroundScore::new(client(server.url(), 150, 2), opts(Unparsable::Zero));
    let im = images();
    let msg = gs.score_batch(&[input(&im, true)]).unwrap_err().to_string();
    assert!(msg.contains("2 attempt"), "{msg}");
}

#[test]
fn refused_connections_fail_after_retries() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port(); // freed at once
    let vie = VieScore::new(client(format!("http://127.0.0.1:{port}"), 500, 3), opts(Unparsable::Zero));
    let im = images();
    let msg = vie.score_batch(&[input(&im, true)]).unwrap_err().to_string();
    assert!(msg.contains("viescore") && msg.contains("3 attempt"), "{msg}");
}

#[test]
fn requests_in_flight_stay_within_the_bound() {
    let server = serve(|_, _| Reply { delay: Duration::from_millis(30), ..ok(r#"{"score": [9, 9]}"#) });
    let vie = VieScore::new(client(server.url(), 2000, 2), opts(Unparsable::Error));
    let im = images();
    let batch: Vec<RewardInput<'_>> = (0..10).map(|_| input(&im, true)).collect();
    let out = vie.score_batch(&batch).unwrap();
    assert!(out.iter().all(|o| o.score == 9.0));
    assert_eq!(server.seen().len(), 20);
    assert!(server.in_flight_max.load(Ordering::SeqCst) <= 4);
}

#[test]
fn reward_set_combines_verifier_pq_with_ground_score() {
    let server = serve(|_, req| {
        if req.body["messages"][0]["role"] == "system" {
            ok("<score>9</score>")
        } else if images_in(req) == 2 {
            ok(r#"{"score": [6, 8]}"#)
        } else {
            ok(r#"{"score": [4, 5]}"#)
        }
    });
    let c = client(server.url(), 2000, 2);
    let set = RewardSet::new(
        vec![
            Box::new(VieScore::new(c.clone(), opts(Unparsable::Error))),
            Box::new(GroundScore::new(c, opts(Unparsable::Error))),
        ],
        FinalReward::parse("sqrt(viescore_pq*ground_score)").unwrap(),
    )
    .unwrap();
    let im = images();
    let out = set.score(&[input(&im, true), input(&im, true), input(&im, false)], &[true, false, true]).unwrap();
    assert!((out[0].score - 6.0).abs() < 1e-12); // sqrt(PQ 4 · GS 9)
    assert_eq!(out[1].score, 0.0); // did not stop
    assert_eq!(out[2].score, 0.0); // undecodable
    assert_eq!(out[0].components["viescore__overall"], 24f64.sqrt());
    assert_eq!(out[0].components["ground_score__overall"], 9.0);
}

#[test]
fn readiness_probe_lists_served_models() {
    let server = serve(|_, req| {
        assert!(req.line.starts_with("GET /v1/models"));
        Reply { body: json!({ "data": [{ "id": "judge-model" }] }).to_string(), ..ok("") }
    });
    let c = client(server.url(), 1000, 1);
    assert_eq!(c.wait_until_ready(Duration::from_secs(2), Duration::from_millis(20)).unwrap(), vec!["judge-model"]);
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let down = client(format!("http://127.0.0.1:{port}"), 200, 1);
    assert!(down.wait_until_ready(Duration::from_millis(100), Duration::from_millis(20)).is_err());
}
